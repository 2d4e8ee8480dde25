import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetKind, retentionPolicyKind } from '../../api/kinds/index.ts';
import type { Dataset, RetentionPolicy } from '../../api/types.ts';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { silentLogger } from '../../metrics/log.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { TestBed, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

describe('the operator end to end: Machine → Dataset → snapshots and retention on zfs-fuse', () => {
  const bed = new TestBed();
  let pool: TestPool;
  let tc: TestCluster;
  let operator: Operator;
  let client: KubeClient;

  beforeAll(async () => {
    pool = await bed.pool();
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'here' }, spec: { connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'other', namespace: 'default' }, spec: { keepLast: 5 } });
    // No Vector controller runs here: these only say which policy each vector applies on its target.
    const vector = (name: string, source: object, extra: object = {}) =>
      tc.apply({
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Vector',
        metadata: { name, namespace: 'default' },
        spec: { source, target: { machineRef: { name: 'vault' }, dataset: `vault/${name}` }, ...extra },
      });
    vector('v-default', { datasetRef: { name: 'demo' } }); // the source Dataset's policy: two
    vector('v-chain', { vectorRef: { name: 'v-default' } }); // the source Vector's, hence two
    vector('v-own', { datasetRef: { name: 'demo' } }, { retentionPolicyRef: { name: 'other' } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'two', namespace: 'default' }, spec: { keepLast: 2 } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'demo', namespace: 'default' },
      spec: { machineRef: { name: 'here' }, name: `${pool.name}/demo`, schedule: { interval: '1s' }, retentionPolicyRef: { name: 'two' }, managementPolicy: 'Create' },
    });
    operator = await startOperator({ kubeConfig: tc.kubeConfig, leaderElection: false, metrics: { port: 0 }, probeIntervalMs: 1_000, log: silentLogger });
    await operator.ready;
  });

  afterAll(async () => {
    await operator?.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('creates the dataset, snapshots it on schedule, keeps two restore points and reports them', async () => {
    const events = () => client.core.listNamespacedEvent({ namespace: 'default' }).then((l) => l.items.filter((e) => e.involvedObject.name === 'demo'));
    await eventually(async () => ((await events()).some((e) => e.reason === 'SnapshotsPruned') ? true : undefined), 'a pruned snapshot', 60_000);
    const zfs = new ZfsMachine(new LocalConnection());
    const inv = await zfs.inventory({ roots: [`${pool.name}/demo`] });
    expect(inv.datasets.map((d) => d.name)).toEqual([`${pool.name}/demo`]);
    const owned = inv.snapshots.filter((s) => s.userProperties['dev.bdr:owner']?.value === 'bdr');
    expect(owned.length).toBeGreaterThanOrEqual(2);
    expect(owned.length).toBeLessThanOrEqual(3); // two kept, plus at most one taken since the last prune
    const reasons = new Set((await events()).map((e) => e.reason));
    expect([...reasons]).toEqual(expect.arrayContaining(['DatasetCreated', 'SnapshotCreated', 'SnapshotsPruned']));

    const ds = await eventually(async () => {
      const d = await client.get<Dataset>(resourceOf(datasetKind), 'demo', 'default');
      return d?.status?.restorePoints?.count !== undefined && d.status.restorePoints.count >= 2 ? d : undefined;
    }, 'Dataset status');
    expect(ds.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(ds.status?.restorePoints?.newest?.name).toMatch(/^bdr-\d{8}T\d{6}Z$/);

    const policy = await eventually(async () => {
      const p = await client.get<RetentionPolicy>(resourceOf(retentionPolicyKind), 'two', 'default');
      return p?.status?.usedBy?.datasets?.length ? p : undefined;
    }, 'RetentionPolicy status');
    expect(policy.status?.usedBy?.datasets).toEqual(['demo']);
    expect(policy.status?.usedBy?.vectors).toEqual(['v-chain', 'v-default']);
    const other = await eventually(async () => {
      const p = await client.get<RetentionPolicy>(resourceOf(retentionPolicyKind), 'other', 'default');
      return p?.status?.usedBy?.vectors?.length ? p : undefined;
    }, 'RetentionPolicy other status');
    expect(other.status?.usedBy).toEqual({ datasets: [], vectors: ['v-own'] });
    expect(policy.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');

    const metrics = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/bdr_dataset_snapshots\{namespace="default",dataset="demo",machine="here"\} [23]/);
    expect(metrics).toMatch(/bdr_dataset_newest_snapshot_timestamp_seconds\{namespace="default",dataset="demo",machine="here"\} \d+/);
  });
});
