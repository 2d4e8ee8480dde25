import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetKind, machineKind } from '../../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, RetentionPolicySpecInput } from '../../api/types.ts';
import { DatasetReconciler } from '../../controllers/dataset-controller.ts';
import { InventoryCache } from '../../controllers/inventory-cache.ts';
import { MachineConnections } from '../../controllers/machine-connections.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { retentionPolicyKind } from '../../api/kinds/index.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { silentLogger } from '../../metrics/log.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { TestBed, runOk, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';

const HOUR = 3_600_000;
const START = Date.UTC(2026, 0, 1, 0, 0, 0);
const abort = new AbortController();
const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });

/** The restore points bdr keeps for a dataset, as hours after START. */
async function ownedHours(zfs: ZfsMachine, dataset: string): Promise<number[]> {
  const inv = await zfs.inventory({ roots: [dataset] });
  return inv.snapshots
    .filter((s) => s.name.startsWith(`${dataset}@bdr-`) && s.userProperties['dev.bdr:owner']?.source === 'local')
    .map((s) => {
      const m = /@bdr-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s.name);
      return (Date.UTC(Number(m?.[1]), Number(m?.[2]) - 1, Number(m?.[3]), Number(m?.[4]), Number(m?.[5]), Number(m?.[6])) - START) / HOUR;
    })
    .sort((a, b) => a - b);
}

