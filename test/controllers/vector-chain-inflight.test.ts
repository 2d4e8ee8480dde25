import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './cluster-fixture.ts';
import { ctx, gone, meteredBytes, pidOf, SyncBed } from './sync-bed.ts';

const HOUR = 3_600_000;
/** Monday 2026-11-23 00:00 UTC. */
const START = Date.UTC(2026, 10, 23, 0, 0, 0);

/**
 * A chain v: A → B, w: B → B' (a second pool on B, so w's stream is a local pipe there), with two transfer
 * slots on B so that v can run on B while w streams from it. w's plan is one `-I` from its base p0 to p3 (its
 * policy keeps every point), which reads p1 and p2 on B without holding them (only the base and the point sent
 * are held). While that stream is held up, v's remote policy becomes { keepLast: 1 } and v syncs.
 *
 * By hand: v's prunes on B over [p0 p1 p2 p3] with keepLast: 1 are p0, p1, p2 (p3 is newest). p0 is w's held base
 * and p3 w's held point: ZFS keeps both whatever bdr plans. p1 and p2 carry no hold: without the protection
 * they are destroyed under w's running stream. With it they are needed by w and kept until w's run ends; v's next
 * run then prunes p0, p1, p2 (w's base has moved to p3).
 */
describe('Vector sync: a chained vector\'s running stream keeps its source points out of the upstream vector\'s remote prunes', () => {
  const t = new SyncBed({ start: START, local: { keepLast: 100 }, remote: { keepLast: 100 }, interval: '1h', replicaMb: 384 });
  let mirrorPool: Awaited<ReturnType<typeof t.bed.pool>>;
  // Its own pool: a zfs-fuse receive held up mid-stream blocks listings of its own pool.
  const mirror = () => `${mirrorPool.name}/mirror/w`;
  const onMirror = () => `${mirror()}/data`;

  beforeAll(async () => {
    await t.start();
    mirrorPool = await t.bed.pool();
    t.tasks.setSlots('b', { zfs: 2, transfer: 2 });
    t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'mirror', namespace: 'default' }, spec: { keepLast: 100 } });
    await eventually(() => (t.policies.get('default/mirror') ? true : undefined), 'the mirror policy in the cache');
  }, 300_000);
  afterAll(() => t.stop());

  const point = async (bytes: number) => {
    await writeFile(join(t.files(), `p${String(t.clock.now())}.bin`), randomBytes(bytes));
    const ds = await t.snapshotSource();
    return ds.status?.restorePoints?.newest?.name ?? '';
  };
  const setRemote = async (spec: Record<string, unknown>) => {
    const applied = t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'remote', namespace: 'default' }, spec });
    await eventually(() => (t.policies.get('default/remote')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the remote policy in the cache');
  };

  it('w streams p0 → p3 (-I) while v prunes on B: p1 and p2 are kept until w is done, then pruned', async () => {
    const p0 = await point(64 * 1024);
    await t.applyVector({});
    await t.syncUntil((v) => v.status?.lastSyncedSnapshot?.name === p0, 'v: the first sync');
    await t.applyVector({ source: { vectorRef: { name: 'v' } }, target: { machineRef: { name: 'b' }, dataset: mirror() }, retentionPolicyRef: { name: 'mirror' } }, 'w');
    await t.syncUntil((w) => w.status?.lastSyncedSnapshot?.name === p0, 'w: the first sync', 'w');

    const points = [p0];
    for (const size of [32 * 1024 * 1024, 64 * 1024, 64 * 1024]) {
      t.clock.advance(HOUR);
      points.push(await point(size));
    }
    const p3 = points[3] as string;
    await t.requestSync('all');
    await t.syncUntil((v) => v.status?.lastHandledSyncRequest === 'all' && v.status.lastSyncedSnapshot?.name === p3, 'v: p1 … p3');
    expect(await t.snapshotsOn(t.target())).toEqual(points);

    await t.requestSync('w-run', 'w');
    const wRun = t.reconciler.reconcile('default/w', ctx('default/w'));
    const receive = await eventually(() => pidOf(`^zfs receive -u ${onMirror()}$`), "w's zfs receive", 60_000, 20);
    process.kill(receive, 'SIGSTOP');
    try {
      await eventually(async () => ((await meteredBytes(onMirror())) ?? 0) > 0 || undefined, "w's stream to move");
      await setRemote({ keepLast: 1 });
      await t.requestSync('during');
      const v = await t.syncUntil((x) => x.status?.lastHandledSyncRequest === 'during', 'v: a sync during w\'s stream');
      expect(v.status?.consecutiveFailures ?? 0).toBe(0);
      // Nothing w's stream reads was destroyed: p0 and p3 held by ZFS, p1 and p2 needed by w's run.
      expect(await t.snapshotsOn(t.target())).toEqual(points);
    } finally {
      process.kill(receive, 'SIGCONT');
    }
    await wRun;
    await eventually(() => gone(receive), "w's receive to end");
    const w = await t.vector('w');
    expect(w.status?.consecutiveFailures ?? 0).toBe(0);
    expect(w.status?.lastSyncedSnapshot?.name).toBe(p3);
    expect(await t.snapshotsOn(onMirror())).toEqual(points);

    // w's run is over and its base is p3: v's next run prunes what nobody needs any more.
    await t.requestSync('after');
    await t.syncUntil((x) => x.status?.lastHandledSyncRequest === 'after', 'v: the sync after w\'s');
    expect(await t.snapshotsOn(t.target())).toEqual([p3]);
    expect(await t.heldOn(t.target())).toEqual([p3]);
  }, 300_000);
});
