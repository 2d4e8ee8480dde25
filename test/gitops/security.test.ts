/**
 * The API server of a real `bdr up` process, as another local user or a web page would meet it: nothing
 * without the token the 0600 kubeconfig holds, no text/plain bodies, and a state directory nobody else can read.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, connectionFromKubeconfig, type Connection } from '../cluster/helpers.ts';
import { BdrUp, commitAll, git, initRepo, Kubectl, tempDir, writeRepoFile } from './harness.ts';

// A made-up key: what matters is that its bytes must never reach a client without the token.
const KEY = Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n').toString('base64');
const SECRET = `apiVersion: v1
kind: Secret
metadata:
  name: ssh-key
  namespace: bdr-system
data:
  ssh-privatekey: ${KEY}
`;
const POLICY = `apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata:
  name: daily
  namespace: default
spec:
  keepLast: 3
`;

interface ResourceList {
  resources: Array<{ name: string; namespaced: boolean }>;
}

/** Every path a client can list, get or watch: from discovery, cluster-wide and in bdr-system. */
async function resourcePaths(conn: Connection): Promise<string[]> {
  const groupVersions = ['/api/v1'];
  const groups = (await api<{ groups: Array<{ versions: Array<{ groupVersion: string }> }> }>(conn, 'GET', '/apis')).body.groups;
  for (const g of groups) for (const v of g.versions) groupVersions.push(`/apis/${v.groupVersion}`);
  const paths = ['/api', '/apis', '/openapi/v3', '/openapi/v3/api/v1', ...groupVersions];
  for (const gv of groupVersions) {
    for (const r of (await api<ResourceList>(conn, 'GET', gv)).body.resources) {
      if (r.name.includes('/')) continue;
      paths.push(`${gv}/${r.name}`, `${gv}/${r.name}?watch=true`);
      if (r.namespaced) paths.push(`${gv}/namespaces/bdr-system/${r.name}`);
    }
  }
  paths.push('/api/v1/namespaces/bdr-system/secrets/ssh-key', '/api/v1/namespaces/bdr-system');
  return paths;
}

