import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../testbed/index.ts';
import { eventually } from './cluster-fixture.ts';
import { condition, ctx, gone, pidOf, pointAt, SyncBed } from './sync-bed.ts';

const MIN = 60_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);
/** The point at hh:mm on Monday. */
const hm = (h: number, m: number) => pointAt(START + (h * 60 + m) * MIN);

/**
 * A sparse multi-step send and local retention running while it is in flight. The planner holds a step's source
 * point only just before that step, so during step 0 the later steps' points carry no hold: the sync offers them
 * to the Dataset controller (`protectedSnapshots`) for as long as its run goes on.
 *
 * Points every 30 minutes, 00:00 … 02:30; 00:00 is the replica's base (held on both sides). Remote { hourly: 3 }
 * keeps the newest point of each of the hours 00, 01, 02 of the source's points after the base: 00:30, 01:30,
 * 02:30 (02:30 also as the newest), so the plan is the sparse chain
 *   step 0: -i 00:00 → 00:30 (32 MiB: the stream is caught in flight)   step 1: -i 00:30 → 01:30   step 2: -i 01:30 → 02:30
 * (01:00 and 02:00 are never sent). While step 0 is held up, the local policy becomes { hourly: 24, maxSnapshots: 3 }
 * and the Dataset controller prunes. By hand, at 02:30, newest first:
 * - without the in-flight protection: the floor is 02:30 (newest), 00:30 (held: step 0's point) and 00:00 (held:
 *   the base); hourly: 24 keeps 02:30, 01:30, 00:30 (the newest of hours 02, 01, 00); 02:00 and 01:00 are expired.
 *   Kept: 4 > 3, and the only point kept by a calendar tier alone is 01:30: it would be destroyed
 *   ("maxSnapshots: 4 > 3"), and the run would fail at step 1 (seen with the protection
 *   disabled: `zfs hold: cannot hold …@01:30: dataset does not exist`, SyncFailed, a retry).
 *   (This needs the Dataset controller to see step 0's hold, so it prunes a few seconds after its last listing.)
 * - with it: 01:30 and 02:30 (and 00:30) are protected too, so only 02:00 and 01:00 (expired) are destroyed and the
 *   cap cannot be met: RetentionBlocked names the vector for each spared point.
 */
