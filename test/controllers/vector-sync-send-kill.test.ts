import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOk } from '../testbed/index.ts';
import { eventually } from './cluster-fixture.ts';
import { condition, ctx, gone, meteredBytes, pidOf, pointAt, SyncBed } from './sync-bed.ts';

const HOUR = 3_600_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);
const point = (h: number) => pointAt(START + h * HOUR);

/**
 * `zfs send` on the primary SIGKILLed while its stream is in flight (B's receive held up with SIGSTOP, so the
 * pipes are full and the sender is blocked; dd on A has counted bytes, so the stream has begun).
 *
 * On zfs-fuse the `zfs` command is only a client: the daemon writes the stream into the pipe it was handed, and
 * keeps writing after the client dies. So the stream is not cut: B's receive completes the snapshot, while the
 * pipeline reports the send's death (`bdr: zfs send failed with status 137`) and the run counts as failed. What
 * must hold either way: the next run resends nothing that is on the target (here: nothing at all, it finds the
 * replica current and moves its holds there), and no stray hold, partial dataset or orphan snapshot remains.
 * (On OpenZFS the kernel ends the stream with the process; B then sees a truncated stream, the case that
 * killing the ssh client covers in vector-sync.test.ts.)
 */
describe('Vector sync: zfs send killed mid-stream', () => {
  const t = new SyncBed({ start: START, local: { hourly: 24 }, remote: { hourly: 48 }, interval: '1h', sourceMb: 400 });

  beforeAll(() => t.start(), 300_000);
  afterAll(() => t.stop());

  it('the stream the zfs-fuse daemon finishes is taken as the new base; the next run sends 0 bytes, holds move, nothing stray', async () => {
    await writeFile(join(t.files(), 'h0.bin'), randomBytes(64 * 1024));
    await t.snapshotSource();
    await t.applyVector({});
    let v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot !== undefined, 'the first sync');
    const base = point(0);
    expect(v.status?.lastSyncedSnapshot?.name).toBe(base);

    // 64 MiB of new data: far more than the pipes and ssh windows between A and B hold.
    await writeFile(join(t.files(), 'big.bin'), randomBytes(64 * 1024 * 1024));
    t.clock.advance(HOUR);
    await t.snapshotSource();
    const next = point(1);
    expect(await t.snapshotsOn(t.source())).toEqual([base, next]);
    const full = await t.streamBytes(base, next);
    expect(full).toBeGreaterThan(64 * 1024 * 1024);

    const running = t.reconciler.reconcile('default/v', ctx('default/v'));
    const receivePid = await eventually(() => pidOf(`^zfs receive -u ${t.target()}$`), "B's zfs receive", 60_000, 20);
    process.kill(receivePid, 'SIGSTOP');
    let sendPid: number | undefined;
    try {
      // dd on A has read bytes of the stream: the sender is under way (and blocked, the pipes being full).
      await eventually(async () => ((await meteredBytes(t.target())) ?? 0) > 0 || undefined, 'bytes to move', 60_000, 20);
      // zfs-fuse's zfs rewrites its argv in place ('@' becomes NUL, shown as a space).
      sendPid = await eventually(() => pidOf(`^zfs send -i ${t.source()}[@ ]${base} ${t.source()}[@ ]${next}$`), "A's zfs send", 30_000, 20);
      process.kill(sendPid, 'SIGKILL');
      await eventually(() => gone(sendPid as number), 'zfs send to die');
    } finally {
      process.kill(receivePid, 'SIGCONT');
    }
    await running;
    await eventually(() => gone(receivePid), "B's receive to end");
    v = await t.vector();
    // The run saw the sender die and failed (retried with backoff); the base is unchanged in status.
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'SyncFailed' });
    expect(condition(v, 'Ready')?.message).toContain('bdr: zfs send failed with status 137');
    expect(v.status?.lastSyncedSnapshot?.name).toBe(base);
    expect(v.status?.consecutiveFailures).toBe(1);
    // The daemon finished the stream: B has the whole snapshot (its guid is the source's), nothing partial.
    expect(await t.snapshotsOn(t.target())).toEqual([base, next]);
    const guid = (s: string) => runOk(['zfs', 'get', '-H', '-p', '-o', 'value', 'guid', s]);
    expect(await guid(`${t.target()}@${next}`)).toBe(await guid(`${t.source()}@${next}`));
    expect(await t.datasetsUnder(t.replica())).toEqual([t.replica(), t.target()]);

    // The retry after the backoff (10 s): the replica is current, so nothing is sent; the holds move to it.
    t.clock.advance(10_000);
    v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot?.name === next, 'the run after the kill');
    expect(condition(v, 'Ready')).toMatchObject({ status: 'True', reason: 'UpToDate' });
    expect(v.status?.lastSyncBytes).toBe(0);
    expect(v.status?.consecutiveFailures).toBe(0);
    expect(v.status?.commonSnapshot?.name).toBe(next);
    expect(await t.eventsOf('v', 'SyncSucceeded')).toHaveLength(1); // the first sync's only
    // No stray holds (by ZFS's count and by bdr's own book), no orphan snapshots, nothing partial.
    expect(await t.heldOn(t.source())).toEqual([next]);
    expect(await t.heldOn(t.target())).toEqual([next]);
    expect([...t.sync.protectedSnapshots('a').keys()]).toEqual([`${t.source()}@${next}`]);
    expect([...t.sync.protectedSnapshots('b').keys()]).toEqual([`${t.target()}@${next}`]);
    expect(await t.snapshotsOn(t.target())).toEqual([base, next]);
    expect(await t.snapshotsOn(t.source())).toEqual([base, next]);
    expect(await t.datasetsUnder(t.replica())).toEqual([t.replica(), t.target()]);

    // And the one after it is incremental from that base: one -i, its bytes an independent `zfs send -i | wc -c`.
    await writeFile(join(t.files(), 'h2.bin'), randomBytes(256 * 1024));
    t.clock.advance(HOUR - 10_000);
    await t.snapshotSource();
    v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot?.name === point(2), 'the next sync');
    expect(v.status?.lastSyncBytes).toBe(await t.streamBytes(next, point(2)));
    expect(await t.heldOn(t.source())).toEqual([point(2)]);
    expect(await t.heldOn(t.target())).toEqual([point(2)]);
  }, 300_000);
});
