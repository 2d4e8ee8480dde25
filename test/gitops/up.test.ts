/**
 * `bdr up` end to end: a real `bdr up` process on a temporary git repository, checked step by step with the
 * real kubectl through the kubeconfig it writes.
 */
import { rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BdrUp, commitAll, eventually, initRepo, Kubectl, tempDir, writeRepoFile, type KubeJson } from './harness.ts';

const policy = (name: string, keepLast: number) => `apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata:
  name: ${name}
  namespace: default
spec:
  keepLast: ${keepLast}
  daily: 7
`;

const configMap = (name: string, namespace: string, value: string) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
  namespace: ${namespace}
data:
  greeting: ${value}
`;

const MANAGED = 'app.kubernetes.io/managed-by=bdr-up';

/** resourceVersion of every object bdr up applied, by kind/namespace/name. */
async function managedVersions(k: Kubectl): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const list = await k.json('get', 'retentionpolicies,configmaps,secrets,namespaces', '-A', '-l', MANAGED);
  for (const o of list.items ?? []) out.set(`${String(o.kind)}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o.metadata.resourceVersion);
  return out;
}

/**
 * The versions once the controllers have caught up: the only status they write here is the RetentionPolicies'
 * (which datasets use each), so every policy's status.observedGeneration equals its generation. Idle objects
 * cause no further writes.
 */
async function settledVersions(k: Kubectl): Promise<Map<string, string>> {
  return eventually(async () => {
    const policies = await k.json('get', 'retentionpolicies', '-A');
    const behind = (policies.items ?? []).filter((p) => (p.status as { observedGeneration?: number } | undefined)?.observedGeneration !== p.metadata.generation);
    return behind.length === 0 ? managedVersions(k) : undefined;
  }, 'every RetentionPolicy status to observe its generation');
}