describe('Dataset controller with an injected clock on zfs-fuse', () => {
  const bed = new TestBed();
  let pool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let clock: FakeClock;
  let zfs: ZfsMachine;
  const informers: Array<Informer<Machine> | Informer<Dataset> | Informer<RetentionPolicy>> = [];
  let reconciler: DatasetReconciler;
  let datasets: Informer<Dataset>;
  let policies: Informer<RetentionPolicy>;

  const applyPolicy = async (name: string, spec: RetentionPolicySpecInput) => {
    const applied = tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name, namespace: 'default' }, spec });
    const rv = applied.metadata.resourceVersion;
    await eventually(() => (policies.get(`default/${name}`)?.metadata.resourceVersion === rv ? true : undefined), `policy ${name} in the cache`);
  };
  const applyDataset = async (name: string, zfsName: string, policy: string, interval: string) => {
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name, namespace: 'default' },
      spec: { machineRef: { name: 'local' }, name: zfsName, schedule: { interval }, retentionPolicyRef: { name: policy }, managementPolicy: 'Create' },
    });
    await eventually(() => datasets.get(`default/${name}`), `dataset ${name} in the cache`);
  };

  beforeAll(async () => {
    pool = await bed.pool({ sizeMb: 256, mounted: true });
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    clock = new FakeClock(START);
    zfs = new ZfsMachine(new LocalConnection());
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'local' }, spec: { connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }], mountpointRoot: pool.mountpoint } });
    const m = await client.get<Machine>(resourceOf(machineKind), 'local');
    await client.patchStatus(resourceOf(machineKind), m ?? { metadata: { name: 'local' } }, {
      conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message: 'test', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    });
    const machines = new Informer<Machine>(tc.kubeConfig, client, resourceOf(machineKind), silentLogger);
    datasets = new Informer<Dataset>(tc.kubeConfig, client, resourceOf(datasetKind), silentLogger);
    policies = new Informer<RetentionPolicy>(tc.kubeConfig, client, resourceOf(retentionPolicyKind), silentLogger);
    informers.push(machines, datasets, policies);
    await Promise.all(informers.map((i) => i.start()));
    await eventually(() => (machines.get('local')?.status?.conditions ? true : undefined), 'the Ready machine in the cache');
    reconciler = new DatasetReconciler({
      client,
      datasets,
      policies,
      machines,
      connections: new MachineConnections(client),
      inventories: new InventoryCache(2_000, clock),
      tasks: new TaskRunner(clock),
      events: new EventRecorder(client, 'bdr', 'default', silentLogger, clock),
      clock,
    });
  });

  afterAll(async () => {
    for (const i of informers) await i.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('leaves exactly the expected restore points after 72 simulated hours of hourly snapshots', async () => {
    await applyPolicy('hourly', { keepLast: 3, hourly: 24, daily: 7 });
    const dataset = `${pool.name}/vms`;
    await applyDataset('vms', dataset, 'hourly', '1h');
    for (let h = 1; h <= 72; h++) {
      clock.advance(HOUR);
      await reconciler.reconcile('default/vms', ctx('default/vms'));
    }
    // Taken at hours 1…72 (Jan 1 01:00 … Jan 4 00:00 UTC). Kept: the 24 most recent hours (49…72), which
    // include keepLast's 3; and the newest of each of the 7 most recent days: Jan 4 (72), Jan 3 (71),
    // Jan 2 (47) and Jan 1 (23).
    const expected = [23, 47, ...Array.from({ length: 24 }, (_, i) => 49 + i)];
    expect(await ownedHours(zfs, dataset)).toEqual(expected);

    const ds = await eventually(async () => {
      const obj = await client.get<Dataset>(resourceOf(datasetKind), 'vms', 'default');
      return obj?.status?.restorePoints?.count === expected.length ? obj : undefined;
    }, 'status to report the restore points');
    expect(ds.status?.restorePoints?.newest?.name).toBe('bdr-20260104T000000Z');
    expect(ds.status?.restorePoints?.oldest?.name).toBe('bdr-20260101T230000Z');
    expect(ds.status?.nextSnapshotTime).toBe('2026-01-04T01:00:00Z');
    expect(ds.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  }, 300_000);

  it('never destroys a held restore point, and never one bdr did not take', async () => {
    await applyPolicy('two', { keepLast: 2 });
    const dataset = `${pool.name}/held`;
    await applyDataset('held', dataset, 'two', '1h');
    clock.advance(HOUR);
    await reconciler.reconcile('default/held', ctx('default/held'));
    const [first] = await ownedHours(zfs, dataset);
    const firstName = `${dataset}@bdr-${new Date(START + (first ?? 0) * HOUR).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
    await zfs.hold('keep-me', [firstName]);
    await runOk(['zfs', 'snapshot', `${dataset}@manual`]);
    for (let i = 0; i < 5; i++) {
      clock.advance(HOUR);
      await reconciler.reconcile('default/held', ctx('default/held'));
    }
    const hours = await ownedHours(zfs, dataset);
    expect(hours).toContain(first);
    expect(hours).toHaveLength(3); // the held one plus keepLast: 2
    const names = (await zfs.inventory({ roots: [dataset] })).snapshots.map((s) => s.name);
    expect(names).toContain(`${dataset}@manual`);
    await zfs.release('keep-me', [firstName]);
  });

  it('thins the oldest intermediate restore points when the pool passes maxRolling, keeping the newest and held ones', async () => {
    await applyPolicy('rolling', { keepLast: 1, hourly: 48 });
    const dataset = `${pool.name}/cap`;
    await applyDataset('cap', dataset, 'rolling', '1h');
    clock.advance(HOUR);
    await reconciler.reconcile('default/cap', ctx('default/cap'));
    const dir = join(pool.mountpoint ?? '', 'cap');
    // Each restore point alone holds one 16 MiB file: written before its snapshot, deleted after it.
    for (let i = 0; i < 5; i++) {
      await writeFile(join(dir, `f${i}`), randomBytes(16 * 1024 * 1024));
      clock.advance(HOUR);
      await reconciler.reconcile('default/cap', ctx('default/cap'));
      await rm(join(dir, `f${i}`));
    }
    const before = await ownedHours(zfs, dataset);
    expect(before).toHaveLength(6);
    const oldest = before[1] ?? 0; // the first restore point holding data
    const heldName = `${dataset}@bdr-${new Date(START + oldest * HOUR).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
    await zfs.hold('keep-me', [heldName]);
    // zfs-fuse commits frees and writes with the transaction group; wait until the pool shows the data.
    const allocated = await eventually(async () => {
      const p = (await zfs.inventory({ roots: [dataset] })).pools.find((x) => x.name === pool.name);
      return p && p.allocated / p.size > 0.25 ? p : undefined;
    }, 'the pool to show the written data', 60_000);
    const percent = Math.floor((allocated.allocated / allocated.size) * 100);
    // Asks for about two restore points' worth of space back.
    await applyPolicy('rolling', { keepLast: 1, hourly: 48, maxRolling: { capacityPercent: percent - 10 } });
    clock.advance(HOUR);
    await reconciler.reconcile('default/cap', ctx('default/cap'));

    const after = await ownedHours(zfs, dataset);
    const destroyed = before.filter((h) => !after.includes(h));
    expect(destroyed.length).toBeGreaterThanOrEqual(1);
    expect(after).toContain(oldest); // held
    expect(after.at(-1)).toBeGreaterThan(before.at(-1) ?? 0); // a new newest was taken and kept
    expect(after).toContain(before.at(-1)); // the previous newest holds the latest data: it goes last
    // Oldest first, skipping the held one: the destroyed are exactly the oldest unheld restore points.
    const unheld = before.filter((h) => h !== oldest);
    expect(destroyed).toEqual(unheld.slice(0, destroyed.length));
    const events = await client.core.listNamespacedEvent({ namespace: 'default' });
    const pruned = events.items.filter((e) => e.reason === 'SnapshotsPruned' && e.involvedObject.name === 'cap');
    expect(pruned.some((e) => (e.message ?? '').includes('maxRolling: pool at'))).toBe(true);
    await zfs.release('keep-me', [heldName]);
  }, 300_000);

  // A full simulated week (2,016 real snapshots) would take many minutes on zfs-fuse; the week runs in the pure
  // simulation of test/planning, and here eight hours of the same schedule run through the controller.
  it('holds maxSnapshots while snapshots are taken every 5 minutes and a held base pins the oldest', async () => {
    // Unchecked, keepLast 6 plus one per hour would grow to 14 over eight hours.
    await applyPolicy('capped', { keepLast: 6, hourly: 24, maxSnapshots: 10 });
    const dataset = `${pool.name}/capped`;
    await applyDataset('capped', dataset, 'capped', '5m');
    const counts: number[] = [];
    for (let i = 0; i < 96; i++) {
      clock.advance(5 * 60_000);
      await reconciler.reconcile('default/capped', ctx('default/capped'));
      if (i === 2) {
        const [first] = await ownedHours(zfs, dataset);
        const name = `${dataset}@bdr-${new Date(START + (first ?? 0) * HOUR).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
        await zfs.hold('vector-base', [name]);
      }
      counts.push((await ownedHours(zfs, dataset)).length);
    }
    expect(Math.max(...counts)).toBeLessThanOrEqual(10);
    expect(counts.at(-1)).toBe(10);
  }, 300_000);

  it('takes and prunes nothing for a suspended Dataset, and says so in condition Suspended', async () => {
    await applyPolicy('paused', { keepLast: 1 });
    const dataset = `${pool.name}/paused`;
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'paused', namespace: 'default' },
      spec: { machineRef: { name: 'local' }, name: dataset, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'paused' }, managementPolicy: 'Create', suspend: true },
    });
    await eventually(() => (datasets.get('default/paused')?.spec.suspend ? true : undefined), 'the suspended Dataset in the cache');
    for (let i = 0; i < 3; i++) {
      clock.advance(HOUR);
      await reconciler.reconcile('default/paused', ctx('default/paused'));
    }
    expect(await ownedHours(zfs, dataset)).toEqual([]);
    const ds = await eventually(async () => {
      const obj = await client.get<Dataset>(resourceOf(datasetKind), 'paused', 'default');
      return obj?.status?.conditions?.some((c) => c.type === 'Suspended') ? obj : undefined;
    }, 'condition Suspended');
    expect(ds.status?.conditions?.find((c) => c.type === 'Suspended')?.reason).toBe('DatasetSuspended');
    expect(ds.status?.nextSnapshotTime).toBeUndefined();
  });

  it('stalls a Dataset whose pool the Machine does not manage, and runs nothing for it', async () => {
    await applyPolicy('unmanaged', { keepLast: 1 });
    await applyDataset('elsewhere', 'otherpool/data', 'unmanaged', '1h');
    await reconciler.reconcile('default/elsewhere', ctx('default/elsewhere'));
    const ds = await eventually(async () => {
      const obj = await client.get<Dataset>(resourceOf(datasetKind), 'elsewhere', 'default');
      return obj?.status?.conditions?.some((c) => c.type === 'Stalled') ? obj : undefined;
    }, 'the Dataset to stall');
    const stalled = ds.status?.conditions?.find((c) => c.type === 'Stalled');
    expect(stalled?.reason).toBe('PoolNotManaged');
    expect(stalled?.message).toContain(pool.name);
  });

  it('with deletionPolicy Delete destroys its own unheld restore points when deleted, and keeps held and foreign ones', async () => {
    await applyPolicy('del', { keepLast: 5 });
    const dataset = `${pool.name}/gone`;
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'gone', namespace: 'default' },
      spec: { machineRef: { name: 'local' }, name: dataset, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'del' }, managementPolicy: 'Create', deletionPolicy: 'Delete' },
    });
    await eventually(() => (datasets.get('default/gone')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the Dataset in the cache');
    await reconciler.reconcile('default/gone', ctx('default/gone')); // adds the finalizer
    await eventually(() => (datasets.get('default/gone')?.metadata.finalizers?.includes('bdr.dev/cleanup') ? true : undefined), 'the finalizer');
    for (let i = 0; i < 3; i++) {
      clock.advance(HOUR);
      await reconciler.reconcile('default/gone', ctx('default/gone'));
    }
    const hours = await ownedHours(zfs, dataset);
    expect(hours).toHaveLength(3);
    const heldName = `${dataset}@bdr-${new Date(START + (hours[0] ?? 0) * HOUR).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
    await zfs.hold('vector-base', [heldName]);
    await runOk(['zfs', 'snapshot', `${dataset}@manual`]);

    await client.custom.deleteNamespacedCustomObject({ group: 'bdr.dev', version: 'v1alpha1', namespace: 'default', plural: 'datasets', name: 'gone' });
    await eventually(() => (datasets.get('default/gone')?.metadata.deletionTimestamp ? true : undefined), 'the deletion to reach the cache');
    await reconciler.reconcile('default/gone', ctx('default/gone'));

    expect(await ownedHours(zfs, dataset)).toEqual([hours[0]]);
    const names = (await zfs.inventory({ roots: [dataset] })).snapshots.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining([heldName, `${dataset}@manual`]));
    await eventually(async () => ((await client.get<Dataset>(resourceOf(datasetKind), 'gone', 'default')) === undefined ? true : undefined), 'the Dataset to be gone');
    await zfs.release('vector-base', [heldName]);
  });
});
