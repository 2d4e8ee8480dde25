import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, StorageTarget, Vector } from '../../api/types.ts';
import type { DatasetReconciler } from '../../controllers/dataset-controller.ts';
import type { MachineConnections } from '../../controllers/machine-connections.ts';
import type { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf, type KubeObject } from '../../controllers/runtime/kube.ts';
import type { VectorReconciler } from '../../controllers/vector-controller.ts';
import { run, runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';
import {
  caughtUp as caughtUpIn, condition, ctx, eventsOf as eventsIn, gone, heldOn, markReady as markReadyIn, parentOf, pidOf, pointAt, snapshotsOn, startInformers, startOperator as buildOperator,
} from './sync-bed.ts';
import { machineObject } from './vector-bed.ts';

const HOUR = 3_600_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);

/** `bdr-YYYYMMDDTHHMMSSZ` of the hour `h` after START (the Dataset controller's names). */
const point = (h: number) => pointAt(START + h * HOUR);

/**
 * The faults of vector-sync.test.ts's setup (A primary, B and C storage, each a real sshd; zfs-fuse pools; the
 * embedded API server; a fake clock): a local cap a vector's base prevents, the operator stopping mid-stream,
 * its connection to A cut mid-stream, a key rotation while a stream is held up, and the middle of a chain deleted.
 */
