import { describe, expect, it } from 'vitest';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { snapshotsOf, withTransferSlots } from '../../controllers/vector-sync.ts';

describe('transfer slots of a sync', () => {
  it('A → B and B → A with one transfer slot each never wait on each other', async () => {
    const tasks = new TaskRunner();
    tasks.setSlots('a', { zfs: 1, transfer: 1 });
    tasks.setSlots('b', { zfs: 1, transfer: 1 });
    const order: string[] = [];
    let releaseFirst: () => void = () => undefined;
    const firstHolds = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstStarted: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (firstStarted = resolve));
    const ab = withTransferSlots(tasks, ['a', 'b'], 'a', 'ns/ab', 100, async () => {
      order.push('a→b runs');
      firstStarted();
      await firstHolds;
      order.push('a→b ends');
    });
    await started;
    // Taken in name order, B → A queues on a's slot (it does not take b's first and wait for a's).
    const ba = withTransferSlots(tasks, ['b', 'a'], 'b', 'ns/ba', 100, async () => {
      order.push('b→a runs');
    });
    const waiting = tasks.snapshot();
    expect(waiting.running.map((r) => r.machine).sort()).toEqual(['a', 'b']);
    expect(waiting.queued.map((q) => [q.machine, q.action])).toEqual([['a', 'receive']]);
    releaseFirst();
    await Promise.all([ab, ba]);
    expect(order).toEqual(['a→b runs', 'a→b ends', 'b→a runs']);
    expect(tasks.peakRunning('a', 'transfer')).toBe(1);
    expect(tasks.peakRunning('b', 'transfer')).toBe(1);
  });

  it('both ends on one machine take its slot once', async () => {
    const tasks = new TaskRunner();
    tasks.setSlots('a', { zfs: 1, transfer: 1 });
    expect(await withTransferSlots(tasks, ['a', 'a'], 'a', 'ns/aa', 100, async () => 'done')).toBe('done');
  });
});

describe('snapshotsOf: an inventory as the replication planner takes it', () => {
  const entry = (name: string, creation: number, userrefs: number, createtxg?: number) => ({
    name, type: 'snapshot' as const, creation, guid: String(1000 + creation), used: 7, referenced: 9, createtxg, userrefs, userProperties: {},
  });
  it("takes a bdr name's instant as the point's time, others' ZFS creation, and knows an unheld snapshot has no hold", () => {
    const inventory = {
      datasets: [], bookmarks: [], pools: [], takenAt: 0,
      snapshots: [
        entry('tank/a@bdr-20261123T230000Z', 1_800_000_000, 0, 5),
        entry('tank/a@manual', 1_800_000_100, 2, 6),
        entry('tank/ab@bdr-20261123T230000Z', 1_800_000_000, 0, 7),
        entry('tank/a/child@x', 1_800_000_000, 0, 8),
      ],
    };
    expect(snapshotsOf(inventory, 'tank/a')).toEqual([
      { name: 'tank/a@bdr-20261123T230000Z', guid: String(1000 + 1_800_000_000), createdAt: Date.UTC(2026, 10, 23, 23), createTxg: 5, usedBytes: 7, held: [] },
      // Held by someone: which tags, zfs-fuse cannot say, so the planner is told it does not know.
      { name: 'tank/a@manual', guid: String(1000 + 1_800_000_100), createdAt: 1_800_000_100_000, createTxg: 6, usedBytes: 7 },
    ]);
  });
});
