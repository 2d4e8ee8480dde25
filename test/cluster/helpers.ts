import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { Cluster } from '../../cluster/index.ts';

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

/** A small JSON client for the raw REST API. */
export async function api<T = Record<string, unknown>>(
  cluster: Cluster,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${cluster.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': contentType },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
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

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const GADGET_CRDS = join(FIXTURES, 'crds', 'gadgets.yaml');
