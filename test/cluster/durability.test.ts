import { appendFileSync, chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { startCluster, type Cluster, type KubeObject } from '../../cluster/index.ts';
import { api, clusterFetch, connectionFromKubeconfig, FIXTURES, GADGET_CRDS, REPO_ROOT } from './helpers.ts';

interface List {
  metadata: { resourceVersion: string };
  items: KubeObject[];
}

const gadgets = '/apis/fixtures.bdr.dev/v1alpha1/namespaces/default/gadgets';

function installFixtures(cluster: Cluster): void {
  for (const doc of parseAllDocuments(readFileSync(GADGET_CRDS, 'utf8'))) cluster.apply(doc.toJS() as KubeObject);
}

async function snapshot(cluster: Cluster): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const path of [gadgets, '/api/v1/namespaces/default/secrets', '/api/v1/namespaces', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions']) {
    const list = (await api<List>(cluster, 'GET', path)).body;
    for (const o of list.items) out[`${path}/${o.metadata.name}`] = `${o.metadata.uid}@${o.metadata.resourceVersion}`;
  }
  return out;
}

describe('durability with a data directory', () => {
  it('brings every object and resourceVersion back after a clean restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'bdr-cluster-data-'));
    const first = await startCluster({ dataDir });
    installFixtures(first);
    for (let i = 0; i < 20; i++) {
      expect((await api(first, 'POST', gadgets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', metadata: { name: `g${i}` }, spec: { size: i + 1 } })).status).toBe(201);
    }
    await api(first, 'DELETE', `${gadgets}/g3`);
    await api(first, 'PATCH', `${gadgets}/g4/status`, { status: { observedGeneration: 1 } }, 'application/merge-patch+json');
    await api(first, 'POST', '/api/v1/namespaces/default/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { k: 'v' } });
    const before = await snapshot(first);
    const rvBefore = first.resourceVersion();
    await first.stop();

    const second = await startCluster({ dataDir });
    try {
      // Same token and CA: a kubeconfig copied before the restart keeps working.
      expect(second.token).toBe(first.token);
      expect(second.ca).toBe(first.ca);
      expect(second.resourceVersion()).toBe(rvBefore);
      expect(await snapshot(second)).toEqual(before);
      expect(before[`${gadgets}/g3`]).toBeUndefined();
      const g4 = (await api<KubeObject>(second, 'GET', `${gadgets}/g4`)).body;
      expect(g4.status).toEqual({ observedGeneration: 1 });
      // The CRD came back too, so its schema still validates.
      expect((await api(second, 'POST', gadgets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', metadata: { name: 'bad' }, spec: { size: 0 } })).status).toBe(422);
      const created = (await api<KubeObject>(second, 'POST', gadgets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', metadata: { name: 'later' }, spec: { size: 1 } })).body;
      expect(Number(created.metadata.resourceVersion)).toBe(rvBefore + 1);
      // Watch history does not survive a restart: resuming from an older version must relist (410).
      const watch = await clusterFetch(second, `${gadgets}?watch=true&resourceVersion=${rvBefore - 5}`);
      const text = await watch.text();
      expect(JSON.parse(text.split('\n')[0]!)).toMatchObject({ type: 'ERROR', object: { code: 410, reason: 'Expired' } });
    } finally {
      await second.stop();
    }
  });

  it('keeps every acknowledged write when the server process is killed', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'bdr-cluster-crash-'));
    const child = execa('node', ['--import', 'tsx', join(FIXTURES, 'serve-cluster.ts'), dataDir], { cwd: REPO_ROOT, reject: false });
    const kubeconfigPath = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        const line = chunk.toString().split('\n')[0]!;
        try {
          resolve((JSON.parse(line) as { kubeconfigPath: string }).kubeconfigPath);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      child.catch(reject);
    });
    const remote = connectionFromKubeconfig(kubeconfigPath);
    for (const doc of parseAllDocuments(readFileSync(GADGET_CRDS, 'utf8'))) {
      expect((await api(remote, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', doc.toJS())).status).toBe(201);
    }
    const acknowledged = new Map<string, string>();
    // Writes race the kill: everything answered before it must survive; what was in flight may or may not.
    // The kill comes once enough writes were acknowledged (an event, not a time: a slow machine writes fewer).
    let enough: () => void = () => undefined;
    const enoughWritten = new Promise<void>((r) => (enough = r));
    const writer = (async () => {
      for (let i = 0; ; i++) {
        try {
          const r = await api<KubeObject>(remote, 'POST', gadgets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', metadata: { name: `c${i}` }, spec: { size: 1 } });
          if (r.status !== 201) throw new Error(`unexpected ${r.status}`);
          acknowledged.set(r.body.metadata.name!, r.body.metadata.resourceVersion!);
          if (acknowledged.size === 20) enough();
        } catch {
          return;
        }
      }
    })();
    await Promise.race([enoughWritten, writer]);
    child.kill('SIGKILL');
    await writer;
    await child;
    expect(acknowledged.size).toBeGreaterThan(5);

    const restarted = await startCluster({ dataDir });
    try {
      const list = (await api<List>(restarted, 'GET', gadgets)).body;
      const stored = new Map(list.items.map((o) => [o.metadata.name!, o.metadata.resourceVersion!]));
      for (const [name, rv] of acknowledged) expect(stored.get(name), name).toBe(rv);
      expect(restarted.resourceVersion()).toBeGreaterThanOrEqual(Math.max(...[...acknowledged.values()].map(Number)));
    } finally {
      await restarted.stop();
    }
  });

  it('refuses a data directory another live server holds', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'bdr-cluster-lock-'));
    const first = await startCluster({ dataDir });
    try {
      await expect(startCluster({ dataDir })).rejects.toThrow(/is in use by process/);
    } finally {
      await first.stop();
    }
    const second = await startCluster({ dataDir });
    await second.stop();
  });

  it('drops a torn last log record instead of failing or inventing an object', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'bdr-cluster-torn-'));
    const first = await startCluster({ dataDir });
    installFixtures(first);
    await api(first, 'POST', gadgets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', metadata: { name: 'whole' }, spec: { size: 1 } });
    const rv = first.resourceVersion();
    await first.stop();
    // A crash in the middle of an append leaves a prefix of a record without its newline.
    appendFileSync(join(dataDir, 'store', 'wal.jsonl'), `{"rv":${rv + 1},"op":"put","sk":"fixtures.bdr.dev/gadgets","object":{"apiVersion":"fixtures.bdr.dev/v1alpha1","kind":"Gad`);
    const second = await startCluster({ dataDir });
    try {
      expect(second.resourceVersion()).toBe(rv);
      const names = (await api<List>(second, 'GET', gadgets)).body.items.map((o) => o.metadata.name);
      expect(names).toEqual(['whole']);
      const next = (await api<KubeObject>(second, 'POST', gadgets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', metadata: { name: 'next' }, spec: { size: 1 } })).body;
      expect(next.metadata.resourceVersion).toBe(String(rv + 1));
    } finally {
      await second.stop();
    }
  });
});

/** Every path under dir (directories included) whose mode has group or other bits, with that mode. */
function notPrivate(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    if ((st.mode & 0o077) !== 0) out.push(`${p} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dir);
  return out;
}

describe('private data directory', () => {
  it('keeps the directory 0700 and every file 0600, whatever the umask', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'bdr-cluster-mode-')), 'data');
    const before = process.umask(0o000);
    try {
      const cluster = await startCluster({ dataDir });
      installFixtures(cluster);
      await api(cluster, 'POST', '/api/v1/namespaces/default/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { k: 'v' } });
      expect(readdirSync(join(dataDir, 'store')).sort()).toEqual(['lock', 'snapshot.json', 'wal.jsonl']);
      expect(notPrivate(dataDir)).toEqual([]);
      await cluster.stop();
    } finally {
      process.umask(before);
    }
  });

  it('tightens a data directory an older version left readable', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'bdr-cluster-old-'));
    const first = await startCluster({ dataDir });
    installFixtures(first);
    await first.stop();
    for (const p of [dataDir, join(dataDir, 'store')]) chmodSync(p, 0o755);
    for (const f of ['kubeconfig', 'credentials.json', 'store/snapshot.json', 'store/wal.jsonl']) chmodSync(join(dataDir, f), 0o644);
    expect(notPrivate(dataDir)).toHaveLength(6);
    const second = await startCluster({ dataDir });
    try {
      expect(notPrivate(dataDir)).toEqual([]);
    } finally {
      await second.stop();
    }
  });
});
