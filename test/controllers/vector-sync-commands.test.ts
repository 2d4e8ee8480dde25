import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Dataset, Vector } from '../../api/types.ts';
import { MachineConnections } from '../../controllers/machine-connections.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import type { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf, type KubeObject } from '../../controllers/runtime/kube.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { VectorReconciler } from '../../controllers/vector-controller.ts';
import { VectorKeyStore } from '../../controllers/vector-keys.ts';
import { VectorSync } from '../../controllers/vector-sync.ts';
import { silentLogger } from '../../metrics/log.ts';
import { ZfsError } from '../../zfs/errors.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { run, runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { caughtUp, eventsOf, startInformers, userrefs } from './sync-bed.ts';
import { machineObject } from './vector-bed.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';

const abort = new AbortController();

/** The real TaskRunner, counting the transfer slots asked for (the sync's only way to them). */
class CountingTaskRunner extends TaskRunner {
  transferSlots = 0;
  override submit<T>(request: Parameters<TaskRunner['submit']>[0] & { run: () => Promise<T> }): Promise<T> {
    if (request.kind === 'transfer') this.transferSlots += 1;
    return super.submit(request);
  }
}
const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });
const TAG = 'bdr:vector:default:v';

/**
 * The command budget of one sync, counted where the commands arrive: every command bdr runs on a machine (over
 * its own connection, or by the primary's OpenSSH with the vector key into the guard) is one session in that
 * machine's sshd log ("Starting session", LogLevel VERBOSE). Designed for, per incremental sync of one step
 * with nothing to prune and the replica's properties already right:
 *
 *   A (primary)  1 `zfs get` listing of the source
 *                2 the stream: one sh that holds the point sent, runs `zfs send | dd | ssh B`, then releases the old base
 *   B (storage)  3 `zfs get` listing of the replica (with its inert properties, no `zpool list`)
 *                4 the guard's `zfs receive … +hold <received> +release <old base>` (the vector key's session of 2)
 *                5 the operator's re-check of the vector dataset after a stream (one `zfs get -r`, nothing to set:
 *                  the guard made it inert; it catches a guard killed by SIGKILL)
 *
 * A no-op sync is the two listings. Capabilities were probed once for the connection, not per sync.
 */
