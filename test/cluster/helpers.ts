import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parse as parseYaml } from 'yaml';
import type { Cluster } from '../../cluster/index.ts';
import { eventually } from '../helpers/eventually.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(REPO_ROOT, 'test', 'cluster', 'fixtures');
export const KUBECTL = process.env.KUBECTL ?? '/usr/bin/kubectl';

/** kubectl ships with the machine image and cannot be installed by the project: say so loudly. */
export function requireKubectl(): void {
  if (!existsSync(KUBECTL)) {
    throw new Error(`kubectl not found at ${KUBECTL}: these integration tests drive the real kubectl (set KUBECTL to its path)`);
  }
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs the real kubectl against the cluster, each run with its own fresh cache directory. */
export async function kubectl(cluster: Cluster, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'bdr-kubectl-cache-'));
  try {
    const result = await execa(KUBECTL, ['--kubeconfig', cluster.kubeconfigPath, '--cache-dir', cacheDir, ...args], {
      input: options.input,
      reject: false,
      timeout: options.timeoutMs ?? 30_000,
      env: { KUBECONFIG: cluster.kubeconfigPath },
    });
    return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 };
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

/** Like kubectl(), but fails the test with kubectl's own output when it exits non-zero. */
export async function kubectlOk(cluster: Cluster, args: string[], options: { input?: string } = {}): Promise<string> {
  const r = await kubectl(cluster, args, options);
  if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.exitCode}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** What a raw HTTP client needs: the server, its CA, the token. */
export type Connection = Pick<Cluster, 'url' | 'token' | 'ca'>;

/** The connection a kubeconfig written by the cluster describes (for a server running in another process). */
export function connectionFromKubeconfig(path: string): Connection & { kubeconfigPath: string } {
  const kc = parseYaml(readFileSync(path, 'utf8')) as {
    clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string } }>;
    users: Array<{ user: { token: string } }>;
  };
  const c = kc.clusters[0]!.cluster;
  return { url: c.server, ca: Buffer.from(c['certificate-authority-data'], 'base64').toString('utf8'), token: kc.users[0]!.user.token, kubeconfigPath: path };
}

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** The bearer token to send: the cluster's by default, null for none. */
  token?: string | null;
}

/**
 * fetch() for the embedded server: global fetch cannot be given a CA, so this goes through node:https and
 * returns a standard Response (with a streaming body, for watches).
 */
export function clusterFetch(conn: Connection, path: string, init: FetchInit = {}): Promise<Response> {
  const token = init.token === undefined ? conn.token : init.token;
  const headers: Record<string, string> = { ...(init.headers ?? {}), ...(token === null ? {} : { Authorization: `Bearer ${token}` }) };
  // node:http sends a DELETE body without framing unless told its length.
  if (init.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(init.body));
  return new Promise((resolveResponse, reject) => {
    const req = httpsRequest(new URL(path, conn.url), { method: init.method ?? 'GET', headers, ca: conn.ca, signal: init.signal }, (res) => {
      const h = new Headers();
      for (const [k, v] of Object.entries(res.headers)) {
        if (Array.isArray(v)) for (const x of v) h.append(k, x);
        else if (v !== undefined) h.set(k, v);
      }
      const status = res.statusCode ?? 0;
      const body = status === 204 || status === 304 ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
      resolveResponse(new Response(body, { status, headers: h }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

/** A small JSON client for the raw REST API. */
export async function api<T = Record<string, unknown>>(
  cluster: Connection,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
  token?: string | null,
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await clusterFetch(cluster, path, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': contentType },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    token,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // plain-text answers (healthz) stay strings
  }
  return { status: res.status, body: parsed as T, headers: res.headers };
}

/** Polls until `probe` gives a value: the shared eventually(), with a short interval and a generous limit. */
export function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  return eventually(probe, what, timeoutMs, 25);
}

export const GADGET_CRDS = join(FIXTURES, 'crds', 'gadgets.yaml');