/** Every path under dir, directories included, whose mode has a group or other bit. */
function readableByOthers(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if (!st.isSymbolicLink() && (st.mode & 0o077) !== 0) out.push(`${p} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dir);
  return out;
}

describe('the API server of bdr up', { timeout: 180_000 }, () => {
  const tmp = tempDir('bdr-up-security-');
  const state = join(tmp.path, 'state');
  let up: BdrUp;
  let k: Kubectl;
  let conn: Connection;

  beforeAll(async () => {
    // A remote repository, so that STATE/repo (a git checkout, written with the umask) is there too.
    const bare = join(tmp.path, 'origin.git');
    const work = join(tmp.path, 'work');
    await git(tmp.path, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
    await initRepo(work);
    await writeRepoFile(work, 'secret.yaml', SECRET);
    await writeRepoFile(work, 'policy.yaml', POLICY);
    await commitAll(work, 'initial');
    await git(work, 'push', '--quiet', bare, 'main');
    // What an older bdr up left behind: a world-readable directory and kubeconfig.
    mkdirSync(state, { mode: 0o755 });
    writeFileSync(join(state, 'kubeconfig'), 'stale\n', { mode: 0o644 });
    up = new BdrUp(['--repo', `file://${bare}`, '--interval', '1h'], state);
    await up.ready();
    k = new Kubectl(up.kubeconfig, join(tmp.path, 'kube-cache'));
    conn = connectionFromKubeconfig(up.kubeconfig);
  }, 180_000);

  afterAll(async () => {
    if (up) await up.stop('SIGTERM');
    tmp.remove();
  });

  it('serves HTTPS on 127.0.0.1 only', () => {
    expect(new URL(conn.url).protocol).toBe('https:');
    expect(new URL(conn.url).hostname).toBe('127.0.0.1');
  });

  it('answers 401 Unauthorized to every resource path without the token, Secrets included', async () => {
    const paths = await resourcePaths(conn);
    expect(paths).toContain('/api/v1/namespaces/bdr-system/secrets');
    expect(paths).toContain('/apis/bdr.dev/v1alpha1/namespaces/bdr-system/datasets');
    expect(paths).toContain('/apis/bdr.dev/v1alpha1/machines');
    for (const path of paths) {
      const r = await api<{ reason?: string }>(conn, 'GET', path, undefined, undefined, null);
      expect([path, r.status, r.body.reason]).toEqual([path, 401, 'Unauthorized']);
      expect(JSON.stringify(r.body)).not.toContain(KEY);
    }
    const create = await api(conn, 'POST', '/apis/bdr.dev/v1alpha1/namespaces/default/retentionpolicies', { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'planted' }, spec: { keepLast: 1 } }, 'application/json', null);
    expect(create.status).toBe(401);
    expect(await k.find('retentionpolicy', 'planted', '-n', 'default')).toBeUndefined();
  });

  it('answers 401 to a wrong token, and kubectl with it is told to log in', async () => {
    // The real token with its last character changed (to another one: a token ending in "A" once made this pass it).
    const nearMiss = `${conn.token.slice(0, -1)}${conn.token.endsWith('A') ? 'B' : 'A'}`;
    expect(nearMiss).not.toBe(conn.token);
    for (const path of ['/api/v1/namespaces/bdr-system/secrets', '/api/v1/namespaces/bdr-system/secrets/ssh-key', '/apis/bdr.dev/v1alpha1/machines']) {
      expect((await api(conn, 'GET', path, undefined, undefined, nearMiss)).status).toBe(401);
      expect((await api(conn, 'GET', path, undefined, undefined, 'bdr-local')).status).toBe(401);
    }
    const wrong = join(tmp.path, 'wrong-kubeconfig');
    writeFileSync(wrong, readFileSync(up.kubeconfig, 'utf8').replace(conn.token, 'not-the-token'), { mode: 0o600 });
    await expect(new Kubectl(wrong, join(tmp.path, 'kube-cache-wrong')).run('get', 'secrets', '-n', 'bdr-system')).rejects.toThrow(/You must be logged in to the server/);
  });

  it('works with kubectl and the kubeconfig it wrote, as before', async () => {
    const secret = await k.json('get', 'secret', 'ssh-key', '-n', 'bdr-system');
    expect(secret.data?.['ssh-privatekey']).toBe(KEY);
    expect((await k.json('get', 'retentionpolicy', 'daily', '-n', 'default')).spec).toMatchObject({ keepLast: 3 });
    await k.run('create', 'configmap', 'by-hand', '-n', 'default', '--from-literal=a=b');
    expect((await k.json('get', 'configmap', 'by-hand', '-n', 'default')).data).toEqual({ a: 'b' });
  });

  it('refuses a text/plain POST with 415, even with the token, and creates nothing', async () => {
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'from-a-page' }, stringData: { a: 'b' } });
    const r = await api<{ reason: string }>(conn, 'POST', '/api/v1/namespaces/bdr-system/secrets', body, 'text/plain');
    expect([r.status, r.body.reason]).toEqual([415, 'UnsupportedMediaType']);
    expect((await api(conn, 'POST', '/api/v1/namespaces/bdr-system/secrets', body, 'text/plain', null)).status).toBe(401);
    expect(await k.find('secret', 'from-a-page', '-n', 'bdr-system')).toBeUndefined();
  });

  it('answers /healthz, /livez, /readyz and /version without a token', async () => {
    for (const path of ['/healthz', '/livez', '/readyz']) expect(await api(conn, 'GET', path, undefined, undefined, null)).toMatchObject({ status: 200, body: 'ok' });
    const version = await api<{ major: string; minor: string }>(conn, 'GET', '/version', undefined, undefined, null);
    expect(version).toMatchObject({ status: 200, body: { major: '1', minor: '32' } });
  });

  it('leaves no file or directory under the state directory readable by group or others', async () => {
    const entries = readdirSync(state).sort();
    expect(entries).toEqual(expect.arrayContaining(['bdr-up.pid', 'cluster', 'kubeconfig', 'repo']));
    expect(readdirSync(join(state, 'repo'))).toContain('secret.yaml');
    expect(readableByOthers(state)).toEqual([]);
  });
});