describe('Vector sync: commands per sync, counted at the connection', () => {
  const bed = new TestBed();
  let a: TestMachine;
  let b: TestMachine;
  let sourcePool: TestPool;
  let replicaPool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let vectors: Informer<Vector>;
  let reconciler: VectorReconciler;
  let connections: MachineConnections | undefined;
  let tasks: CountingTaskRunner;
  let datasets: Informer<Dataset>;
  const informers: Array<{ start(): Promise<void>; stop(): Promise<void> }> = [];
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const source = () => `${sourcePool.name}/data`;
  const target = () => `${replicaPool.name}/replicas/v/data`;
  let n = 0;
  const snap = async () => {
    n += 1;
    const name = `bdr-${new Date(Date.UTC(2026, 0, 1) + n * 60_000).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}`;
    await runOk(['zfs', 'snapshot', `${source()}@${name}`]);
    return name;
  };
  const current = () => caughtUp(client, vectors, resourceOf(vectorKind), 'v', 'default');
  let request = 0;
  /** One sync now (a new bdr.dev/sync-requested value). */
  const syncNow = async (): Promise<Vector> => {
    const v0 = await current();
    request += 1;
    const applied = tc.apply({ ...v0, metadata: { ...v0.metadata, annotations: { 'bdr.dev/sync-requested': String(request) } }, status: undefined } as unknown as KubeObject);
    await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the request in the cache');
    await reconciler.reconcile('default/v', ctx('default/v'));
    const v = await current();
    expect(v.status?.lastHandledSyncRequest).toBe(String(request));
    expect(v.status?.consecutiveFailures ?? 0).toBe(0);
    return v;
  };
  const sessions = async (m: TestMachine) => (await readFile(m.sshd.logPath, 'utf8')).split('\n').filter((l) => l.includes('Starting session')).length;
  /** Sessions on A and B while `f` runs; sshd writes its log line before the command starts, so counts are final once `f` returns. */
  const counted = async (f: () => Promise<unknown>) => {
    const before = [await sessions(a), await sessions(b)];
    await f();
    return { a: (await sessions(a)) - (before[0] ?? 0), b: (await sessions(b)) - (before[1] ?? 0) };
  };
  const local = async (dataset: string, property: string) => (await runOk(['zfs', 'get', '-H', '-o', 'value,source', property, dataset])).trim();

  beforeAll(async () => {
    [a, b, sourcePool, replicaPool] = await Promise.all([bed.machine('a'), bed.machine('b'), bed.pool(), bed.pool()]);
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
    for (const m of [a, b]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
    tc.apply(machineObject(a, 'Source'));
    tc.apply(machineObject(b, 'Storage'));
    await runOk(['zfs', 'create', source()]);
    await snap();
    // Keeps every point on both sides: nothing is pruned, so the budget below is the sync's own.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'all', namespace: 'default' }, spec: { keepLast: 1000 } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'src', namespace: 'default' },
      spec: { machineRef: { name: 'a' }, name: source(), schedule: { interval: '1h' }, retentionPolicyRef: { name: 'all' } },
    });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'v', namespace: 'default', annotations: { 'bdr.dev/sync-requested': '0' } },
      spec: { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/replicas/v` }, retentionPolicyRef: { name: 'all' }, schedule: { interval: '24h' } },
    });
    const started = await startInformers(tc, client, informers);
    ({ vectors, datasets } = started);
    const { machines, policies, targets } = started;
    await eventually(() => (vectors.get('default/v') && machines.list().length === 2 && datasets.get('default/src') && policies.list().length === 1 ? true : undefined), 'the cache');
    connections = new MachineConnections(client);
    const events = new EventRecorder(client, 'bdr', 'default', silentLogger, clock);
    tasks = new CountingTaskRunner(clock);
    const sync = new VectorSync({ client, vectors, datasets, policies, connections, tasks, events, clock });
    reconciler = new VectorReconciler({ client, vectors, datasets, machines, storageTargets: targets, connections, events, clock, tasks, sync, keys: new VectorKeyStore(client, 'bdr-system', clock) });
    // Pairing (key, guard, dataset) and the full first sync: not part of the budget.
    await eventually(async () => {
      await reconciler.reconcile('default/v', ctx('default/v'));
      const v = await current();
      return v.status?.pairing?.keyFingerprint && v.status.lastSyncedSnapshot ? v : undefined;
    }, 'pairing and the first sync', 240_000, 200);
  }, 300_000);

  afterAll(async () => {
    for (const i of informers) await i.stop();
    await connections?.closeAll();
    await tc?.stop();
    await bed.cleanup();
  });

  it('an incremental sync runs 2 sessions on A and 3 on B; the base moves forward with nothing stray', async () => {
    const before = (await current()).status?.lastSyncedSnapshot?.name ?? '';
    const next = await snap();
    let v: Vector | undefined;
    const count = await counted(async () => (v = await syncNow()));
    expect(v?.status?.lastSyncedSnapshot?.name).toBe(next);
    expect(count).toEqual({ a: 2, b: 3 });
    // The hold moved on both sides: the new base held once, the old one free.
    expect(await userrefs(`${source()}@${next}`)).toBe(1);
    expect(await userrefs(`${target()}@${next}`)).toBe(1);
    expect(await userrefs(`${source()}@${before}`)).toBe(0);
    expect(await userrefs(`${target()}@${before}`)).toBe(0);
  }, 120_000);

  it('a no-op sync is the two listings', async () => {
    const count = await counted(() => syncNow());
    expect(count).toEqual({ a: 1, b: 1 });
  }, 120_000);

  it('a no-op sync whose Dataset reports no newer point is planned without transfer slots: still the two listings', async () => {
    const v = await current();
    const synced = v.status?.lastSyncedSnapshot;
    const guid = (await runOk(['zfs', 'get', '-H', '-p', '-o', 'value', 'guid', `${source()}@${synced?.name ?? ''}`])).trim();
    // What the Dataset controller reports (it does not run here): its newest point is the one already synced.
    const ds = datasets.get('default/src') as Dataset;
    const written = await client.patchStatus(resourceOf(datasetKind), ds, { restorePoints: { count: n, newest: { name: synced?.name ?? '', guid, createdAt: synced?.createdAt ?? '' } } });
    await eventually(() => (datasets.get('default/src')?.metadata.resourceVersion === (written as Dataset).metadata.resourceVersion ? true : undefined), 'the dataset status in the cache');
    const slotsBefore = tasks.transferSlots;
    const count = await counted(() => syncNow());
    expect(count).toEqual({ a: 1, b: 1 });
    expect(tasks.transferSlots).toBe(slotsBefore);
    // A new point: the run takes both machines' transfer slots again.
    await snap();
    await syncNow();
    expect(tasks.transferSlots).toBe(slotsBefore + 2);
  }, 120_000);

  it('a property changed on the replica by hand is seen in the listing and set back in the same sync', async () => {
    await runOk(['zfs', 'set', 'readonly=off', target()]);
    await runOk(['zfs', 'inherit', 'exec', target()]);
    const count = await counted(() => syncNow());
    expect(await local(target(), 'readonly')).toBe('on\tlocal');
    expect(await local(target(), 'exec')).toBe('off\tlocal');
    // The listings, then enforceReplicaProperties' one listing, and one set per wrong value.
    expect(count).toEqual({ a: 1, b: 1 + 1 + 2 });
    const repaired = await eventsOf(client, 'v', 'ReplicaRepaired');
    expect(repaired.map((e) => [e.type, e.message])).toEqual([
      ['Warning', `${replicaPool.name}/replicas/v on b was not inert; the operator set ${target()} readonly: off (local) → on; set ${target()} exec: off (inherited from ${replicaPool.name}/replicas/v) → off`],
    ]);
  }, 120_000);

  it("the vector key receives into its own replica only: a replication stream into another name below the vector dataset is refused", async () => {
    // A compromised primary may send what it likes with the vector key: here a -R stream whose child asks to be
    // mounted, with setuid and exec, into a new name beside the replica. The guard refuses it before any receive.
    const tree = `${sourcePool.name}/tree`;
    await runOk(['zfs', 'create', '-o', 'canmount=noauto', tree]);
    await runOk(['zfs', 'create', '-o', 'canmount=on', '-o', 'setuid=on', '-o', 'exec=on', '-o', 'readonly=off', `${tree}/kid`]);
    await runOk(['zfs', 'snapshot', '-r', `${tree}@s1`]);
    const dir = join(a.sshd.dir, 'vectors', 'default', 'v');
    const into = `${replicaPool.name}/replicas/v/tree`;
    const ssh = `ssh -i ${dir}/id -p ${b.sshd.port} -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${dir}/known_hosts root@127.0.0.1`;
    const r = await run(['sh', '-c', `zfs send -R -p ${tree}@s1 | ${ssh} 'zfs receive -u ${into}'`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`bdr-guard: refused: receive target ${into} is not this key's replica ${target()}\n`);
    expect((await run(['zfs', 'list', into])).code).not.toBe(0);
  }, 60_000);

  it('moveHold holds before it releases, and is idempotent', async () => {
    const zfs = new ZfsMachine(b.connect());
    const ds = `${replicaPool.name}/holds`;
    await runOk(['zfs', 'create', ds]);
    for (const s of ['x', 'y']) await runOk(['zfs', 'snapshot', `${ds}@${s}`]);
    await runOk(['zfs', 'hold', TAG, `${ds}@x`]);
    await zfs.moveHold(TAG, `${ds}@y`, `${ds}@x`);
    expect([await userrefs(`${ds}@x`), await userrefs(`${ds}@y`)]).toEqual([0, 1]);
    // Again: y already held, x no longer held. Both are what was wanted.
    await zfs.moveHold(TAG, `${ds}@y`, `${ds}@x`);
    expect([await userrefs(`${ds}@x`), await userrefs(`${ds}@y`)]).toEqual([0, 1]);
    // A hold that cannot be placed releases nothing.
    const err = await zfs.moveHold(TAG, `${ds}@missing`, `${ds}@y`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ZfsError);
    expect((err as ZfsError).kind).toBe('notFound');
    expect((err as ZfsError).message).toContain('zfs hold');
    expect(await userrefs(`${ds}@y`)).toBe(1);
    await runOk(['zfs', 'release', TAG, `${ds}@y`]);
  }, 60_000);
});
