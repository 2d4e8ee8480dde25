import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Vector } from '../../api/types.ts';
import { run } from '../testbed/index.ts';
import { eventually } from './cluster-fixture.ts';
import { condition, ctx, pointAt, SyncBed } from './sync-bed.ts';

const MIN = 60_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);
/** The point `m` minutes after START. */
const at = (m: number) => pointAt(START + m * MIN);
/** The point at hh:mm on Monday (24:00 is Tuesday 00:00). */
const hm = (h: number, m: number) => at(h * 60 + m);

/**
 * The secondary's sshd is stopped for a simulated day while the primary takes a restore point every 5 minutes
 * (288 of them) under a local policy with a count cap:
 *
 *   local  { keepLast: 6, hourly: 24, maxSnapshots: 20 }      remote { hourly: 6 }
 *
 * By hand, at Tuesday 00:00 (the 288th point):
 * - local: the floor is the newest and keepLast (23:35 … 24:00, 6 points) and the vector's held base (Mon 00:00);
 *   hourly: 24 adds the newest point of each earlier hour, 01:55 … 22:55 (22 points, 23:55 and 24:00 are in
 *   keepLast already): 29 > 20, so maxSnapshots thins the hourly-only ones oldest first, 9 of them (01:55 …
 *   09:55), leaving 10:55 … 22:55 (13): 6 + 13 + 1 = 20.
 * - the catch-up: remote hourly: 6 over the replica (Mon 00:00) plus the source's points after the base keeps
 *   the newest point of the 6 most recent hours: 19:55, 20:55, 21:55, 22:55, 23:55, 24:00. Not every point after
 *   the base, so a sparse chain of 6 `-i` streams, nothing else.
 */
describe('Vector sync: the secondary unreachable for a day of 5-minute points', () => {
  const t = new SyncBed({ start: START, local: { keepLast: 6, hourly: 24, maxSnapshots: 20 }, remote: { hourly: 6 }, interval: '5m' });

  beforeAll(() => t.start(), 300_000);
  afterAll(async () => {
    await t.b.sshd.resume().catch(() => undefined);
    await t.stop();
  });

  const keyscan = async () => (await run(['ssh-keyscan', '-p', String(t.b.sshd.port), t.b.sshd.host])).stdout;

  it('the source stays within maxSnapshots with the base held, InSync goes False; once sshd is back one sparse chain catches up', async () => {
    await writeFile(join(t.files(), 'base.bin'), randomBytes(64 * 1024));
    await t.snapshotSource();
    await t.applyVector({ rpo: '1h' });
    let v: Vector = await t.syncUntil((x) => x.status?.lastSyncedSnapshot !== undefined, 'the first sync');
    const base = at(0);
    expect(v.status?.lastSyncedSnapshot?.name).toBe(base);
    expect(condition(v, 'InSync')?.status).toBe('True');

    await t.b.sshd.pause();
    await eventually(async () => ((await keyscan()) === '' ? true : undefined), "B's sshd to stop");

    // Tuesday 00:00 is the 288th point after the base. Every 5 minutes: a little churn, the Dataset's point and
    // prune, then the vector (due at once, later by its backoff; each attempt fails at the primary's ssh to B).
    // Each failed attempt holds its first step's point before the stream (and fails there); the next one releases
    // that hold again unless it is still its first point: never more than the base and one such point are held.
    const counts: number[] = [];
    const heldCounts: number[] = [];
    for (let i = 1; i <= 288; i++) {
      t.clock.advance(5 * MIN);
      await appendFile(join(t.files(), 'log.txt'), `${'x'.repeat(2000)} ${i}\n`);
      const ds = await t.snapshotSource();
      expect(ds.status?.restorePoints?.newest?.name, `point ${i}`).toBe(at(5 * i));
      counts.push((await t.snapshotsOn(t.source())).length);
      await t.reconciler.reconcile('default/v', ctx('default/v'));
      const held = await t.heldOn(t.source());
      expect(held[0], `point ${i}`).toBe(base);
      heldCounts.push(held.length);
    }
    expect(Math.max(...counts)).toBe(20);
    expect(Math.max(...heldCounts)).toBe(2);
    v = await t.vector();
    expect(v.status?.lastSyncedSnapshot?.name).toBe(base);
    expect(v.status?.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect(condition(v, 'InSync')).toMatchObject({ status: 'False', reason: 'RpoExceeded' });
    expect(condition(v, 'Ready')).toMatchObject({ status: 'False', reason: 'SyncFailed' });
    expect(await t.eventsOf('src', 'RetentionBlocked')).toEqual([]);

    // The source as computed by hand: the base, 10:55 … 22:55, and 23:35 … 24:00.
    const hourlies = Array.from({ length: 13 }, (_, k) => hm(10 + k, 55));
    const lastSix = [hm(23, 35), hm(23, 40), hm(23, 45), hm(23, 50), hm(23, 55), hm(24, 0)];
    expect(await t.snapshotsOn(t.source())).toEqual([base, ...hourlies, ...lastSix]);
    // The base is held on both sides, and it is the only hold on the replica.
    expect(await t.userrefs(`${t.source()}@${base}`)).toBe(1);
    expect(await t.heldOn(t.target())).toEqual([base]);
    expect(await t.snapshotsOn(t.target())).toEqual([base]);

    await t.b.sshd.resume();
    await eventually(async () => ((await keyscan()) !== '' ? true : undefined), "B's sshd to answer again");
    // The next attempt (backoff, at most 10 minutes on) catches up; no new source point meanwhile.
    t.clock.advance(10 * MIN);
    v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot?.name === hm(24, 0), 'the catch-up');
    const chain = [hm(19, 55), hm(20, 55), hm(21, 55), hm(22, 55), hm(23, 55), hm(24, 0)];
    const succeeded = (await t.eventsOf('v', 'SyncSucceeded')).filter((e) => e.message?.includes(`now at ${hm(24, 0)}`));
    expect(succeeded).toHaveLength(1);
    expect(succeeded[0]?.message).toContain(`sent ${chain.length} stream(s)`);
    const started = (await t.eventsOf('v', 'SyncStarted')).map((e) => e.message ?? '').filter((m) => m.includes(`${hm(24, 0)} (newest`));
    const steps = [base, ...chain].slice(1).map((to, k) => `-i ${t.source()}@${[base, ...chain][k]} → ${t.source()}@${to}`);
    for (const step of steps) expect(started.at(-1)).toContain(step);
    let expected = 0;
    for (const [k, to] of chain.entries()) expected += await t.streamBytes([base, ...chain][k], to);
    expect(v.status?.lastSyncBytes).toBe(expected);
    // The base stays on the replica until the next run (it was this run's common base); every point of the chain is there.
    expect(await t.snapshotsOn(t.target())).toEqual([base, ...chain]);
    expect(v.status?.consecutiveFailures).toBe(0);
    expect(condition(v, 'InSync')?.status).toBe('True');
    expect(condition(v, 'Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
    // One hold a side, on the new base; nothing partial on B.
    expect(await t.heldOn(t.source())).toEqual([hm(24, 0)]);
    expect(await t.heldOn(t.target())).toEqual([hm(24, 0)]);
    expect(await t.datasetsUnder(t.replica())).toEqual([t.replica(), t.target()]);
  }, 1_200_000);
});
