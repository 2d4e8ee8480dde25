import { mkdir, readFile, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorKind } from '../../api/kinds/index.ts';
import { resourceOf } from '../../controllers/runtime/kube.ts';
import { runOk } from '../testbed/index.ts';
import { eventually } from './cluster-fixture.ts';
import { condition, ctx, pointAt, SyncBed } from './sync-bed.ts';

const HOUR = 3_600_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);
const point = (h: number) => pointAt(START + h * HOUR);

/**
 * A replica written to by hand (as an admin would: readonly off, mounted, a file written). zfs-fuse has no
 * `written` property, so the planner cannot see the change; ZFS itself refuses the incremental receive
 * ("destination … has been modified since most recent snapshot"), and only because bdr never receives with -F
 * (which would roll the write back silently). The vector stalls with TargetDiverged, says what to do, destroys
 * nothing, and keeps saying so on each backed-off retry until the admin rolls the replica back.
 */
describe('Vector sync: a write to the replica', () => {
  const t = new SyncBed({ start: START, local: { hourly: 24 }, remote: { hourly: 48 }, interval: '1h' });
  let mnt: string;

  beforeAll(async () => {
    await t.start();
    mnt = join(t.replicaPool.dir, 'admin-mnt');
  }, 300_000);
  afterAll(() => t.stop());

  /** The admin's view of the replica: mounted read-write at `mnt`. */
  const mountReplica = async () => {
    await runOk(['zfs', 'set', 'readonly=off', t.target()]);
    await runOk(['zfs', 'set', `mountpoint=${mnt}`, t.target()]);
    await runOk(['zfs', 'mount', t.target()]);
  };

  it('stalls TargetDiverged with what to do, keeps the write and every snapshot, and continues incrementally after a rollback', async () => {
    await writeFile(join(t.files(), 'h0.bin'), randomBytes(256 * 1024));
    await t.snapshotSource();
    await t.applyVector({});
    let v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot !== undefined, 'the first sync');
    expect(v.status?.lastSyncedSnapshot?.name).toBe(point(0));
    expect(await t.snapshotsOn(t.target())).toEqual([point(0)]);

    // The admin writes into the replica, then unmounts it again.
    await mkdir(mnt, { recursive: true });
    await mountReplica();
    await writeFile(join(mnt, 'by-hand.txt'), 'written on the replica\n');
    await runOk(['sync']);
    await runOk(['zfs', 'umount', t.target()]);

    // Hour 1: a new source point; the vector (no schedule) is due with it.
    t.clock.advance(HOUR);
    await appendFile(join(t.files(), 'log.txt'), 'hour 1\n');
    await t.snapshotSource();
    const onSource = await t.snapshotsOn(t.source());
    expect(onSource).toEqual([point(0), point(1)]);
    await t.reconciler.reconcile('default/v', ctx('default/v'));
    v = await t.vector();
    const stalled = condition(v, 'Stalled');
    expect(stalled).toMatchObject({ status: 'True', reason: 'TargetDiverged' });
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'TargetDiverged' });
    // ZFS's own words, and what to do about it.
    expect(stalled?.message).toContain(`cannot receive incremental stream: destination ${t.target()} has been modified / since most recent snapshot`);
    expect(stalled?.message).toContain(`bdr destroys nothing and does not receive with -F`);
    expect(stalled?.message).toContain(`on b run \`zfs rollback -r ${t.target()}@${point(0)}\``);
    expect(v.status?.lastSyncedSnapshot?.name).toBe(point(0));
    expect(v.status?.consecutiveFailures).toBe(1);
    expect(v.status?.transfer).toBeUndefined();
    const diverged = await t.eventsOf('v', 'TargetDiverged');
    expect(diverged).toHaveLength(1);
    expect(diverged[0]?.type).toBe('Warning');
    expect(await t.eventsOf('v', 'SyncFailed')).toEqual([]);
    // Nothing destroyed or rolled back: both sides' snapshots as they were, the write still on the replica (a
    // receive with -F would have rolled it back and succeeded).
    expect(await t.snapshotsOn(t.target())).toEqual([point(0)]);
    expect(await t.snapshotsOn(t.source())).toEqual(onSource);
    expect(await t.datasetsUnder(t.replica())).toEqual([t.replica(), t.target()]);
    // The guard's receive failed, and it made the replica inert again all the same (it fails closed): the write is
    // still there for whoever mounts it by hand.
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'readonly,mountpoint', t.target()])).split('\n')).toEqual(['on\tlocal', 'none\tlocal', '']);
    await mountReplica();
    expect(await readFile(join(mnt, 'by-hand.txt'), 'utf8')).toBe('written on the replica\n');
    await runOk(['zfs', 'umount', t.target()]);

    // Before its backoff (10 s after one failure) nothing runs: same status, no new event.
    t.clock.advance(5_000);
    await t.reconciler.reconcile('default/v', ctx('default/v'));
    v = await t.vector();
    expect(v.status?.consecutiveFailures).toBe(1);
    expect((await t.eventsOf('v', 'TargetDiverged')).reduce((n, e) => n + (e.count ?? 1), 0)).toBe(1);
    // After it, the retry is refused the same way: the vector stays Stalled with the same message and
    // transition time (it does not flap to Reconciling or a generic SyncFailed), the backoff doubles (20 s),
    // and the event's count says how often.
    t.clock.advance(5_000);
    await t.reconciler.reconcile('default/v', ctx('default/v'));
    v = await t.vector();
    expect(v.status?.consecutiveFailures).toBe(2);
    expect(condition(v, 'Stalled')).toMatchObject({ status: 'True', reason: 'TargetDiverged', lastTransitionTime: stalled?.lastTransitionTime });
    expect(condition(v, 'Ready')?.reason).toBe('TargetDiverged');
    expect((await t.eventsOf('v', 'TargetDiverged')).reduce((n, e) => n + (e.count ?? 1), 0)).toBe(2);
    t.clock.advance(10_000);
    await t.reconciler.reconcile('default/v', ctx('default/v'));
    expect((await t.vector()).status?.consecutiveFailures).toBe(2);
    expect(await t.eventsOf('v', 'SyncFailed')).toEqual([]);
    expect(await t.snapshotsOn(t.target())).toEqual([point(0)]);

    // The admin does what the message says: roll the replica back to its newest snapshot, then ask for a sync.
    await runOk(['zfs', 'rollback', '-r', `${t.target()}@${point(0)}`]);
    await t.requestSync('rolled-back');
    v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot?.name === point(1), 'the sync after the rollback');
    expect(condition(v, 'Stalled')).toBeUndefined();
    expect(condition(v, 'Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
    expect(v.status?.consecutiveFailures).toBe(0);
    // Incremental from the common snapshot: the bytes of an independent `zfs send -i`.
    expect(v.status?.lastSyncBytes).toBe(await t.streamBytes(point(0), point(1)));
    expect(await t.snapshotsOn(t.target())).toEqual([point(0), point(1)]);
    expect(await t.heldOn(t.source())).toEqual([point(1)]);
    expect(await t.heldOn(t.target())).toEqual([point(1)]);
    // The replica is inert again (the admin's readonly=off and mountpoint undone by bdr's local values).
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'readonly,canmount,mountpoint', t.target()])).trim().split('\n')).toEqual(['on', 'noauto', 'none']);
  }, 300_000);

  it('deleted while refused: every hold of the vector goes, also the one its refused run took on the point it meant to send', async () => {
    await mountReplica();
    await writeFile(join(mnt, 'again.txt'), 'written again\n');
    await runOk(['sync']);
    await runOk(['zfs', 'umount', t.target()]);
    // 02:00:20: the first case moved the clock 20 s past 01:00 (its backoff checks).
    const p2 = pointAt(START + 2 * HOUR + 20_000);
    t.clock.advance(HOUR);
    await appendFile(join(t.files(), 'log.txt'), 'hour 2\n');
    await t.snapshotSource();
    await t.reconciler.reconcile('default/v', ctx('default/v'));
    expect(condition(await t.vector(), 'Stalled')).toMatchObject({ status: 'True', reason: 'TargetDiverged' });
    // The refused run held p2 on the source before its stream (the step hold), beside the base.
    expect(await t.heldOn(t.source())).toEqual([point(1), p2]);
    expect(await t.heldOn(t.target())).toEqual([point(1)]);

    await t.client.custom.deleteNamespacedCustomObject({ group: 'bdr.dev', version: 'v1alpha1', namespace: 'default', plural: 'vectors', name: 'v' });
    await eventually(() => (t.vectors.get('default/v')?.metadata.deletionTimestamp ? true : undefined), 'the deletion in the cache');
    await eventually(async () => {
      await t.reconciler.reconcile('default/v', ctx('default/v'));
      return (await t.client.get(resourceOf(vectorKind), 'v', 'default')) === undefined ? true : undefined;
    }, 'v to be gone');
    // Retain: the replica and both sides' snapshots stay, no hold is left on either side.
    expect(await t.snapshotsOn(t.source())).toEqual([point(0), point(1), p2]);
    expect(await t.snapshotsOn(t.target())).toEqual([point(0), point(1)]);
    expect(await t.heldOn(t.source())).toEqual([]);
    expect(await t.heldOn(t.target())).toEqual([]);
  }, 300_000);
});