describe('Vector sync: the points of a running plan are spared by local retention', () => {
  const t = new SyncBed({ start: START, local: { keepLast: 10 }, remote: { hourly: 3 }, interval: '30m' });

  beforeAll(() => t.start(), 300_000);
  afterAll(async () => {
    await t.b.sshd.resume().catch(() => undefined);
    await t.stop();
  });

  const setLocal = async (spec: Record<string, unknown>) => {
    const applied = t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'local', namespace: 'default' }, spec });
    await eventually(() => (t.policies.get('default/local')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the local policy in the cache');
  };
  /** 30 minutes on, some churn, and the Dataset controller's point. */
  const nextPoint = async (data: Buffer | string) => {
    t.clock.advance(30 * MIN);
    if (typeof data === 'string') await appendFile(join(t.files(), 'log.txt'), data);
    else await writeFile(join(t.files(), 'big.bin'), data);
    await t.snapshotSource();
  };
  const full = (point: string) => `${t.source()}@${point}`;

  it('local retention during step 0 of three destroys none of the later steps, the run completes with all of them, then the points are ordinary again', async () => {
    await writeFile(join(t.files(), 'base.bin'), randomBytes(64 * 1024));
    await t.snapshotSource();
    await t.applyVector({});
    let v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot !== undefined, 'the first sync');
    const base = hm(0, 0);
    expect(v.status?.lastSyncedSnapshot?.name).toBe(base);

    // 32 MiB into 00:30 (more than the pipes and ssh windows between A and B hold), a little churn after.
    await nextPoint(randomBytes(32 * 1024 * 1024));
    for (const i of [2, 3, 4, 5]) await nextPoint(`half hour ${i}\n`);
    const points = [hm(0, 0), hm(0, 30), hm(1, 0), hm(1, 30), hm(2, 0), hm(2, 30)];
    expect(await t.snapshotsOn(t.source())).toEqual(points);
    const [x, y, z] = [hm(0, 30), hm(1, 30), hm(2, 30)];

    const running = t.reconciler.reconcile('default/v', ctx('default/v'));
    const receivePid = await eventually(() => pidOf(`^zfs receive -u ${t.target()}$`), "B's zfs receive", 60_000, 20);
    process.kill(receivePid, 'SIGSTOP');
    try {
      // Step 0 is the one held up: status.transfer names its point, and (kstatus, Argo CD) Reconciling says so.
      v = await eventually(async () => {
        const cur = await t.vector();
        return cur.status?.transfer?.snapshot === x ? cur : undefined;
      }, 'status.transfer of step 0');
      expect(condition(v, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Transferring', message: `sending ${x} to b (stream 1 of 3): 0 bytes so far` });
      expect(condition(v, 'Ready')).toMatchObject({ status: 'True' });
      // Only the base and step 0's point carry a hold: the later steps' points have none of their own yet.
      expect(await t.heldOn(t.source())).toEqual([base, x]);
      expect(await t.userrefs(full(y))).toBe(0);
      expect(await t.userrefs(full(z))).toBe(0);
      // The sync offers every step's point of the running plan, besides the base, named by the vector.
      expect(new Map(t.sync.protectedSnapshots('a'))).toEqual(new Map([[full(base), 'default/v'], [full(x), 'default/v'], [full(y), 'default/v'], [full(z), 'default/v']]));
      expect(new Map(t.sync.protectedSnapshots('b'))).toEqual(new Map([[`${t.target()}@${base}`, 'default/v']]));

      // The local cap is lowered and the Dataset controller prunes while the stream is held up, a few seconds on
      // (past its inventory cache, so it sees step 0's hold; well within the stall timeout).
      await setLocal({ hourly: 24, maxSnapshots: 3 });
      t.clock.advance(5_000);
      const ds = await t.snapshotSource();
      expect(ds.status?.restorePoints?.newest?.name).toBe(z);
      expect(await t.snapshotsOn(t.source())).toEqual([base, x, y, z]);
      const pruned = await t.eventsOf('src', 'SnapshotsPruned');
      expect(pruned.map((e) => e.message)).toEqual([`destroyed 2: ${hm(2, 0)} (expired); ${hm(1, 0)} (expired)`]);
      const blocked = await t.eventsOf('src', 'RetentionBlocked');
      expect(blocked.map((e) => e.message)).toEqual([
        `maxSnapshots: 4 > 3, but all remaining snapshots are the floor (newest, keepLast, protected); ` +
          [base, x, y, z].map((p) => `${p} is the base of vector default/v`).join('; '),
      ]);
      expect(ds.status?.conditions?.find((c) => c.type === 'RetentionApplied')).toMatchObject({ status: 'False', reason: 'RetentionBlocked' });
      // Still in flight.
      expect(gone(receivePid)).toBeUndefined();
    } finally {
      process.kill(receivePid, 'SIGCONT');
    }
    await running;

    v = await t.vector();
    expect(condition(v, 'Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
    expect(condition(v, 'Reconciling')).toBeUndefined();
    expect(v.status?.transfer).toBeUndefined();
    expect(v.status?.lastSyncedSnapshot?.name).toBe(z);
    expect(v.status?.consecutiveFailures).toBe(0);
    // All three steps ran, in the planned order, each an -i from the previous point; bytes from independent sends.
    const started = (await t.eventsOf('v', 'SyncStarted')).map((e) => e.message ?? '').filter((m) => m.includes(z));
    expect(started).toHaveLength(1);
    expect(started[0]).toContain('sending 3 stream(s)');
    for (const [from, to] of [[base, x], [x, y], [y, z]] as const) expect(started[0]).toContain(`-i ${full(from)} → ${full(to)}`);
    const succeeded = (await t.eventsOf('v', 'SyncSucceeded')).filter((e) => e.message?.includes(`now at ${z}`));
    expect(succeeded).toHaveLength(1);
    expect(succeeded[0]?.message).toContain('sent 3 stream(s)');
    expect(v.status?.lastSyncBytes).toBe((await t.streamBytes(base, x)) + (await t.streamBytes(x, y)) + (await t.streamBytes(y, z)));
    expect(await t.snapshotsOn(t.target())).toEqual([base, x, y, z]);
    expect(await t.datasetsUnder(t.replica())).toEqual([t.replica(), t.target()]);
    expect(await t.heldOn(t.source())).toEqual([z]);
    expect(await t.heldOn(t.target())).toEqual([z]);

    // The run is over: only the base is protected now.
    expect(new Map(t.sync.protectedSnapshots('a'))).toEqual(new Map([[full(z), 'default/v']]));
    expect(new Map(t.sync.protectedSnapshots('b'))).toEqual(new Map([[`${t.target()}@${z}`, 'default/v']]));
    // And the points the run spared are ordinary restore points again. With maxSnapshots: 2, by hand: the floor is
    // 02:30 (newest, the base); hourly keeps 02:30, 01:30, 00:30; 00:00 is expired; 3 > 2 thins the oldest
    // hourly-only point, 00:30. Left: 01:30, 02:30; the cap is met.
    await setLocal({ hourly: 24, maxSnapshots: 2 });
    await t.snapshotSource();
    expect(await t.snapshotsOn(t.source())).toEqual([y, z]);
    expect(await t.eventsOf('src', 'RetentionBlocked')).toHaveLength(1);
  }, 300_000);

  it('a run that fails mid-plan stops protecting its points; Reconciling says the retry', async () => {
    await setLocal({ keepLast: 10 });
    const base = hm(2, 30);
    // 03:00 (the test above left the clock 5 s past 02:30), then every 30 minutes.
    t.clock.advance(START + 3 * 60 * MIN - t.clock.now());
    await appendFile(join(t.files(), 'log.txt'), 'half hour 6\n');
    await t.snapshotSource();
    await nextPoint('half hour 7\n');
    await nextPoint('half hour 8\n');
    // Remote hourly: 3 over 02:30, 03:00, 03:30, 04:00: the newest of hours 03 and 04, so two steps.
    const [x, y] = [hm(3, 30), hm(4, 0)];

    await t.b.sshd.pause();
    await eventually(async () => ((await run(['ssh-keyscan', '-p', String(t.b.sshd.port), t.b.sshd.host])).stdout === '' ? true : undefined), "B's sshd to stop");
    await t.reconciler.reconcile('default/v', ctx('default/v'));
    let v = await t.vector();
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'SyncFailed' });
    expect(condition(v, 'Reconciling')).toMatchObject({ status: 'True', reason: 'ProgressingWithRetry' });
    expect(v.status?.transfer).toBeUndefined();
    // The run got as far as its first step (its point held before the stream), and failed there.
    expect(await t.heldOn(t.source())).toEqual([base, x]);
    expect(new Map(t.sync.protectedSnapshots('a'))).toEqual(new Map([[full(base), 'default/v']]));

    await t.b.sshd.resume();
    t.clock.advance(10_000);
    v = await t.syncUntil((cur) => cur.status?.lastSyncedSnapshot?.name === y, 'the retry');
    expect(condition(v, 'Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
    expect(condition(v, 'Reconciling')).toBeUndefined();
    expect(v.status?.lastSyncBytes).toBe((await t.streamBytes(base, x)) + (await t.streamBytes(x, y)));
    expect(await t.heldOn(t.source())).toEqual([y]);
    expect(new Map(t.sync.protectedSnapshots('a'))).toEqual(new Map([[full(y), 'default/v']]));
  }, 300_000);

  it('a run cut off by the operator stopping stops protecting its points too; the next run ends Reconciling', async () => {
    const base = hm(4, 0);
    // 04:30 with 32 MiB (the test above left the clock 10 s past 04:00): one step, caught in flight.
    t.clock.advance(START + (4 * 60 + 30) * MIN - t.clock.now());
    await writeFile(join(t.files(), 'big.bin'), randomBytes(32 * 1024 * 1024));
    await t.snapshotSource();
    const x = hm(4, 30);
    expect(await t.snapshotsOn(t.source())).toContain(x);

    const operatorStop = new AbortController();
    const running = t.reconciler.reconcile('default/v', ctx('default/v', operatorStop.signal));
    const receivePid = await eventually(() => pidOf(`^zfs receive -u ${t.target()}$`), "B's zfs receive", 60_000, 20);
    process.kill(receivePid, 'SIGSTOP');
    try {
      await eventually(async () => ((await t.vector()).status?.transfer?.snapshot === x ? true : undefined), 'status.transfer');
      expect(new Map(t.sync.protectedSnapshots('a'))).toEqual(new Map([[full(base), 'default/v'], [full(x), 'default/v']]));
      const sshClient = await eventually(() => pidOf(`^ssh -i ${t.idFile()} `), "A's ssh client", 30_000, 20);
      operatorStop.abort();
      await expect(running).rejects.toThrow();
      // As in vector-sync-faults.test.ts: A's pipeline is ended before the connections are dropped.
      await eventually(() => gone(sshClient), "A's pipeline to be ended");
      await t.connections.closeAll();
    } finally {
      process.kill(receivePid, 'SIGCONT');
    }
    await eventually(() => gone(receivePid), "B's receive to end");
    expect(new Map(t.sync.protectedSnapshots('a'))).toEqual(new Map([[full(base), 'default/v']]));
    // The cut-off run wrote nothing more: status still shows the stream, and Reconciling with it.
    let v = await t.vector();
    expect(v.status?.transfer?.snapshot).toBe(x);
    expect(v.status?.transfer?.step).toBe(`1 of 1: -i ${base} → ${x}`);
    expect(condition(v, 'Reconciling')).toMatchObject({ status: 'True', reason: 'Transferring' });

    t.clock.advance(10_000);
    v = await t.syncUntil((cur) => cur.status?.lastSyncedSnapshot?.name === x, 'the next run');
    expect(condition(v, 'Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
    expect(condition(v, 'Reconciling')).toBeUndefined();
    expect(v.status?.transfer).toBeUndefined();
    expect(new Map(t.sync.protectedSnapshots('a'))).toEqual(new Map([[full(x), 'default/v']]));
    expect(await t.heldOn(t.source())).toEqual([x]);
  }, 300_000);
});
