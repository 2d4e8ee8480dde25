/**
 * The Machine's rules, end to end: objects applied with the real kubectl to the embedded cluster, the operator
 * running, datasets on zfs-fuse. A refused Dataset leaves no trace on ZFS; an allowed one gets its properties.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { datasetKind } from '../../api/kinds/index.ts';
import type { Condition, Dataset } from '../../api/types.ts';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { silentLogger } from '../../metrics/log.ts';
import { kubectlOk, requireKubectl } from '../cluster/helpers.ts';
import { run, runOk, TestBed, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

const DATASETS = resourceOf(datasetKind);

describe('Machine tenancy rules with kubectl, the operator and zfs-fuse', () => {
  const bed = new TestBed();
  let pool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let operator: Operator;
  let root: string;

  const apply = (docs: object[]) => kubectlOk(tc.cluster, ['apply', '-f', '-'], { input: docs.map((d) => stringify(d)).join('---\n') });
  const dataset = (ns: string, name: string, zfsName: string, properties?: Record<string, string>) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name, namespace: ns },
    spec: {
      machineRef: { name: 'shared' },
      name: zfsName,
      schedule: { interval: '1s' },
      retentionPolicyRef: { name: 'p' },
      managementPolicy: 'Create',
      ...(properties ? { properties } : {}),
    },
  });
  const policy = (ns: string) => ({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: ns }, spec: { keepLast: 2 } });
  const condition = async (ns: string, name: string, type: string): Promise<Condition | undefined> =>
    (await client.get<Dataset>(DATASETS, name, ns))?.status?.conditions?.find((c) => c.type === type);
  const exists = async (name: string) => (await run(['zfs', 'list', '-H', '-o', 'name', name])).code === 0;
  const eventsOf = async (ns: string, name: string) =>
    (await client.core.listNamespacedEvent({ namespace: ns })).items.filter((e) => e.involvedObject.name === name);

  beforeAll(async () => {
    requireKubectl();
    pool = await bed.pool({ mounted: true });
    root = `${pool.mountpoint ?? ''}/tenants`;
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    await apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-a' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } },
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-c', labels: { 'bdr.dev/tenant': 'shared' } } },
      {
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Machine',
        metadata: { name: 'shared' },
        spec: {
          connection: { type: 'local' },
          pools: [pool.name],
          allowedNamespaces: { names: ['team-a'], selector: { matchLabels: { 'bdr.dev/tenant': 'shared' } } },
          mountpointRoot: root,
        },
      },
      policy('team-a'),
      policy('team-b'),
      policy('team-c'),
    ]);
    operator = await startOperator({ kubeConfig: tc.kubeConfig, leaderElection: false, metrics: false, probeIntervalMs: 1_000, log: silentLogger });
    await operator.ready;
  }, 120_000);

  afterAll(async () => {
    await operator?.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('refuses a Dataset from a namespace the Machine does not allow: Ready=False, Stalled, nothing on ZFS', async () => {
    const name = `${pool.name}/intruder`;
    await apply([dataset('team-b', 'intruder', name)]);
    await kubectlOk(tc.cluster, ['wait', '-n', 'team-b', 'dataset/intruder', '--for=condition=Stalled', '--timeout=60s']);
    const ready = await condition('team-b', 'intruder', 'Ready');
    expect(ready?.status).toBe('False');
    expect(ready?.reason).toBe('NamespaceNotAllowed');
    expect(ready?.message).toContain('Machine shared does not allow namespace team-b');
    expect(ready?.message).toContain('names [team-a] or selector {bdr.dev/tenant=shared}');
    expect((await eventsOf('team-b', 'intruder')).map((e) => e.reason)).toContain('NamespaceNotAllowed');
    expect(await exists(pool.name)).toBe(true); // the probe itself can see datasets
    expect(await exists(name)).toBe(false);
  });

  it('refuses mountpoint /etc and creates nothing; takes a mountpoint below the root', async () => {
    await apply([dataset('team-a', 'etc', `${pool.name}/team-a/etc`, { mountpoint: '/etc' }), dataset('team-a', 'below', `${pool.name}/team-a/below`, { mountpoint: `${root}/below` })]);
    await kubectlOk(tc.cluster, ['wait', '-n', 'team-a', 'dataset/etc', '--for=condition=Stalled', '--timeout=60s']);
    const stalled = await condition('team-a', 'etc', 'Stalled');
    expect(stalled?.reason).toBe('MountpointNotAllowed');
    expect(stalled?.message).toContain(`mountpoint "/etc" is not below Machine shared's spec.mountpointRoot ${root}`);
    expect(await exists(`${pool.name}/team-a/etc`)).toBe(false);
    await kubectlOk(tc.cluster, ['wait', '-n', 'team-a', 'dataset/below', '--for=condition=Ready', '--timeout=60s']);
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', `${pool.name}/team-a/below`])).trim()).toBe(`${root}/below`);
  });

  it('refuses sharenfs with the property named, and creates nothing', async () => {
    await apply([dataset('team-a', 'share', `${pool.name}/team-a/share`, { compression: 'lz4', sharenfs: 'rw' })]);
    await kubectlOk(tc.cluster, ['wait', '-n', 'team-a', 'dataset/share', '--for=condition=Stalled', '--timeout=60s']);
    const stalled = await condition('team-a', 'share', 'Stalled');
    expect(stalled?.reason).toBe('PropertyNotAllowed');
    expect(stalled?.message).toContain('sharenfs: refused');
    expect(await exists(`${pool.name}/team-a/share`)).toBe(false);
  });

  it('creates an allowed Dataset with compression gzip and snapshots it', async () => {
    const name = `${pool.name}/team-a/gz`;
    await apply([dataset('team-a', 'gz', name, { compression: 'gzip' })]);
    await eventually(async () => ((await eventsOf('team-a', 'gz')).some((e) => e.reason === 'SnapshotCreated') ? true : undefined), 'a restore point of gz', 60_000);
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'compression', name])).trim()).toBe('gzip\tlocal');
  });

  it('adopts only: a Dataset with managementPolicy Adopt whose ZFS dataset is missing is reported, not created', async () => {
    const name = `${pool.name}/team-a/typo`;
    await apply([{ ...dataset('team-a', 'typo', name), spec: { ...dataset('team-a', 'typo', name).spec, managementPolicy: 'Adopt' } }]);
    const ready = await eventually(async () => {
      const c = await condition('team-a', 'typo', 'Ready');
      return c?.reason === 'DatasetNotFound' ? c : undefined;
    }, 'DatasetNotFound');
    expect(ready.status).toBe('False');
    expect(await exists(name)).toBe(false);
  });

  it('allows a namespace by its labels, and refuses it once the label is gone', async () => {
    const name = `${pool.name}/team-c/labelled`;
    await apply([dataset('team-c', 'labelled', name)]);
    await kubectlOk(tc.cluster, ['wait', '-n', 'team-c', 'dataset/labelled', '--for=condition=Ready', '--timeout=60s']);
    expect(await exists(name)).toBe(true);
    await kubectlOk(tc.cluster, ['label', 'namespace', 'team-c', 'bdr.dev/tenant-']);
    await kubectlOk(tc.cluster, ['wait', '-n', 'team-c', 'dataset/labelled', '--for=condition=Stalled', '--timeout=60s']);
    expect((await condition('team-c', 'labelled', 'Stalled'))?.reason).toBe('NamespaceNotAllowed');
  });

  it("creates a Dataset without a mountpoint unmounted where it would inherit one outside the Machine's mountpointRoot, and says so", async () => {
    const name = `${pool.name}/team-a/gz`;
    // Created by the tests before: its parent team-a was made a never-mounted container (with team-a/below), and
    // gz did not inherit POOL_MOUNTPOINT/team-a/gz, which is outside the root.
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'mountpoint', name])).trim()).toBe('none\tlocal');
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'canmount', `${pool.name}/team-a`])).trim()).toBe('off\tlocal');
    const created = (await eventsOf('team-a', 'gz')).find((e) => e.reason === 'DatasetCreated');
    expect(created?.message).toBe(
      `created ${name} on shared; not mounted: it would have inherited mountpoint ${pool.mountpoint ?? ''}/team-a/gz from ${pool.name}/team-a, outside Machine shared's spec.mountpointRoot ${root}; set spec.properties.mountpoint below it to mount it`,
    );
  });

  it("refuses a namespace naming another allowed namespace's dataset, or the pool above both, and changes nothing there", async () => {
    // team-c is allowed on the same Machine (again: the test before took its label away); team-a's datasets lie
    // below its own root POOL/team-a.
    await kubectlOk(tc.cluster, ['label', '--overwrite', 'namespace', 'team-c', 'bdr.dev/tenant=shared']);
    const victim = `${pool.name}/team-a/gz`;
    // What team-c could change: the dataset's own settings (local values), and what lies below it.
    const settings = async () => (await runOk(['zfs', 'get', '-H', '-s', 'local', '-o', 'name,property,value', 'all', victim])).trim();
    const children = async () => (await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', victim])).trim();
    const [settingsBefore, childrenBefore] = [await settings(), await children()];
    const snapshotsBefore = (await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-r', victim])).trim().split('\n').filter(Boolean);
    await apply([
      { ...dataset('team-c', 'steal', victim), spec: { ...dataset('team-c', 'steal', victim).spec, managementPolicy: 'Adopt', deletionPolicy: 'Delete' } },
      dataset('team-c', 'pool', pool.name),
      dataset('team-c', 'under', `${victim}/mine`),
    ]);
    for (const name of ['steal', 'pool', 'under']) {
      await kubectlOk(tc.cluster, ['wait', '-n', 'team-c', `dataset/${name}`, '--for=condition=Stalled', '--timeout=60s']);
      expect((await condition('team-c', name, 'Stalled'))?.reason).toBe('DatasetNotGranted');
    }
    expect((await condition('team-c', 'steal', 'Stalled'))?.message).toBe(
      `spec.name: ${victim} on Machine shared: it is at or below ${pool.name}/team-a, the root {pool}/{namespace} grants to namespace team-a`,
    );
    expect((await condition('team-c', 'pool', 'Stalled'))?.message).toBe(`spec.name: ${pool.name} on Machine shared: it holds the root of every namespace that {pool}/{namespace} grants`);
    expect(await exists(`${victim}/mine`)).toBe(false);
    await kubectlOk(tc.cluster, ['delete', '-n', 'team-c', 'dataset/steal', 'dataset/pool', 'dataset/under', '--timeout=60s']);
    // No snapshot of team-a's was taken or destroyed by team-c's objects: bdr's own snapshots of team-a's
    // Dataset may have come and gone meanwhile, but none carries team-c's name, and no older one is missing.
    const snapshotsAfter = (await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-r', victim])).trim().split('\n').filter(Boolean);
    expect(snapshotsAfter.length).toBeGreaterThan(0);
    expect((await eventsOf('team-c', 'steal')).some((e) => e.reason === 'SnapshotsPruned' || e.reason === 'SnapshotCreated')).toBe(false);
    expect(snapshotsBefore.length).toBeGreaterThan(0);
    expect(await settings()).toBe(settingsBefore);
    expect(await children()).toBe(childrenBefore);
  });

  it('lets a refused Dataset with deletionPolicy Delete go without destroying anything', async () => {
    // team-b names team-a's dataset: deleting the refused object must not touch team-a's restore points.
    const victim = `${pool.name}/team-a/gz`;
    const before = (await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-r', victim])).trim().split('\n').filter(Boolean);
    expect(before.length).toBeGreaterThan(0);
    await apply([{ ...dataset('team-b', 'thief', victim), spec: { ...dataset('team-b', 'thief', victim).spec, managementPolicy: 'Adopt', deletionPolicy: 'Delete' } }]);
    await kubectlOk(tc.cluster, ['wait', '-n', 'team-b', 'dataset/thief', '--for=condition=Stalled', '--timeout=60s']);
    await eventually(async () => ((await client.get<Dataset>(DATASETS, 'thief', 'team-b'))?.metadata.finalizers?.length ? true : undefined), 'the cleanup finalizer');
    await kubectlOk(tc.cluster, ['delete', '-n', 'team-b', 'dataset/thief', '--timeout=60s']);
    const after = (await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-r', victim])).trim().split('\n').filter(Boolean);
    // Everything that existed before is still there (team-a's own retention may have pruned, so compare owned by the thief: none).
    const events = await eventsOf('team-b', 'thief');
    expect(events.some((e) => e.reason === 'NamespaceNotAllowed' && (e.message ?? '').includes('no restore point was destroyed'))).toBe(true);
    expect(events.some((e) => e.reason === 'SnapshotsPruned')).toBe(false);
    expect(after.length).toBeGreaterThan(0);
  });
});
