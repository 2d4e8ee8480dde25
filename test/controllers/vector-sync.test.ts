import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, Vector } from '../../api/types.ts';
import type { DatasetReconciler } from '../../controllers/dataset-controller.ts';
import type { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf, type KubeObject } from '../../controllers/runtime/kube.ts';
import type { VectorReconciler } from '../../controllers/vector-controller.ts';
import type { VectorSync } from '../../controllers/vector-sync.ts';
import { registerVectorMetrics } from '../../metrics/vector-metrics.ts';
import { run, runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';
import {
  caughtUp as caughtUpIn, condition, ctx, eventsOf as eventsIn, gone, heldOn, markReady as markReadyIn, pidOf, pointAt, snapshotsOn, startInformers, startOperator, userrefs,
} from './sync-bed.ts';
import { machineObject } from './vector-bed.ts';

const HOUR = 3_600_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);

/** `bdr-YYYYMMDDTHHMMSSZ` of the hour `h` after START (the Dataset controller's names). */
const point = (h: number) => pointAt(START + h * HOUR);

/**
 * Machine A (primary, a real sshd) takes hourly restore points of a mounted zfs-fuse dataset with files written
 * between them; machine B (storage, a real sshd with the guard) receives the replica through A's own OpenSSH
 * with the vector key. The Dataset and Vector reconcilers run against the embedded API server with a fake
 * clock moved hour by hour.
 */
