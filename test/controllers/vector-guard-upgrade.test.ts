import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SyncBed, pointAt } from './sync-bed.ts';
import { guardOf } from './vector-bed.ts';

const HOUR = 3_600_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);
const point = (h: number) => pointAt(START + h * HOUR);

/**
 * bdr upgraded while a storage machine still has the previous version's guard: the new sync's receive carries
 * `+hold`/`+release` words, which the old guard refuses (it takes them for a second target). A restarted operator
 * paired nothing anew and its sweep may not have come by yet: its first stream into the machine must still go
 * through, by making the guard current first, not fail once and wait for its backoff.
 */
describe('Vector sync after an upgrade: an older guard on the storage machine', () => {
  const t = new SyncBed({ start: START, local: { hourly: 24 }, remote: { hourly: 24 }, interval: '1h' });

  beforeAll(() => t.start(), 300_000);
  afterAll(() => t.stop());

  it("the restarted operator's first stream puts this version's guard in place before it goes through; no failed run", async () => {
    await writeFile(join(t.files(), 'h0.bin'), randomBytes(64 * 1024));
    await t.snapshotSource();
    await t.applyVector({});
    await t.syncUntil((x) => x.status?.lastSyncedSnapshot?.name === point(0), 'the first sync');
    const installed = await readFile(guardOf(t.b), 'utf8');

    // The previous version: no `+hold|+release` words (a word after the target is refused as a second target).
    const words = '        +hold|+release)\n';
    expect(installed).toContain(words);
    await writeFile(guardOf(t.b), installed.replace(words, '        +never-a-word-of-the-old-guard)\n'), { mode: 0o755 });

    t.startOperator();
    await writeFile(join(t.files(), 'h1.bin'), randomBytes(64 * 1024));
    t.clock.advance(HOUR);
    await t.snapshotSource();
    await t.requestSync('after-upgrade');
    const v = await t.syncUntil((x) => x.status?.lastSyncedSnapshot?.name === point(1), 'the first sync after the restart');
    expect(v.status?.lastHandledSyncRequest).toBe('after-upgrade');
    expect(v.status?.consecutiveFailures ?? 0).toBe(0);
    expect(await t.eventsOf('v', 'SyncFailed')).toEqual([]);
    expect(await readFile(guardOf(t.b), 'utf8')).toBe(installed);
    expect((await stat(guardOf(t.b))).mode & 0o777).toBe(0o755);
    // The receive's words moved the replica's hold: one a side, on the new point.
    expect(await t.heldOn(t.target())).toEqual([point(1)]);
    expect(await t.heldOn(t.source())).toEqual([point(1)]);
  }, 300_000);
});