describe('Vector sync: faults', () => {
  const bed = new TestBed();
  let a: TestMachine;
  let b: TestMachine;
  let c: TestMachine;
  let sourcePool: TestPool;
  let replicaPool: TestPool;
  let thirdPool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let clock: FakeClock;
  let vectors: Informer<Vector>;
  let datasets: Informer<Dataset>;
  let policies: Informer<RetentionPolicy>;
  let machines: Informer<Machine>;
  let targets: Informer<StorageTarget>;
  let connections: MachineConnections;
  let dsReconciler: DatasetReconciler;
  let reconciler: VectorReconciler;
  const informers: Array<{ start(): Promise<void>; stop(): Promise<void> }> = [];
  const source = () => `${sourcePool.name}/data`;
  const replica = () => `${replicaPool.name}/replicas/v`;
  const target = () => `${replica()}/data`;
  const onC = () => `${thirdPool.name}/replicas/w/data`;

  const markReady = (name: string) => markReadyIn(client, name);
  const caughtUp = <T extends KubeObject>(informer: Informer<T>, resource: Parameters<KubeClient['get']>[0], name: string, namespace?: string) =>
    caughtUpIn(client, informer, resource, name, namespace);
  const vectorNamed = (name: string) => caughtUp(vectors, resourceOf(vectorKind), name, 'default');
  const eventsOf = (object: string, reason: string) => eventsIn(client, object, reason);
  const streamBytes = async (from: string, to: string) =>
    Number((await runOk(['sh', '-c', `zfs send -i ${source()}@${from} ${source()}@${to} | wc -c`])).trim());
  const snapshotSource = async () => {
    await dsReconciler.reconcile('default/src', ctx('default/src'));
    return caughtUp(datasets, resourceOf(datasetKind), 'src', 'default');
  };
  const requestSync = async (name: string, value: string) => {
    const current = await vectorNamed(name);
    const applied = tc.apply({ ...current, metadata: { ...current.metadata, annotations: { 'bdr.dev/sync-requested': value } }, status: undefined } as unknown as KubeObject);
    await eventually(() => (vectors.get(`default/${name}`)?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the annotation in the cache');
  };
  const syncUntil = (name: string, done: (v: Vector) => boolean, what: string) =>
    eventually(async () => {
      await reconciler.reconcile(`default/${name}`, ctx(`default/${name}`));
      const v = await vectorNamed(name);
      return done(v) ? v : undefined;
    }, what, 120_000, 200);

  /** The operator's in-process parts, built anew as a restarted operator would: nothing carried over but the cluster. */
  const startOperator = () => {
    ({ connections, dsReconciler, reconciler } = buildOperator({ client, vectors, datasets, policies, machines, targets, clock }));
  };

  beforeAll(async () => {
    [a, b, c, sourcePool, replicaPool, thirdPool] = await Promise.all([
      bed.machine('a'), bed.machine('b'), bed.machine('c'), bed.pool({ mounted: true }), bed.pool(), bed.pool(),
    ]);
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    clock = new FakeClock(START);
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
    for (const m of [a, b, c]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
    tc.apply(machineObject(a, 'Source'));
    tc.apply(machineObject(b, 'Storage'));
    tc.apply(machineObject(c, 'Storage'));
    for (const m of ['a', 'b', 'c']) await markReady(m);
    await runOk(['zfs', 'create', source()]);
    await mkdir(join(sourcePool.mountpoint ?? '', 'data'), { recursive: true });
    // Locally the newest point only: any base a vector still needs goes beyond the cap.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'capped', namespace: 'default' }, spec: { hourly: 24, maxSnapshots: 1 } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'remote', namespace: 'default' }, spec: { hourly: 48 } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'mirror', namespace: 'default' }, spec: { keepLast: 1 } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'src', namespace: 'default' },
      spec: { machineRef: { name: 'a' }, name: source(), schedule: { interval: '1h' }, retentionPolicyRef: { name: 'capped' } },
    });
    ({ vectors, machines, datasets, policies, targets } = await startInformers(tc, client, informers));
    await eventually(() => (machines.list().filter((m) => m.status?.conditions).length === 3 && datasets.get('default/src') && policies.list().length === 3 ? true : undefined), 'the cache');
    startOperator();
  }, 300_000);

  afterAll(async () => {
    for (const i of informers) await i.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('RetentionBlocked on the source Dataset names the vector whose base keeps it over maxSnapshots', async () => {
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'h0.bin'), randomBytes(64 * 1024));
    await snapshotSource();
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'v', namespace: 'default' },
      spec: {
        source: { datasetRef: { name: 'src' } },
        target: { machineRef: { name: 'b' }, dataset: replica() },
        schedule: { cron: '0 23 * * *' },
        retentionPolicyRef: { name: 'remote' },
      },
    });
    await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the vector in the cache');
    const v = await syncUntil('v', (x) => x.status?.lastSyncedSnapshot !== undefined, 'the first sync');
    expect(v.status?.lastSyncedSnapshot?.name).toBe(point(0));

    // Hour 1: a new point; the vector (due at 23:00) still needs hour 0 as its base, so two stay where one may.
    clock.advance(HOUR);
    await appendFile(join(sourcePool.mountpoint ?? '', 'data', 'log.txt'), 'hour 1\n');
    const ds = await snapshotSource();
    expect(await snapshotsOn(source())).toEqual([point(0), point(1)]);
    const blocked = await eventsOf('src', 'RetentionBlocked');
    expect(blocked).toHaveLength(1);
    expect(blocked[0]?.message).toBe(
      `maxSnapshots: 2 > 1, but all remaining snapshots are the floor (newest, keepLast, protected); ${point(0)} is the base of vector default/v`,
    );
    expect(ds.status?.conditions?.find((x) => x.type === 'RetentionApplied')).toMatchObject({ status: 'False', reason: 'RetentionBlocked' });
    expect(ds.status?.conditions?.find((x) => x.type === 'RetentionApplied')?.message).toContain('base of vector default/v');
  }, 300_000);

  it('the operator stopped mid-stream: a restarted one sends incrementally from the held base, no full resend, nothing stray', async () => {
    const base = point(0);
    // 32 MiB of new data: more than the pipes and ssh windows hold, so the stream is caught in flight.
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'big.bin'), randomBytes(32 * 1024 * 1024));
    clock.advance(HOUR);
    await snapshotSource();
    const next = point(2);
    expect(await snapshotsOn(source())).toEqual([base, next]);
    await requestSync('v', 'crash');

    const operatorStop = new AbortController();
    const running = reconciler.reconcile('default/v', ctx('default/v', operatorStop.signal));
    const receivePid = await eventually(() => pidOf(`^zfs receive -u ${target()}$`), "B's zfs receive", 60_000, 20);
    process.kill(receivePid, 'SIGSTOP');
    // The operator goes away: its run is cut off, the pipeline on A ended, then its connections are dropped.
    const sshClient = await eventually(() => pidOf(`^ssh -i ${join(a.sshd.dir, 'vectors', 'default', 'v', 'id')} `), "A's ssh client", 30_000, 20);
    operatorStop.abort();
    await expect(running).rejects.toThrow();
    // The end reaches A's pipeline asynchronously (TERM to its process group); dropping the connections before
    // it arrives would leave the pipeline running on A on its own (see the report).
    await eventually(() => gone(sshClient), "A's pipeline to be ended");
    await connections.closeAll();
    process.kill(receivePid, 'SIGCONT');
    await eventually(() => gone(receivePid), "B's receive to end");
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n')).toEqual([replica(), target()]);
    expect(await snapshotsOn(target())).toEqual([base]);

    startOperator();
    clock.advance(10_000);
    const v = await syncUntil('v', (x) => x.status?.lastSyncedSnapshot?.name === next, 'the sync after the restart');
    // One incremental stream from the base: its bytes are those of an independent `zfs send -i | wc -c`.
    expect(v.status?.lastSyncBytes).toBe(await streamBytes(base, next));
    const done = (await eventsOf('v', 'SyncSucceeded')).filter((e) => e.message?.includes(`now at ${next}`));
    expect(done).toHaveLength(1);
    expect(done[0]?.message).toContain('sent 1 stream(s)');
    expect(v.status?.transfer).toBeUndefined();
    // Afterwards: no partial dataset, no orphan snapshot, one hold a side (on the new base).
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n')).toEqual([replica(), target()]);
    expect(await snapshotsOn(target())).toEqual([base, next]);
    expect(await heldOn(source())).toEqual([next]);
    expect(await heldOn(target())).toEqual([next]);
    // The old base is free again: the next local prune takes it.
    clock.advance(HOUR - 10_000);
    await snapshotSource();
    expect(await snapshotsOn(source())).toEqual([next, point(3)]);
  }, 300_000);

  it('a key rotation during a transfer: the transfer finishes with the old key, the next scheduled sync logs in with the new one', async () => {
    // Every hour now, and the key (made at hour 0) due for replacement at 05:00.
    const current = await vectorNamed('v');
    const applied = tc.apply({
      ...current,
      metadata: { name: 'v', namespace: 'default' },
      spec: { ...current.spec, schedule: { interval: '1h' }, keyRotation: { interval: '5h' } },
      status: undefined,
    } as unknown as KubeObject);
    await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the new spec in the cache');
    // The key half takes the new spec in (no sync in that pass): 03:00's point stays for the run below.
    const settled = await eventually(async () => {
      await reconciler.reconcile('default/v', ctx('default/v'));
      const x = await vectorNamed('v');
      return x.status?.observedGeneration === x.metadata.generation ? x : undefined;
    }, 'the new spec applied');
    const oldKey = settled.status?.pairing?.keyFingerprint ?? '';
    expect(oldKey).toMatch(/^SHA256:/);
    const accepted = async (fingerprint: string) =>
      (await readFile(b.sshd.logPath, 'utf8')).split('\n').filter((l) => l.includes('Accepted publickey') && l.includes(fingerprint)).length;

    // 04:00: a point with 32 MiB of new data; its sync starts at 04:59:30, half a minute before the rotation.
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'big.bin'), randomBytes(32 * 1024 * 1024));
    clock.advance(HOUR);
    await snapshotSource();
    clock.advance(HOUR - 30_000);
    const oldLogins = await accepted(oldKey);
    const running = reconciler.reconcile('default/v', ctx('default/v'));
    // Two streams (03:00, then 04:00): whichever receive is caught is held up.
    const receivePid = await eventually(async () => {
      const pid = await pidOf(`^zfs receive -u ${target()}$`);
      if (pid === undefined) return undefined;
      try {
        process.kill(pid, 'SIGSTOP');
        return pid;
      } catch {
        return undefined;
      }
    }, "B's zfs receive", 60_000, 20);
    let rotated: Vector;
    try {
      // A minute on (less than the stall timeout): the key is due and rotates while the stream is held up.
      clock.advance(60_000);
      rotated = await eventually(async () => {
        await reconciler.reconcile('default/v', ctx('default/v'));
        const v = await vectorNamed('v');
        const fp = v.status?.pairing?.keyFingerprint;
        return fp !== undefined && fp !== oldKey ? v : undefined;
      }, 'the rotation');
    } finally {
      process.kill(receivePid, 'SIGCONT');
    }
    await running;
    const newKey = rotated.status?.pairing?.keyFingerprint ?? '';
    expect((await eventsOf('v', 'KeyRotated')).map((e) => e.message)).toEqual([expect.stringContaining(`key ${oldKey} replaced by ${newKey}`)]);
    let v = await vectorNamed('v');
    // The transfer that started with the old key finished with it.
    expect(v.status?.lastSyncedSnapshot?.name).toBe(point(4));
    expect(condition(v, 'Ready')?.status).toBe('True');
    expect(await accepted(oldKey)).toBeGreaterThan(oldLogins);
    expect(await snapshotsOn(target())).toContain(point(4));
    const before = { old: await accepted(oldKey), new: await accepted(newKey) };

    // The next scheduled run (its time from status) happens, with the new key.
    clock.advance(HOUR - 30_000);
    await appendFile(join(sourcePool.mountpoint ?? '', 'data', 'log.txt'), 'hour 6\n');
    await snapshotSource();
    const due = Date.parse(v.status?.nextSyncTime ?? '');
    expect(due).toBeLessThanOrEqual(clock.now());
    v = await syncUntil('v', (x) => x.status?.lastSyncedSnapshot?.name === point(6), 'the next scheduled sync');
    expect(condition(v, 'Ready')?.status).toBe('True');
    expect(await accepted(newKey)).toBe(before.new + 1);
    expect(await accepted(oldKey)).toBe(before.old);
    expect(await heldOn(target())).toEqual([point(6)]);
    expect(await heldOn(source())).toEqual([point(6)]);
  }, 300_000);

  it("the operator's connection to A cut mid-stream (as when its host dies): whether the stream dies or finishes on its own, the restarted operator resends nothing and leaves no stray hold", async () => {
    const base = (await vectorNamed('v')).status?.lastSyncedSnapshot?.name ?? '';
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'big.bin'), randomBytes(32 * 1024 * 1024));
    clock.advance(HOUR);
    await snapshotSource();
    const next = point(7);
    await requestSync('v', 'cut');
    const operatorStop = new AbortController();
    const running = reconciler.reconcile('default/v', ctx('default/v', operatorStop.signal)).catch((e: unknown) => e);
    const receivePid = await eventually(() => pidOf(`^zfs receive -u ${target()}$`), "B's zfs receive", 60_000, 20);
    process.kill(receivePid, 'SIGSTOP');
    // The guard shell on B runs the receive and, once it succeeded, moves the replica's hold: wait for all of it.
    const guardPid = await parentOf(receivePid);
    if (guardPid === undefined) throw new Error("B's zfs receive has no parent");
    // A's sshd sessions are the operator's (the vector key logs in on B): ending them cuts its connection there.
    const sshdA = Number((await readFile(join(a.sshd.dir, 'sshd.pid'), 'utf8')).trim());
    await run(['pkill', '-KILL', '-P', String(sshdA)]);
    operatorStop.abort();
    await running;
    await connections.closeAll();
    process.kill(receivePid, 'SIGCONT');
    await eventually(() => gone(receivePid), "B's receive to end");
    await eventually(() => gone(guardPid), "B's guard to end");
    // The pipeline on A, cut off from the operator, either died with its session or ran to the end on its own
    // (both seen: it depends on whether it wrote to the dead session first). Never half a receive. The replica's
    // hold is on its newest point: the base, or the new point when the guard's receive finished and moved it.
    // The source's is on the base, or also on the new point (held before its stream) when the stream finished
    // (the orphaned shell may or may not have lived to release the base after it).
    const afterCut = await snapshotsOn(target());
    const finishedAlone = afterCut.at(-1) === next;
    expect(afterCut.at(-2 + (finishedAlone ? 0 : 1))).toBe(base);
    // A guard cut off between its hold and its release (its session gone with A's side) leaves the base held
    // too: a stray the next run releases (checked below).
    const heldTarget = await heldOn(target());
    expect(heldTarget).toContain(finishedAlone ? next : base);
    expect(heldTarget.every((h) => h === base || h === next)).toBe(true);
    expect(await heldOn(source())).toContain(finishedAlone ? next : base);

    startOperator();
    clock.advance(10_000);
    const v = await syncUntil('v', (x) => x.status?.lastSyncedSnapshot?.name === next, 'the sync after the restart');
    // No full resend: the one -i from the base, or nothing when the orphaned stream already delivered it.
    expect(v.status?.lastSyncBytes).toBe(finishedAlone ? 0 : await streamBytes(base, next));
    expect(await snapshotsOn(target())).toEqual(finishedAlone ? afterCut : [...afterCut, next]);
    expect(await heldOn(source())).toEqual([next]);
    expect(await heldOn(target())).toEqual([next]);
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n')).toEqual([replica(), target()]);
  }, 300_000);

  it('chain A → B → C: deleting the middle vector (Retain) keeps both replicas, revokes its key; the last hop says why it cannot sync', async () => {
    const onB = target();
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'w', namespace: 'default' },
      spec: { source: { vectorRef: { name: 'v' } }, target: { machineRef: { name: 'c' }, dataset: `${thirdPool.name}/replicas/w` }, retentionPolicyRef: { name: 'mirror' } },
    });
    await eventually(() => (vectors.get('default/w')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the vector in the cache');
    const newestOnB = (await snapshotsOn(onB)).at(-1) ?? '';
    const w = await syncUntil('w', (x) => x.status?.lastSyncedSnapshot !== undefined, 'the chained sync');
    // Its own policy (keepLast: 1) where v's keeps 48 hourlies: one full send of B's newest point only.
    expect(w.status?.lastSyncedSnapshot?.name).toBe(newestOnB);
    expect(await snapshotsOn(onC())).toEqual([newestOnB]);
    expect(w.status?.lastSyncBytes).toBe(Number((await runOk(['sh', '-c', `zfs send ${onB}@${newestOnB} | wc -c`])).trim()));

    const vKey = (await vectorNamed('v')).status?.pairing?.keyFingerprint ?? '';
    expect(vKey).not.toBe('');
    const idFile = join(a.sshd.dir, 'vectors', 'default', 'v', 'id');
    const keyCopy = join(a.sshd.dir, 'v-id-copy');
    await writeFile(keyCopy, await readFile(idFile), { mode: 0o600 });
    const pubKey = (await runOk(['ssh-keygen', '-y', '-f', keyCopy])).trim().split(' ').slice(0, 2).join(' ');
    expect(await readFile(b.sshd.authorizedKeysPath, 'utf8')).toContain(pubKey);
    const bBefore = await snapshotsOn(onB);
    const cBefore = await snapshotsOn(onC());
    const sourceBefore = await snapshotsOn(source());

    await client.custom.deleteNamespacedCustomObject({ group: 'bdr.dev', version: 'v1alpha1', namespace: 'default', plural: 'vectors', name: 'v' });
    await eventually(() => (vectors.get('default/v')?.metadata.deletionTimestamp ? true : undefined), 'the deletion in the cache');
    await eventually(async () => {
      await reconciler.reconcile('default/v', ctx('default/v'));
      return (await client.get<Vector>(resourceOf(vectorKind), 'v', 'default')) === undefined ? true : undefined;
    }, 'v to be gone');
    await eventually(() => (vectors.get('default/v') === undefined ? true : undefined), 'v gone from the cache');

    // Both replicas intact, the source untouched.
    expect(await snapshotsOn(onB)).toEqual(bBefore);
    expect(await snapshotsOn(onC())).toEqual(cBefore);
    expect(await snapshotsOn(source())).toEqual(sourceBefore);
    // v's key is gone from B: sshd refuses it.
    expect(await readFile(b.sshd.authorizedKeysPath, 'utf8')).not.toContain(pubKey);
    const logBefore = (await readFile(b.sshd.logPath, 'utf8')).length;
    const login = await run(['ssh', '-i', keyCopy, '-p', String(b.sshd.port), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', `${b.machine.spec.connection.user}@127.0.0.1`, 'true']);
    expect(login.code).not.toBe(0);
    const log = (await readFile(b.sshd.logPath, 'utf8')).slice(logBefore);
    expect(log).not.toContain('Accepted publickey');
    // v's holds released; w's on B (its base) and on C stay.
    expect(await heldOn(onB)).toEqual([newestOnB]);
    expect(await heldOn(onC())).toEqual([newestOnB]);

    // w cannot sync without its source vector: it says so and destroys nothing.
    await requestSync('w', 'orphan');
    const orphan = await eventually(async () => {
      await reconciler.reconcile('default/w', ctx('default/w'));
      const x = await vectorNamed('w');
      return condition(x, 'Ready')?.status === 'False' ? x : undefined;
    }, 'w to report its missing source');
    expect(condition(orphan, 'Ready')).toMatchObject({ status: 'False', reason: 'DependencyNotReady', message: 'Vector default/v does not exist' });
    expect(orphan.status?.lastSyncedSnapshot?.name).toBe(newestOnB);
    expect(await snapshotsOn(onB)).toEqual(bBefore);
    expect(await snapshotsOn(onC())).toEqual(cBefore);
    expect(await heldOn(onC())).toEqual([newestOnB]);
  }, 300_000);
});