describe('Vector sync: sparse replication by the remote policy', () => {
  const bed = new TestBed();
  let a: TestMachine;
  let b: TestMachine;
  let c: TestMachine;
  let thirdPool: TestPool;
  let sourcePool: TestPool;
  let replicaPool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let clock: FakeClock;
  let vectors: Informer<Vector>;
  let datasets: Informer<Dataset>;
  let policies: Informer<RetentionPolicy>;
  let machines: Informer<Machine>;
  let dsReconciler: DatasetReconciler;
  let reconciler: VectorReconciler;
  let sync: VectorSync;
  const registry = new Registry();
  const informers: Array<{ start(): Promise<void>; stop(): Promise<void> }> = [];
  const source = () => `${sourcePool.name}/data`;
  const replica = () => `${replicaPool.name}/replicas/v`;
  const target = () => `${replica()}/data`;
  let hour = 0;
  /** What each successful run sent, as the test measures it independently with `zfs send | wc -c` on A. */
  const measured: number[] = [];
  const reported: number[] = [];

  const markReady = (name: string) => markReadyIn(client, name);
  /** Waits until the cache holds what the API server holds, so each reconcile acts on the last write. */
  const caughtUp = <T extends KubeObject>(informer: Informer<T>, resource: Parameters<KubeClient['get']>[0], name: string, namespace?: string) =>
    caughtUpIn(client, informer, resource, name, namespace);
  const vector = () => caughtUp(vectors, resourceOf(vectorKind), 'v', 'default');
  const eventsOf = (reason: string) => eventsIn(client, 'v', reason);
  const streamBytes = async (from: string | undefined, to: string) => {
    const send = from ? `zfs send -i ${source()}@${from} ${source()}@${to}` : `zfs send ${source()}@${to}`;
    return Number((await runOk(['sh', '-c', `${send} | wc -c`])).trim());
  };

  /** Churn, then one simulated hour: the Dataset takes its restore point, the Vector syncs when due. */
  const tick = async () => {
    clock.advance(HOUR);
    hour += 1;
    await churn();
    await dsReconciler.reconcile('default/src', ctx('default/src'));
    await caughtUp(datasets, resourceOf(datasetKind), 'src', 'default');
    const before = (await vector()).status?.lastSyncedSnapshot?.name;
    await reconciler.reconcile('default/v', ctx('default/v'));
    const after = await vector();
    const now = after.status?.lastSyncedSnapshot?.name;
    if (now !== before && now !== undefined && after.status?.lastSyncTime === new Date(clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z')) {
      reported.push(after.status?.lastSyncBytes ?? -1);
    }
    return after;
  };
  const churn = async () => {
    const dir = join(sourcePool.mountpoint ?? '', 'data');
    await writeFile(join(dir, `h${hour}.bin`), randomBytes(48 * 1024));
    await appendFile(join(dir, 'log.txt'), `${'x'.repeat(1000)} ${hour}\n`);
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
    await markReady('a');
    await markReady('b');
    await markReady('c');
    await runOk(['zfs', 'create', source()]);
    await mkdir(join(sourcePool.mountpoint ?? '', 'data'), { recursive: true });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'local', namespace: 'default' }, spec: { hourly: 24 } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'remote', namespace: 'default' }, spec: { daily: 7 } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'mirror', namespace: 'default' }, spec: { daily: 2 } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'src', namespace: 'default' },
      spec: { machineRef: { name: 'a' }, name: source(), schedule: { interval: '1h' }, retentionPolicyRef: { name: 'local' } },
    });
    const started = await startInformers(tc, client, informers);
    ({ vectors, machines, datasets, policies } = started);
    await eventually(() => (machines.list().filter((m) => m.status?.conditions).length === 3 && datasets.get('default/src') && policies.list().length === 3 ? true : undefined), 'the cache');
    const metrics = registerVectorMetrics(registry, () => vectors.list(), () => clock.now(), () => sync.metricsTotals());
    ({ sync, dsReconciler, reconciler } = startOperator({ client, vectors, datasets, policies, machines, targets: started.targets, clock, metrics }));
  }, 300_000);

  afterAll(async () => {
    for (const i of informers) await i.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('hourly local points, a daily remote: after three days the target holds exactly the dailies, one send a day plus the initial one', async () => {
    // Hour 0: the first restore point, then the vector: paired, key authorized, and (never synced) due at once.
    await churn();
    await dsReconciler.reconcile('default/src', ctx('default/src'));
    await caughtUp(datasets, resourceOf(datasetKind), 'src', 'default');
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'v', namespace: 'default' },
      spec: {
        source: { datasetRef: { name: 'src' } },
        target: { machineRef: { name: 'b' }, dataset: replica() },
        schedule: { cron: '0 23 * * *' },
        retentionPolicyRef: { name: 'remote' },
        rpo: '30h',
      },
    });
    await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the vector in the cache');
    const first = await eventually(async () => {
      await reconciler.reconcile('default/v', ctx('default/v'));
      const v = await vector();
      return v.status?.lastSyncedSnapshot ? v : undefined;
    }, 'the first sync', 120_000, 200);
    expect(first.status?.lastSyncedSnapshot?.name).toBe(point(0));
    measured.push(await streamBytes(undefined, point(0)));
    reported.push(first.status?.lastSyncBytes ?? -1);
    expect(first.status?.nextSyncTime).toBe('2026-11-23T23:00:00Z');
    expect(condition(first, 'InSync')?.status).toBe('True');

    // Three days: Mon 01:00 … Wed 23:00 (hour 71). Each evening one -i from the previous day's point.
    let previous = point(0);
    for (let h = 1; h <= 71; h++) {
      const v = await tick();
      if (h % 24 === 23) {
        expect(v.status?.lastSyncedSnapshot?.name, `hour ${h}`).toBe(point(h));
        measured.push(await streamBytes(previous, point(h)));
        previous = point(h);
      } else {
        expect(v.status?.lastSyncedSnapshot?.name, `hour ${h}`).toBe(previous);
      }
    }

    // daily: 7 keeps the newest point of each day: Mon 23:00, Tue 23:00, Wed 23:00. Mon 00:00 (the full send)
    // was the base of Monday's step and went one run later.
    expect(await snapshotsOn(target())).toEqual([point(23), point(47), point(71)]);
    const syncs = await eventsOf('SyncSucceeded');
    const streams = syncs.map((e) => Number(/sent (\d+) stream/.exec(e.message ?? '')?.[1]));
    expect(streams.reduce((x, y) => x + y, 0)).toBe(4);
    expect(syncs.reduce((n, e) => n + (e.count ?? 1), 0)).toBe(4);
    expect((await eventsOf('ReplicaPruned'))[0]?.message).toContain(point(0));
    // Bytes: what the primary's dd counted equals an independent `zfs send | wc -c` of the same streams.
    expect(reported).toHaveLength(4);
    expect(reported).toEqual(measured);
    const daily = measured.slice(1).reduce((x, y) => x + y, 0);
    expect(daily).toBeGreaterThan(23 * 48 * 1024); // a day's churn crossed the wire
    // The source: the last 24 hours (Wed 23:00 among them, held as the base), and Tue 23:00, past hourly: 24,
    // kept as the base until this evening's run released it (the next local prune takes it).
    expect(await userrefs(`${source()}@${point(71)}`)).toBe(1);
    expect(await userrefs(`${source()}@${point(47)}`)).toBe(0);
    expect(await snapshotsOn(source())).toEqual([point(47), ...Array.from({ length: 24 }, (_, i) => point(48 + i))]);
    // The replica is inert: never mounted, read-only.
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'readonly,canmount,mountpoint', target()])).trim().split('\n')).toEqual(['on', 'noauto', 'none']);
    const metrics = await registry.metrics();
    expect(metrics).toContain('bdr_vector_syncs_total{namespace="default",name="v",result="succeeded"} 4');
    expect(metrics).toContain('bdr_vector_sync_duration_seconds_count{namespace="default",name="v"} 4');
    expect(metrics).toContain(`bdr_vector_sent_bytes_total{namespace="default",name="v"} ${measured.reduce((x, y) => x + y, 0)}`);
    expect(metrics).toContain(`bdr_vector_newest_replica_timestamp_seconds{namespace="default",name="v"} ${(START + 71 * HOUR) / 1000}`);
  }, 900_000);

  it("while the secondary's sshd is down the base stays held and protected, InSync goes False; after restart one sparse chain catches up", async () => {
    const base = point(71);
    // sshd's listener stops; sessions already open (the operator's own) stay, as when only the daemon is restarted.
    await b.sshd.pause();
    await eventually(async () => ((await run(['ssh-keyscan', '-p', String(b.sshd.port), '127.0.0.1'])).stdout === '' ? true : undefined), "B's sshd to stop");
    // Thu 00:00 … Fri 12:00 (hours 72 … 108): Thursday's 23:00 run fails and is retried with backoff.
    let v: Vector | undefined;
    for (let h = 72; h <= 108; h++) v = await tick();
    expect(v?.status?.lastSyncedSnapshot?.name).toBe(base);
    expect(v?.status?.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect((await eventsOf('SyncFailed')).length).toBeGreaterThanOrEqual(1);
    // Wed 23:00 is 37 hours old, past the local hourly: 24, yet still there and held; the Dataset never tried it.
    expect(await snapshotsOn(source())).toContain(base);
    expect(await userrefs(`${source()}@${base}`)).toBe(1);
    expect(await eventsOfDataset('RetentionBlocked')).toEqual([]);
    expect(condition(v, 'InSync')).toMatchObject({ status: 'False', reason: 'RpoExceeded' });
    expect(await registry.metrics()).toMatch(/bdr_vector_consecutive_failures\{namespace="default",name="v"\} [1-9]/);

    // Back on the same port with the same host key; resume() waits until this daemon's own log says it listens.
    await b.sshd.resume();
    await eventually(async () => ((await run(['ssh-keyscan', '-p', String(b.sshd.port), '127.0.0.1'])).stdout !== '' ? true : undefined), "B's sshd to answer again");
    // The retry (backoff, at most 10 minutes) catches up: one -i to Thursday's daily, one to the newest point.
    clock.advance(10 * 60_000);
    v = await eventually(async () => {
      await reconciler.reconcile('default/v', ctx('default/v'));
      const x = await vector();
      return x.status?.lastSyncedSnapshot?.name === point(108) ? x : undefined;
    }, 'the catch-up', 120_000, 200);
    // The last attempt while B was down announced the same plan (and failed in its first stream); the one after
    // the restart carried it out.
    const started = (await eventsOf('SyncStarted')).filter((e) => e.message?.includes(`${point(108)} (newest`));
    expect(started.length).toBeGreaterThanOrEqual(1);
    expect(new Set(started.map((e) => e.message)).size).toBe(1);
    expect(started[0]?.message).toContain(`sending 2 stream(s)`);
    const succeeded = (await eventsOf('SyncSucceeded')).filter((e) => e.message?.includes(`now at ${point(108)}`));
    expect(succeeded).toHaveLength(1);
    expect(succeeded[0]?.message).toContain('sent 2 stream(s)');
    expect(started[0]?.message).toContain(`-i ${source()}@${base} → ${source()}@${point(95)}`);
    expect(started[0]?.message).toContain(`-i ${source()}@${point(95)} → ${source()}@${point(108)}`);
    expect(v.status?.lastSyncBytes).toBe((await streamBytes(base, point(95))) + (await streamBytes(point(95), point(108))));
    expect(await snapshotsOn(target())).toEqual([point(23), point(47), point(71), point(95), point(108)]);
    expect(v.status?.consecutiveFailures).toBe(0);
    expect(condition(v, 'InSync')?.status).toBe('True');
    expect(await userrefs(`${source()}@${base}`)).toBe(0);
    expect(await userrefs(`${source()}@${point(108)}`)).toBe(1);
    // No stray holds: exactly one held snapshot on each side, the base (the failed attempts held Thursday's point).
    expect(await heldOn(source())).toEqual([point(108)]);
    expect(await heldOn(target())).toEqual([point(108)]);
  }, 900_000);

  it('a diverged target (a snapshot made there by hand) stalls the vector and destroys nothing', async () => {
    await runOk(['zfs', 'snapshot', `${target()}@by-hand`]);
    const onTarget = await snapshotsOn(target());
    const onSource = await snapshotsOn(source());
    // Friday 23:00 is the next scheduled run.
    clock.advance(11 * HOUR - 10 * 60_000);
    await reconciler.reconcile('default/v', ctx('default/v'));
    const v = await vector();
    expect(condition(v, 'Stalled')).toMatchObject({ status: 'True', reason: 'TargetDiverged' });
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'TargetDiverged' });
    expect(condition(v, 'Stalled')?.message).toMatch(/rollback/);
    expect((await eventsOf('TargetDiverged')).length).toBe(1);
    expect(await snapshotsOn(target())).toEqual(onTarget);
    expect(await snapshotsOn(source())).toEqual(onSource);
    expect(v.status?.lastSyncedSnapshot?.name).toBe(point(108));
  }, 300_000);

  it('bdr.dev/sync-requested starts a run now, once per value, and the value is echoed in status', async () => {
    // The user rolls the replica back to its newest received point, as the Stalled message says.
    await runOk(['zfs', 'destroy', `${target()}@by-hand`]);
    const ask = async (value: string) => {
      const current = await vector();
      const applied = tc.apply({ ...current, metadata: { ...current.metadata, annotations: { 'bdr.dev/sync-requested': value } }, status: undefined } as unknown as KubeObject);
      await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the annotation in the cache');
    };
    // The same instant as the refused run: not scheduled before tomorrow 23:00, and its backoff (10 s) has not
    // passed, so only the request runs it.
    await ask('first');
    await reconciler.reconcile('default/v', ctx('default/v'));
    let v = await vector();
    expect(v.status?.lastHandledSyncRequest).toBe('first');
    expect(condition(v, 'Stalled')).toBeUndefined();
    expect(condition(v, 'Ready')).toMatchObject({ status: 'True', reason: 'UpToDate' });
    expect(v.status?.consecutiveFailures).toBe(0);
    expect(v.status?.nextSyncTime).toBe('2026-11-28T23:00:00Z');
    // The same value again is not a new request: nothing runs (no new sync time).
    const lastSyncTime = v.status?.lastSyncTime;
    clock.advance(60_000);
    await reconciler.reconcile('default/v', ctx('default/v'));
    v = await vector();
    expect(v.status?.lastSyncTime).toBe(lastSyncTime);
  }, 300_000);

  it('a stream that stops moving is ended after spec.transport.stallTimeout; the retry sends incrementally from the held base', async () => {
    // A new restore point with 32 MiB of new data: more than the pipes and ssh windows between A and B hold.
    const dir = join(sourcePool.mountpoint ?? '', 'data');
    await writeFile(join(dir, 'big.bin'), randomBytes(32 * 1024 * 1024));
    clock.advance(Date.UTC(2026, 10, 28, 0, 0, 0) - clock.now());
    await dsReconciler.reconcile('default/src', ctx('default/src'));
    await caughtUp(datasets, resourceOf(datasetKind), 'src', 'default');
    const base = point(108);
    const next = point(120);
    expect(await snapshotsOn(source())).toContain(next);
    const current = await vector();
    // 90 s instead of the default 5 minutes: the watchdog reads the Vector's own field.
    const applied = tc.apply({
      ...current,
      metadata: { ...current.metadata, annotations: { 'bdr.dev/sync-requested': 'stall' } },
      spec: { ...current.spec, transport: { ...current.spec.transport, stallTimeout: '90s' } },
      status: undefined,
    } as unknown as KubeObject);
    await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the annotation in the cache');
    // A new generation: the key half looks at it first (no sync in that pass).
    await eventually(async () => {
      await reconciler.reconcile('default/v', ctx('default/v'));
      const x = await vector();
      return x.status?.observedGeneration === x.metadata.generation ? true : undefined;
    }, 'the new spec observed');
    expect((await vector()).status?.lastHandledSyncRequest).not.toBe('stall');

    let settled = false;
    const running = reconciler.reconcile('default/v', ctx('default/v')).finally(() => (settled = true));
    // B's zfs receive (under the guard) stops reading: the stream backs up and dd on A stops counting.
    const receivePid = await eventually(async () => {
      const r = await run(['pgrep', '-f', `^zfs receive -u ${target()}$`]);
      const pid = Number(r.stdout.trim().split('\n')[0]);
      return pid > 0 ? pid : undefined;
    }, "B's zfs receive", 60_000, 20);
    process.kill(receivePid, 'SIGSTOP');
    try {
      // Each advance fires the watchdog unless a byte moved since the last one; once the pipes are full, one does.
      await eventually(() => {
        clock.advance(90_000);
        return settled ? true : undefined;
      }, 'the stalled stream to be ended', 120_000, 500);
      await running;
    } finally {
      process.kill(receivePid, 'SIGCONT');
    }
    await eventually(() => {
      try {
        process.kill(receivePid, 0);
        return undefined;
      } catch {
        return true;
      }
    }, "B's receive to end");
    let v = await vector();
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'SyncFailed' });
    expect(condition(v, 'Ready')?.message).toMatch(/no byte moved for 1m30s \(spec\.transport\.stallTimeout\); the stream was ended/);
    expect(v.status?.consecutiveFailures).toBe(1);
    expect(v.status?.transfer).toBeUndefined();
    // Nothing half-received on B; the base still held on both sides.
    expect(await snapshotsOn(target())).toEqual([point(23), point(47), point(71), point(95), point(108)]);
    expect(await userrefs(`${target()}@${base}`)).toBe(1);
    expect(await userrefs(`${source()}@${base}`)).toBe(1);

    clock.advance(10_000);
    await reconciler.reconcile('default/v', ctx('default/v'));
    v = await vector();
    expect(v.status?.lastSyncedSnapshot?.name).toBe(next);
    expect(v.status?.lastSyncBytes).toBe(await streamBytes(base, next));
    const done = (await eventsOf('SyncSucceeded')).filter((e) => e.message?.includes(`now at ${next}`));
    expect(done).toHaveLength(1);
    expect(done[0]?.message).toContain('sent 1 stream(s)');
    expect(await userrefs(`${source()}@${base}`)).toBe(0);
    expect(await userrefs(`${source()}@${next}`)).toBe(1);
    expect(await userrefs(`${target()}@${next}`)).toBe(1);
  }, 300_000);

  it('killing zfs receive or the ssh client before the receive ends: the next run sends incrementally from the held base, nothing stray left', async () => {
    const idFile = join(a.sshd.dir, 'vectors', 'default', 'v', 'id');
    // zfs send is not among them: on zfs-fuse the whole stream is in the pipes and the daemon before a test can
    // catch the sending process.
    const victims: Array<[string, () => string]> = [
      ['zfs receive', () => `^zfs receive -u ${target()}$`],
      ['the ssh client', () => `^ssh -i ${idFile} `],
    ];
    for (const [i, [what, pattern]] of victims.entries()) {
      const base = (await vector()).status?.lastSyncedSnapshot?.name ?? '';
      await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'big.bin'), randomBytes(32 * 1024 * 1024));
      clock.advance(HOUR - (clock.now() % HOUR));
      await dsReconciler.reconcile('default/src', ctx('default/src'));
      await caughtUp(datasets, resourceOf(datasetKind), 'src', 'default');
      const next = (await caughtUp(datasets, resourceOf(datasetKind), 'src', 'default')).status?.restorePoints?.newest?.name ?? '';
      expect(next, what).not.toBe(base);
      const current = await vector();
      const applied = tc.apply({ ...current, metadata: { ...current.metadata, annotations: { 'bdr.dev/sync-requested': `kill-${i}` } }, status: undefined } as unknown as KubeObject);
      await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the annotation in the cache');

      const running = reconciler.reconcile('default/v', ctx('default/v'));
      // The receive is stopped before it can finish; then the victim dies.
      const receivePid = await eventually(() => pidOf(`^zfs receive -u ${target()}$`), "B's zfs receive", 60_000, 20);
      process.kill(receivePid, 'SIGSTOP');
      const victim = await eventually(() => pidOf(pattern()), what, 30_000, 20);
      process.kill(victim, 'SIGKILL');
      if (victim !== receivePid) process.kill(receivePid, 'SIGCONT');
      await running;
      await eventually(() => gone(receivePid), "B's receive to end");
      let v = await vector();
      expect(condition(v, 'Ready'), what).toMatchObject({ status: 'False', reason: 'SyncFailed' });
      expect(v.status?.lastSyncedSnapshot?.name, what).toBe(base);
      // No partial dataset, no new snapshot on B; the base held on both sides.
      expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n'), what).toEqual([replica(), target()]);
      expect(await snapshotsOn(target()), what).not.toContain(next);
      expect(await userrefs(`${target()}@${base}`), what).toBe(1);
      expect(await userrefs(`${source()}@${base}`), what).toBe(1);

      clock.advance(10_000);
      await reconciler.reconcile('default/v', ctx('default/v'));
      v = await vector();
      expect(v.status?.lastSyncedSnapshot?.name, what).toBe(next);
      expect(v.status?.lastSyncBytes, what).toBe(await streamBytes(base, next));
      expect(await heldOn(source()), what).toEqual([next]);
      expect(await heldOn(target()), what).toEqual([next]);
    }
  }, 600_000);

  it('both ends on one machine: a local pipe on it, counted the same way', async () => {
    const src = `${replicaPool.name}/local-src`;
    await runOk(['zfs', 'create', src]);
    await runOk(['zfs', 'snapshot', `${src}@bdr-20261128T000000Z`]);
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'bsrc', namespace: 'default' },
      spec: { machineRef: { name: 'b' }, name: src, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'local' } },
    });
    await eventually(() => datasets.get('default/bsrc'), 'the dataset in the cache');
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'lv', namespace: 'default' },
      spec: { source: { datasetRef: { name: 'bsrc' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/lrep` }, retentionPolicyRef: { name: 'remote' } },
    });
    await eventually(() => (vectors.get('default/lv')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the vector in the cache');
    // Logins with any key but the operator's own (whose pooled connection may be re-opened at any time).
    const operatorFingerprint = (await runOk(['ssh-keygen', '-l', '-f', b.operatorKey.privateKeyPath])).split(' ')[1] ?? '';
    const logins = async () =>
      (await readFile(b.sshd.logPath, 'utf8')).split('\n').filter((l) => l.includes('Accepted publickey') && !l.endsWith(` ${operatorFingerprint}`)).length;
    const loginsBefore = await logins();
    const v = await eventually(async () => {
      await reconciler.reconcile('default/lv', ctx('default/lv'));
      const x = await caughtUp(vectors, resourceOf(vectorKind), 'lv', 'default');
      return x.status?.lastSyncedSnapshot ? x : undefined;
    }, 'the local sync', 120_000, 200);
    expect(v.status?.lastSyncedSnapshot?.name).toBe('bdr-20261128T000000Z');
    expect(await snapshotsOn(`${replicaPool.name}/lrep/local-src`)).toEqual(['bdr-20261128T000000Z']);
    expect(v.status?.lastSyncBytes).toBe(Number((await runOk(['sh', '-c', `zfs send ${src}@bdr-20261128T000000Z | wc -c`])).trim()));
    // No ssh login but the operator's: the stream went through a pipe on B.
    expect(await logins()).toBe(loginsBefore);
  }, 300_000);

  it("chains: a vector from v's replica mirrors B on to C, sparse again by its own policy, beside v's hold", async () => {
    const onB = target();
    const onC = `${thirdPool.name}/replicas/w/data`;
    // B: v's dailies, Friday's only point (Fri 12:00) and Saturday's newest, v's base.
    const onBNow = await snapshotsOn(onB);
    const newest = onBNow.at(-1) ?? '';
    expect(onBNow.slice(0, 5)).toEqual([point(23), point(47), point(71), point(95), point(108)]);
    expect(newest).toBe((await vector()).status?.lastSyncedSnapshot?.name);
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'w', namespace: 'default' },
      spec: { source: { vectorRef: { name: 'v' } }, target: { machineRef: { name: 'c' }, dataset: `${thirdPool.name}/replicas/w` }, retentionPolicyRef: { name: 'mirror' } },
    });
    await eventually(() => (vectors.get('default/w')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the vector in the cache');
    const w = await eventually(async () => {
      await reconciler.reconcile('default/w', ctx('default/w'));
      const x = await caughtUp(vectors, resourceOf(vectorKind), 'w', 'default');
      return x.status?.lastSyncedSnapshot ? x : undefined;
    }, 'the chained sync', 120_000, 200);
    // daily: 2 keeps Friday's and Saturday's points: a full copy of Friday's, then one -i.
    expect(w.status?.pairing?.machine).toBe('c');
    expect(w.status?.lastSyncedSnapshot?.name).toBe(newest);
    expect(await snapshotsOn(onC)).toEqual([point(108), newest]);
    const expected = Number((await runOk(['sh', '-c', `zfs send ${onB}@${point(108)} | wc -c`])).trim()) +
      Number((await runOk(['sh', '-c', `zfs send -i ${onB}@${point(108)} ${onB}@${newest} | wc -c`])).trim());
    expect(w.status?.lastSyncBytes).toBe(expected);
    // B's newest point is both vectors' base: held by each tag.
    expect(await userrefs(`${onB}@${newest}`)).toBe(2);
    expect(await userrefs(`${onC}@${newest}`)).toBe(1);

    // Deleting w (deletionPolicy Retain) releases its holds on B and C; v's hold on B stays.
    await client.custom.deleteNamespacedCustomObject({ group: 'bdr.dev', version: 'v1alpha1', namespace: 'default', plural: 'vectors', name: 'w' });
    await eventually(() => (vectors.get('default/w')?.metadata.deletionTimestamp ? true : undefined), 'the deletion in the cache');
    await eventually(async () => {
      await reconciler.reconcile('default/w', ctx('default/w'));
      return (await client.get<Vector>(resourceOf(vectorKind), 'w', 'default')) === undefined ? true : undefined;
    }, 'w to be gone');
    expect(await userrefs(`${onB}@${newest}`)).toBe(1);
    expect(await userrefs(`${onC}@${newest}`)).toBe(0);
    expect(await snapshotsOn(onC)).toEqual([point(108), newest]);
  }, 300_000);

  it("transport mode Relay: the stream goes through bdr's own connections, the vector key never logs in", async () => {
    const onC = `${thirdPool.name}/replicas/rv/data`;
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'rv', namespace: 'default' },
      spec: {
        source: { datasetRef: { name: 'src' } },
        target: { machineRef: { name: 'c' }, dataset: `${thirdPool.name}/replicas/rv` },
        retentionPolicyRef: { name: 'mirror' },
        transport: { mode: 'Relay' },
      },
    });
    await eventually(() => (vectors.get('default/rv')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the vector in the cache');
    const rv = await eventually(async () => {
      await reconciler.reconcile('default/rv', ctx('default/rv'));
      const x = await caughtUp(vectors, resourceOf(vectorKind), 'rv', 'default');
      return x.status?.lastSyncedSnapshot ? x : undefined;
    }, 'the relayed sync', 120_000, 200);
    const onSource = await snapshotsOn(source());
    const received = await snapshotsOn(onC);
    expect(received.at(-1)).toBe(onSource.at(-1));
    expect(rv.status?.lastSyncedSnapshot?.name).toBe(onSource.at(-1));
    // The bytes bdr counted are those of the streams for the points C now has: a full first one, then -i each.
    let expected = await streamBytes(undefined, received[0] ?? '');
    for (let k = 1; k < received.length; k++) expected += await streamBytes(received[k - 1], received[k] ?? '');
    expect(rv.status?.lastSyncBytes).toBe(expected);
    const fingerprint = rv.status?.pairing?.keyFingerprint ?? 'none';
    expect((await readFile(c.sshd.logPath, 'utf8')).split('\n').filter((l) => l.includes('Accepted publickey') && l.includes(fingerprint))).toEqual([]);
  }, 300_000);

  const eventsOfDataset = (reason: string) => eventsIn(client, 'src', reason);
});
