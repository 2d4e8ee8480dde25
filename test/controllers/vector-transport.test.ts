import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
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
import { burstOf } from '../../zfs/throttle.ts';
import { run, runOk, TestBed, TESTBED_ROOT, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';
import { caughtUp as caughtUpIn, condition, eventsOf as eventsIn, markReady, startInformers, userrefs } from './sync-bed.ts';
import { machineObject } from './vector-bed.ts';

const abort = new AbortController();
const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });
const MiB = 2 ** 20;

/**
 * spec.transport's limits on real streams: machines A (primary) and B, C (storage) are real sshd daemons, N a
 * primary whose sessions get a PATH without pv (as a machine where pv was never installed); zfs-fuse pools; the
 * embedded API server; a fake clock for the run deadline. Rates are measured from the bytes bdr counted and the
 * run's own duration (status.lastSyncBytes, lastSyncDuration): only floors on durations are asserted.
 */
describe('Vector transport limits: bandwidthLimit, syncTimeout', () => {
  const bed = new TestBed();
  let a: TestMachine;
  let b: TestMachine;
  let c: TestMachine;
  let n: TestMachine;
  let sourcePool: TestPool;
  let replicaPool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let clock: FakeClock;
  let vectors: Informer<Vector>;
  let sync: VectorSync;
  let reconciler: VectorReconciler;
  let noPvBin: string;
  const informers: Array<{ start(): Promise<void>; stop(): Promise<void> }> = [];
  const source = () => `${sourcePool.name}/data`;
  const figures: string[] = [];

  const caughtUp = (name: string) => caughtUpIn(client, vectors, resourceOf(vectorKind), name, 'default');
  const eventsOf = (object: string, reason: string) => eventsIn(client, object, reason);
  const snapshotsOn = async (dataset: string) => {
    const r = await run(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-r', dataset]);
    return r.stdout.split('\n').filter((l) => l.startsWith(`${dataset}@`)).map((l) => l.slice(dataset.length + 1));
  };
  const streamBytes = async (dataset: string, from: string | undefined, to: string) =>
    Number((await runOk(['sh', '-c', `zfs send ${from ? `-i ${dataset}@${from} ` : ''}${dataset}@${to} | wc -c`])).trim());
  const applyVector = async (name: string, spec: object, annotation?: string) => {
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name, namespace: 'default', ...(annotation ? { annotations: { 'bdr.dev/sync-requested': annotation } } : {}) },
      spec,
    });
    await eventually(() => (vectors.get(`default/${name}`)?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), `${name} in the cache`);
  };
  const requestSync = async (name: string, value: string, spec?: (s: Vector['spec']) => object) => {
    const current = await caughtUp(name);
    const applied = tc.apply({
      ...current,
      metadata: { ...current.metadata, annotations: { 'bdr.dev/sync-requested': value } },
      spec: spec ? spec(current.spec) : current.spec,
      status: undefined,
    } as unknown as KubeObject);
    await eventually(() => (vectors.get(`default/${name}`)?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the request in the cache');
  };
  const syncUntil = (name: string, done: (v: Vector) => boolean, what: string) =>
    eventually(async () => {
      await reconciler.reconcile(`default/${name}`, ctx(`default/${name}`));
      const v = await caughtUp(name);
      return done(v) ? v : undefined;
    }, what, 180_000, 200);
  const seconds = (v: Vector) => Number.parseFloat(v.status?.lastSyncDuration ?? 'NaN');
  const dataset = (name: string, machine: string, zfsName: string) =>
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name, namespace: 'default' },
      spec: { machineRef: { name: machine }, name: zfsName, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' } },
    });

  beforeAll(async () => {
    // Every program of this host's PATH but pv, for N's sessions (sshd keeps the first SetEnv it reads, the test
    // bed's; a Match block's replaces it).
    noPvBin = join(TESTBED_ROOT, `nopv-${process.pid}`);
    await rm(noPvBin, { recursive: true, force: true });
    await mkdir(noPvBin, { recursive: true });
    const linked = new Set<string>();
    for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name === 'pv' || linked.has(name)) continue;
        linked.add(name);
        await symlink(join(dir, name), join(noPvBin, name));
      }
    }
    [a, b, c, n, sourcePool, replicaPool] = await Promise.all([
      bed.machine('a'), bed.machine('b'), bed.machine('c'), bed.machine('n', { extraConfig: ['Match all', `SetEnv SHLVL=1 PATH=${noPvBin}`] }),
      bed.pool({ mounted: true, sizeMb: 512 }), bed.pool({ sizeMb: 512 }),
    ]);
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    clock = new FakeClock(Date.UTC(2026, 10, 30, 0, 0, 0));
    for (const m of [a, b, c, n]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
    tc.apply(machineObject(a, 'Source'));
    tc.apply(machineObject(n, 'Source'));
    tc.apply(machineObject(b, 'Storage'));
    tc.apply(machineObject(c, 'Storage'));
    for (const name of ['a', 'n', 'b', 'c']) await markReady(client, name);
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: 'default' }, spec: { keepLast: 5 } });
    // 4 MiB of random data: the rate, not the pool, decides how long it takes.
    await runOk(['zfs', 'create', source()]);
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'one.bin'), randomBytes(4 * MiB));
    await runOk(['zfs', 'snapshot', `${source()}@bdr-20261130T000000Z`]);
    dataset('src', 'a', source());
    dataset('onn', 'n', source());
    const started = await startInformers(tc, client, informers);
    vectors = started.vectors;
    const { machines, datasets, policies, targets } = started;
    await eventually(() => (machines.list().filter((m) => m.status?.conditions).length === 4 && datasets.list().length === 2 && policies.list().length === 1 ? true : undefined), 'the cache');
    const connections = new MachineConnections(client);
    const events = new EventRecorder(client, 'bdr', 'default', silentLogger, clock);
    const tasks = new TaskRunner(clock);
    sync = new VectorSync({ client, vectors, datasets, policies, connections, tasks, events, clock });
    reconciler = new VectorReconciler({
      client, vectors, datasets, machines, storageTargets: targets, connections, events, clock, tasks, sync,
      keys: new VectorKeyStore(client, 'bdr-system', clock),
    });
  }, 300_000);

  afterAll(async () => {
    console.log(`transport limits, measured:\n  ${figures.join('\n  ')}`);
    for (const i of informers) await i.stop();
    await tc?.stop();
    await bed.cleanup();
    await rm(noPvBin, { recursive: true, force: true });
  });

  /**
   * A limited vector and an unlimited one send the same full stream of `source`; the limited one's rate, from the
   * bytes bdr counted and the run's own duration, stays within the limit plus the burst both pv and bdr's bucket
   * allow (a tenth of a second of the rate), and the unlimited one is faster.
   */
  const compare = async (what: string, limited: Vector, free: Vector, rate: number) => {
    const bytes = limited.status?.lastSyncBytes ?? 0;
    expect(free.status?.lastSyncBytes).toBe(bytes);
    const floor = (bytes - burstOf(rate)) / rate;
    const line = `${what}: ${bytes} bytes limited to ${rate} B/s in ${seconds(limited).toFixed(2)} s (${(bytes / seconds(limited)).toFixed(0)} B/s; floor ${floor.toFixed(2)} s), unlimited in ${seconds(free).toFixed(2)} s (${(bytes / seconds(free)).toFixed(0)} B/s)`;
    figures.push(line);
    console.log(line);
    expect(seconds(limited)).toBeGreaterThanOrEqual(floor);
    expect(seconds(free)).toBeLessThan(seconds(limited));
  };

  /** zfs-fuse on both ends: every flag a vector asks for by default is unavailable, each with why (said in status). */
  const ZFS_FUSE_UNAVAILABLE = [
    "compressed: the source and target machine's ZFS lacks send -c",
    "largeBlocks: the source and target machine's ZFS lacks send -L",
    "resumable: the source and target machine's ZFS lacks resume tokens (receive -s, send -t)",
  ];

  it('Direct: pv on the primary holds the stream to bandwidthLimit; the same stream unlimited is faster', async () => {
    const snapshot = 'bdr-20261130T000000Z';
    await applyVector('lim', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/lim` }, transport: { bandwidthLimit: '1M' } });
    await applyVector('free', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/free` } });
    const limited = await syncUntil('lim', (v) => v.status?.lastSyncedSnapshot !== undefined, 'the limited sync');
    const free = await syncUntil('free', (v) => v.status?.lastSyncedSnapshot !== undefined, 'the unlimited sync');
    expect(limited.status?.lastSyncBytes).toBe(await streamBytes(source(), undefined, snapshot));
    expect(limited.status?.lastSyncBytes).toBeGreaterThan(4 * MiB);
    expect(await snapshotsOn(`${replicaPool.name}/lim/data`)).toEqual([snapshot]);
    expect(limited.status?.transport).toEqual({ mode: 'Direct', flags: [], unavailable: ZFS_FUSE_UNAVAILABLE });
    await compare('Direct (pv -L on A)', limited, free, MiB);
  }, 300_000);

  it('Relay: bdr paces the stream itself with the same limit', async () => {
    await applyVector('rlim', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'c' }, dataset: `${replicaPool.name}/rlim` }, transport: { mode: 'Relay', bandwidthLimit: '1M' } });
    await applyVector('rfree', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'c' }, dataset: `${replicaPool.name}/rfree` }, transport: { mode: 'Relay' } });
    const limited = await syncUntil('rlim', (v) => v.status?.lastSyncedSnapshot !== undefined, 'the limited relay');
    const free = await syncUntil('rfree', (v) => v.status?.lastSyncedSnapshot !== undefined, 'the unlimited relay');
    expect(limited.status?.transport).toEqual({ mode: 'Relay', flags: [], unavailable: ZFS_FUSE_UNAVAILABLE });
    await compare('Relay (token bucket in bdr)', limited, free, MiB);
  }, 300_000);

  it('a local pipe (both ends on B): pv on B holds it to the limit', async () => {
    // B's dataset gets the same 4 MiB through a stream of A's (the only mounted pool is A's).
    await runOk(['sh', '-c', `zfs send ${source()}@bdr-20261130T000000Z | zfs receive -u ${replicaPool.name}/onb2`]);
    dataset('onb2', 'b', `${replicaPool.name}/onb2`);
    await eventually(async () => ((await client.get<Dataset>(resourceOf(datasetKind), 'onb2', 'default')) ? true : undefined), 'the dataset');
    await applyVector('llim', { source: { datasetRef: { name: 'onb2' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/llim` }, transport: { bandwidthLimit: '1M' } });
    await applyVector('lfree', { source: { datasetRef: { name: 'onb2' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/lfree` } });
    const limited = await syncUntil('llim', (v) => v.status?.lastSyncedSnapshot !== undefined, 'the limited local pipe');
    const free = await syncUntil('lfree', (v) => v.status?.lastSyncedSnapshot !== undefined, 'the unlimited local pipe');
    expect(condition(limited, 'KeyAuthorized')?.reason).toBe('LocalPipe');
    expect(limited.status?.transport).toEqual({ mode: 'LocalPipe', flags: [], unavailable: ZFS_FUSE_UNAVAILABLE });
    await compare('local pipe (pv -L on B)', limited, free, MiB);
  }, 300_000);

  it('a primary without pv: the limited vector refuses to send unthrottled and says so; Relay (limited in bdr) then sends', async () => {
    // N's sessions find no pv, A's do.
    const onN = n.connect();
    const onA = a.connect();
    try {
      expect((await onN.exec(['sh', '-c', 'command -v pv || echo missing'])).stdout.trim()).toBe('missing');
      expect((await onA.exec(['sh', '-c', 'command -v pv || echo missing'])).stdout.trim()).toMatch(/\/pv$/);
    } finally {
      await onN.close();
      await onA.close();
    }
    const target = `${replicaPool.name}/nolim`;
    await applyVector('nolim', { source: { datasetRef: { name: 'onn' } }, target: { machineRef: { name: 'c' }, dataset: target }, transport: { bandwidthLimit: '1M' } });
    const v = await syncUntil('nolim', (x) => condition(x, 'Stalled')?.status === 'True', 'the refusal');
    expect(condition(v, 'Stalled')).toMatchObject({ reason: 'BandwidthLimitUnavailable' });
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'BandwidthLimitUnavailable' });
    expect(condition(v, 'Stalled')?.message).toMatch(/pv on n, which lacks it; nothing was sent unthrottled/);
    expect((await eventsOf('nolim', 'BandwidthLimitUnavailable')).length).toBeGreaterThanOrEqual(1);
    expect(await snapshotsOn(`${target}/data`)).toEqual([]);
    expect(v.status?.lastSyncedSnapshot).toBeUndefined();

    await requestSync('nolim', 'relay', (s) => ({ ...s, transport: { ...s.transport, mode: 'Relay' } }));
    const relayed = await syncUntil('nolim', (x) => x.status?.lastSyncedSnapshot !== undefined, 'the relayed sync');
    expect(condition(relayed, 'Stalled')).toBeUndefined();
    expect(seconds(relayed)).toBeGreaterThanOrEqual(((relayed.status?.lastSyncBytes ?? 0) - burstOf(MiB)) / MiB);
  }, 300_000);

  it('a stallTimeout below its floor (the CRD pattern lets 2s through) stalls the vector with InvalidTransport and sends nothing', async () => {
    const target = `${replicaPool.name}/short`;
    await applyVector('short', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: target }, transport: { stallTimeout: '2s' } });
    const v = await syncUntil('short', (x) => condition(x, 'Stalled')?.status === 'True', 'InvalidTransport');
    expect(condition(v, 'Stalled')).toMatchObject({ reason: 'InvalidTransport', message: 'spec.transport.stallTimeout: 2s is too short: at least 10s' });
    expect(v.status?.lastSyncedSnapshot).toBeUndefined();
    expect(await snapshotsOn(`${target}/data`)).toEqual([]);
  }, 300_000);

  it('syncTimeout: a run still moving bytes at its deadline is ended (SyncTimedOut), nothing half-received; the retry sends incrementally', async () => {
    const base = 'bdr-20261130T000000Z';
    const next = 'bdr-20261130T010000Z';
    const target = `${replicaPool.name}/lim/data`;
    // lim (1 MiB/s, synced at base): 4 MiB more make its next stream take four seconds or more of real time.
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'two.bin'), randomBytes(4 * MiB));
    await runOk(['zfs', 'snapshot', `${source()}@${next}`]);
    await requestSync('lim', 'deadline', (s) => ({ ...s, transport: { ...s.transport, syncTimeout: '1m' } }));
    // A new generation: the key half looks first (no sync in that pass).
    await syncUntil('lim', (x) => x.status?.observedGeneration === x.metadata.generation, 'the new spec observed');
    expect((await caughtUp('lim')).status?.lastHandledSyncRequest).not.toBe('deadline');
    const datasetsBefore = (await runOk(['zfs', 'list', '-H', '-o', 'name', '-r', `${replicaPool.name}/lim`])).trim();

    let settled = false;
    const running = reconciler.reconcile('default/lim', ctx('default/lim')).finally(() => (settled = true));
    // The stream is under way and counting; then a minute passes on the run's clock.
    const moving = await eventually(() => {
      const t = [...sync.metricsTotals()].find((x) => x.name === 'lim');
      return t && t.transferBytes > 0 ? t.transferBytes : undefined;
    }, 'bytes moving', 60_000, 20);
    clock.advance(60_000);
    await running;
    expect(settled).toBe(true);
    const v = await caughtUp('lim');
    expect(moving).toBeLessThan(await streamBytes(source(), base, next));
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'SyncTimedOut' });
    expect(condition(v, 'Ready')?.message).toMatch(new RegExp(`longer than spec.transport.syncTimeout \\(1m\\) and was ended while sending ${next}`));
    expect(condition(v, 'Stalled')).toBeUndefined();
    expect(v.status?.consecutiveFailures).toBe(1);
    expect(v.status?.transfer).toBeUndefined();
    expect((await eventsOf('lim', 'SyncTimedOut')).length).toBe(1);
    // Nothing partial on B: the same datasets, no new snapshot, the base held on both sides; A's send ended.
    expect(await snapshotsOn(target)).toEqual([base]);
    expect((await runOk(['zfs', 'list', '-H', '-o', 'name', '-r', `${replicaPool.name}/lim`])).trim()).toBe(datasetsBefore);
    expect(await userrefs(`${target}@${base}`)).toBe(1);
    expect(await userrefs(`${source()}@${base}`)).toBeGreaterThanOrEqual(1);
    await eventually(async () => ((await run(['pgrep', '-f', `zfs receive -u ${target}`])).stdout.trim() === '' ? true : undefined), "B's receive to end");

    // After the backoff (10 s) the retry, with a deadline it can meet, sends the one step from the held base.
    await requestSync('lim', 'deadline-retry', (s) => ({ ...s, transport: { ...s.transport, syncTimeout: '1h' } }));
    clock.advance(10_000);
    const done = await syncUntil('lim', (x) => x.status?.lastSyncedSnapshot?.name === next, 'the retry');
    expect(done.status?.lastSyncBytes).toBe(await streamBytes(source(), base, next));
    expect(done.status?.consecutiveFailures).toBe(0);
    expect(await snapshotsOn(target)).toEqual([base, next]);
    expect(await userrefs(`${target}@${next}`)).toBe(1);
    expect(await userrefs(`${target}@${base}`)).toBe(0);
  }, 300_000);
});