describe('bdr up on a git working tree', { timeout: 180_000 }, () => {
  const tmp = tempDir('bdr-up-dir-');
  const repo = join(tmp.path, 'repo');
  const state = join(tmp.path, 'state');
  let up: BdrUp;
  let k: Kubectl;

  beforeAll(async () => {
    await initRepo(repo);
    await writeRepoFile(repo, 'policies/daily.yaml', policy('daily', 5));
    await writeRepoFile(repo, 'apps/greeting.yaml', configMap('greeting', 'apps', 'hello'));
    await commitAll(repo, 'initial');
    up = new BdrUp(['--repo', repo, '--interval', '1h'], state);
    await up.ready();
    k = new Kubectl(up.kubeconfig, join(tmp.path, 'kube-cache'));
  }, 180_000);

  afterAll(async () => {
    if (up) await up.stop('SIGKILL');
    tmp.remove();
  });

  it('applies the repository, creating the namespace an object needs, and kubectl sees it', async () => {
    const rp = await k.json('get', 'retentionpolicy', 'daily', '-n', 'default');
    expect(rp.spec).toMatchObject({ keepLast: 5, daily: 7 });
    expect(rp.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('bdr-up');
    expect(rp.metadata.annotations?.['bdr.dev/source']).toBe('policies/daily.yaml');
    const cm = await k.json('get', 'configmap', 'greeting', '-n', 'apps');
    expect(cm.data).toEqual({ greeting: 'hello' });
    expect(await k.find('namespace', 'apps')).toBeDefined();
    // The operator's own namespace exists, as manifests/ makes it in a real cluster.
    expect(await k.find('namespace', 'bdr-system')).toBeDefined();
    expect(up.stdout).toContain(`kubeconfig:  ${up.kubeconfig}`);
    // The machines column works through the printed kubeconfig, as the README promises.
    expect(await k.run('get', 'machines')).toBe('');
  });

  it('creates the object of an added file', async () => {
    const before = up.syncs().length;
    await writeRepoFile(repo, 'policies/weekly.yaml', policy('weekly', 3));
    await commitAll(repo, 'add weekly');
    await up.nextSync(before);
    const rp = await eventually(() => k.find('retentionpolicy', 'weekly', '-n', 'default'), 'RetentionPolicy/weekly');
    expect(rp.spec).toMatchObject({ keepLast: 3 });
  });

  it('updates the edited object, and only it', async () => {
    const before = await settledVersions(k);
    const n = up.syncs().length;
    await writeRepoFile(repo, 'policies/daily.yaml', policy('daily', 9));
    await commitAll(repo, 'keep more');
    await eventually(async () => ((await k.json('get', 'retentionpolicy', 'daily', '-n', 'default')).spec?.keepLast === 9 ? true : undefined), 'keepLast 9');
    const sync = await up.nextSync(n);
    expect(sync).toMatchObject({ updated: 1, created: 0, pruned: 0, writes: 1 });
    const after = await managedVersions(k);
    const changed = [...after].filter(([key, rv]) => before.get(key) !== rv).map(([key]) => key);
    expect(changed).toEqual(['RetentionPolicy/default/daily']);
  });

  it('removes a field deleted from the document', async () => {
    await writeRepoFile(repo, 'policies/weekly.yaml', policy('weekly', 3).replace('  daily: 7\n', ''));
    await commitAll(repo, 'weekly without daily');
    await eventually(async () => {
      const rp = await k.json('get', 'retentionpolicy', 'weekly', '-n', 'default');
      return rp.spec && !('daily' in rp.spec) ? true : undefined;
    }, 'spec.daily removed');
  });

  it('prunes the object of a deleted file, and leaves its namespace', async () => {
    const n = up.syncs().length;
    await unlink(join(repo, 'apps/greeting.yaml'));
    await commitAll(repo, 'drop greeting');
    await eventually(async () => ((await k.find('configmap', 'greeting', '-n', 'apps')) === undefined ? true : undefined), 'ConfigMap/apps/greeting pruned');
    const sync = await up.nextSync(n);
    expect(sync).toMatchObject({ pruned: 1 });
    expect(await k.find('namespace', 'apps')).toBeDefined();
  });

  it('never prunes objects created with kubectl, even with the same kind as pruned ones', async () => {
    await k.run('create', 'configmap', 'hand-made', '-n', 'apps', '--from-literal=x=1');
    await k.run('create', 'namespace', 'scratch');
    await writeFile(join(tmp.path, 'rp.yaml'), policy('by-hand', 2));
    await k.run('apply', '-f', join(tmp.path, 'rp.yaml'));
    const n = up.syncs().length;
    // A change that prunes something, so the pruning pass certainly ran with the foreign objects present.
    await unlink(join(repo, 'policies/weekly.yaml'));
    await commitAll(repo, 'drop weekly');
    await up.nextSync(n);
    await eventually(async () => ((await k.find('retentionpolicy', 'weekly', '-n', 'default')) === undefined ? true : undefined), 'weekly pruned');
    expect(await k.find('configmap', 'hand-made', '-n', 'apps')).toBeDefined();
    expect(await k.find('namespace', 'scratch')).toBeDefined();
    expect(await k.find('retentionpolicy', 'by-hand', '-n', 'default')).toBeDefined();
  });

  it('reports an invalid manifest with file:line, skips it, and applies the rest', async () => {
    const n = up.syncs().length;
    await writeRepoFile(repo, 'policies/broken.yaml', policy('broken', 1).replace('keepLast: 1', 'keepLast: lots'));
    await writeRepoFile(repo, 'apps/fine.yaml', configMap('fine', 'apps', 'still applied'));
    await commitAll(repo, 'one broken, one fine');
    const sync = await eventually(() => up.syncs().slice(n).find((s) => s.invalid === 1 && s.created === 1), 'a sync with the invalid manifest');
    expect(sync.errors).toBe(0);
    const findings = up.entries.filter((e) => e.msg === 'invalid manifest skipped').map((e) => String(e.finding));
    expect(findings).toContain('policies/broken.yaml:7: RetentionPolicy/broken: spec.keepLast: must be integer, not the string "lots"');
    expect(await k.find('retentionpolicy', 'broken', '-n', 'default')).toBeUndefined();
    expect((await k.json('get', 'configmap', 'fine', '-n', 'apps')).data).toEqual({ greeting: 'still applied' });
  });

  it('keeps an applied object whose document became invalid (a typo must not delete data)', async () => {
    const n = up.syncs().length;
    await writeRepoFile(repo, 'policies/daily.yaml', policy('daily', 9).replace('keepLast: 9', 'keepLast: nine'));
    await commitAll(repo, 'typo');
    const sync = await eventually(() => up.syncs().slice(n).find((s) => s.invalid === 2), 'a sync with two invalid manifests');
    expect(sync).toMatchObject({ pruned: 0, updated: 0 });
    const rp = await k.json('get', 'retentionpolicy', 'daily', '-n', 'default');
    expect(rp.spec).toMatchObject({ keepLast: 9 });
    // A YAML syntax error hides which objects the file declared: none of them is pruned either.
    const n2 = up.syncs().length;
    await writeRepoFile(repo, 'apps/fine.yaml', `${configMap('fine', 'apps', 'x')}  bad: [unclosed\n`);
    await commitAll(repo, 'syntax error');
    await eventually(() => up.syncs().slice(n2).find((s) => Number(s.invalid) >= 3), 'a sync with the syntax error');
    expect(await k.find('configmap', 'fine', '-n', 'apps')).toBeDefined();
    // Fixing the documents applies them again.
    await writeRepoFile(repo, 'policies/daily.yaml', policy('daily', 4));
    await writeRepoFile(repo, 'apps/fine.yaml', configMap('fine', 'apps', 'fixed'));
    await rm(join(repo, 'policies/broken.yaml'));
    await commitAll(repo, 'fixed');
    await eventually(async () => ((await k.json('get', 'retentionpolicy', 'daily', '-n', 'default')).spec?.keepLast === 4 ? true : undefined), 'keepLast 4');
    await eventually(async () => ((await k.json('get', 'configmap', 'fine', '-n', 'apps')).data?.greeting === 'fixed' ? true : undefined), 'fine fixed');
  });

  it('re-applying an unchanged repository writes nothing', async () => {
    const before = await settledVersions(k);
    expect(before.size).toBeGreaterThanOrEqual(2);
    const n = up.syncs().length;
    // A file event without a content change makes bdr up read and apply the whole repository again.
    await writeRepoFile(repo, 'policies/daily.yaml', policy('daily', 4));
    const sync = await up.nextSync(n);
    expect(sync).toMatchObject({ writes: 0, created: 0, updated: 0, pruned: 0, invalid: 0, errors: 0 });
    expect(await managedVersions(k)).toEqual(before);
  });

  it('loses nothing when killed with SIGKILL and started again on the same state directory', async () => {
    const before = await k.json('get', 'retentionpolicies,configmaps', '-A', '-l', MANAGED);
    const uids = (before.items ?? []).map((o: KubeJson) => o.metadata.uid).sort();
    expect(uids.length).toBeGreaterThanOrEqual(2);
    expect(await up.stop('SIGKILL')).not.toBe(0);

    up = new BdrUp(['--repo', repo, '--interval', '1h'], state);
    await up.ready();
    k = new Kubectl(up.kubeconfig, k.cacheDir);
    const first = up.syncs()[0];
    expect(first).toMatchObject({ writes: 0, created: 0, pruned: 0 });
    const after = await k.json('get', 'retentionpolicies,configmaps', '-A', '-l', MANAGED);
    expect((after.items ?? []).map((o: KubeJson) => o.metadata.uid).sort()).toEqual(uids);
    expect(await k.find('configmap', 'hand-made', '-n', 'apps')).toBeDefined();
    expect(await k.find('retentionpolicy', 'by-hand', '-n', 'default')).toBeDefined();
  });

  it('shuts down gracefully on SIGTERM', async () => {
    expect(await up.stop('SIGTERM')).toBe(0);
    expect(up.entries.some((e) => e.msg === 'shutting down')).toBe(true);
  });
});
