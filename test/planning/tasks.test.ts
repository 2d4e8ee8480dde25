import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  TASK_ACTIONS,
  compareTasks,
  isRecentlyFailedSend,
  selectTasksToStart,
  type MachineSlots,
  type QueuedTask,
  type RunningTask,
  type TaskSelectionInput,
} from '../../planning/tasks.ts';

const MINUTE = 60_000;
const NOW = Date.parse('2026-11-26T10:00:00Z');

let sequence = 0;
function task(overrides: Partial<QueuedTask> & Pick<QueuedTask, 'kind' | 'action'>): QueuedTask {
  sequence += 1;
  // Tasks made later are younger unless a test says otherwise.
  return { id: `t${sequence}`, machine: 'agg', priority: 100, enqueuedAt: NOW - 1000 * MINUTE + sequence * MINUTE, ...overrides };
}
const ids = (tasks: readonly QueuedTask[]): string[] => tasks.map((t) => t.id);

describe('selectTasksToStart: examples after the seed', () => {
  it('fills ZFS and transfer slots independently, in queue order', () => {
    const queued = [
      task({ id: 'send-a', kind: 'transfer', action: 'send', enqueuedAt: NOW - 30 * MINUTE }),
      task({ id: 'send-b', kind: 'transfer', action: 'send', enqueuedAt: NOW - 20 * MINUTE }),
      task({ id: 'snap-a', kind: 'zfs', action: 'snapshot', enqueuedAt: NOW - 10 * MINUTE }),
      task({ id: 'snap-b', kind: 'zfs', action: 'snapshot', enqueuedAt: NOW - 9 * MINUTE }),
      task({ id: 'snap-c', kind: 'zfs', action: 'snapshot', enqueuedAt: NOW - 8 * MINUTE }),
    ];
    const result = selectTasksToStart({ queued, running: [], slots: { agg: { zfs: 2, transfer: 1 } }, now: NOW });
    // One transfer slot: the older send; two ZFS slots: the two older snapshots. send-b does not block snapshots.
    expect(ids(result.start)).toEqual(['send-a', 'snap-a', 'snap-b']);
    expect(ids(result.waiting)).toEqual(['send-b', 'snap-c']);
  });

  it('counts running tasks against the slots of their machine and kind', () => {
    const queued = [task({ id: 'recv', kind: 'transfer', action: 'receive' }), task({ id: 'prune', kind: 'zfs', action: 'prune' })];
    const running: RunningTask[] = [{ id: 'busy', machine: 'agg', kind: 'transfer' }];
    const result = selectTasksToStart({ queued, running, slots: { agg: { zfs: 1, transfer: 1 } }, now: NOW });
    expect(ids(result.start)).toEqual(['prune']);
    expect(ids(result.waiting)).toEqual(['recv']);
  });

  it('orders by priority (higher first), then receive, send, build, stream, then age', () => {
    const queued = [
      task({ id: 'stream', kind: 'transfer', action: 'stream', enqueuedAt: NOW - 90 * MINUTE }),
      task({ id: 'build', kind: 'transfer', action: 'build', enqueuedAt: NOW - 80 * MINUTE }),
      task({ id: 'send-new', kind: 'transfer', action: 'send', enqueuedAt: NOW - 5 * MINUTE }),
      task({ id: 'send-old', kind: 'transfer', action: 'send', enqueuedAt: NOW - 70 * MINUTE }),
      task({ id: 'receive', kind: 'transfer', action: 'receive', enqueuedAt: NOW - 1 * MINUTE }),
      task({ id: 'important-stream', kind: 'transfer', action: 'stream', priority: 500, enqueuedAt: NOW }),
    ];
    const result = selectTasksToStart({ queued, running: [], slots: { agg: { zfs: 1, transfer: 10 } }, now: NOW });
    expect(ids(result.start)).toEqual(['important-stream', 'receive', 'send-old', 'send-new', 'build', 'stream']);
  });

  it('boosts a send that failed within the window over older sends, but not over a receive', () => {
    const queued = [
      task({ id: 'receive', kind: 'transfer', action: 'receive', enqueuedAt: NOW - 1 * MINUTE }),
      task({ id: 'send-old', kind: 'transfer', action: 'send', enqueuedAt: NOW - 60 * MINUTE }),
      task({ id: 'send-failed-long-ago', kind: 'transfer', action: 'send', enqueuedAt: NOW - 50 * MINUTE, lastFailedSendAt: NOW - 40 * MINUTE }),
      task({ id: 'send-just-failed', kind: 'transfer', action: 'send', enqueuedAt: NOW - 2 * MINUTE, lastFailedSendAt: NOW - 5 * MINUTE }),
    ];
    const order = (windowMs: number): string[] =>
      ids(selectTasksToStart({ queued, running: [], slots: { agg: { zfs: 1, transfer: 10 } }, now: NOW, recentFailureWindowMs: windowMs }).start);
    expect(order(15 * MINUTE)).toEqual(['receive', 'send-just-failed', 'send-old', 'send-failed-long-ago']);
    // A 45-minute window boosts both failed sends; among boosted sends age decides.
    expect(order(45 * MINUTE)).toEqual(['receive', 'send-failed-long-ago', 'send-just-failed', 'send-old']);
  });

  it('runs each machine on its own slots; unknown machines get the defaults (2 ZFS, 1 transfer)', () => {
    const queued = [
      task({ id: 'a1', machine: 'a', kind: 'transfer', action: 'send' }),
      task({ id: 'a2', machine: 'a', kind: 'transfer', action: 'send' }),
      task({ id: 'b1', machine: 'b', kind: 'transfer', action: 'send' }),
      task({ id: 'c1', machine: 'c', kind: 'zfs', action: 'snapshot' }),
      task({ id: 'c2', machine: 'c', kind: 'zfs', action: 'snapshot' }),
      task({ id: 'c3', machine: 'c', kind: 'zfs', action: 'snapshot' }),
    ];
    const result = selectTasksToStart({ queued, running: [], slots: { a: { zfs: 0, transfer: 2 }, b: { zfs: 1, transfer: 0 } }, now: NOW });
    expect(new Set(ids(result.start))).toEqual(new Set(['a1', 'a2', 'c1', 'c2']));
    expect(new Set(ids(result.waiting))).toEqual(new Set(['b1', 'c3']));
  });

  it('gives no boost to a failure outside the window or "in the future" (clock skew), nor to non-sends', () => {
    const base = { machine: 'agg', kind: 'transfer' as const, priority: 100, enqueuedAt: NOW - 60 * MINUTE };
    expect(isRecentlyFailedSend({ ...base, id: 'a', action: 'send', lastFailedSendAt: NOW - 15 * MINUTE }, NOW, 15 * MINUTE)).toBe(true);
    expect(isRecentlyFailedSend({ ...base, id: 'b', action: 'send', lastFailedSendAt: NOW - 15 * MINUTE - 1 }, NOW, 15 * MINUTE)).toBe(false);
    expect(isRecentlyFailedSend({ ...base, id: 'c', action: 'send', lastFailedSendAt: NOW + MINUTE }, NOW, 15 * MINUTE)).toBe(false);
    expect(isRecentlyFailedSend({ ...base, id: 'd', action: 'stream', lastFailedSendAt: NOW - MINUTE }, NOW, 15 * MINUTE)).toBe(false);
    expect(isRecentlyFailedSend({ ...base, id: 'e', action: 'send' }, NOW, 15 * MINUTE)).toBe(false);
  });

  it('treats slots lowered below the running count as zero free slots', () => {
    const running: RunningTask[] = [1, 2, 3].map((i) => ({ id: `r${i}`, machine: 'agg', kind: 'zfs' }));
    const queued = [task({ id: 'snap', kind: 'zfs', action: 'snapshot' }), task({ id: 'recv', kind: 'transfer', action: 'receive' })];
    const result = selectTasksToStart({ queued, running, slots: { agg: { zfs: 1, transfer: 1 } }, now: NOW });
    expect(ids(result.start)).toEqual(['recv']);
  });

  it('does not start a task that is already running', () => {
    const queued = [task({ id: 'dup', kind: 'zfs', action: 'prune' })];
    const result = selectTasksToStart({ queued, running: [{ id: 'dup', machine: 'agg', kind: 'zfs' }], slots: { agg: { zfs: 5, transfer: 5 } }, now: NOW });
    expect(result.start).toEqual([]);
  });
});

const MACHINES = ['m1', 'm2', 'm3'] as const;
const queuedArb = fc.uniqueArray(
  fc.record({
    id: fc.string({ minLength: 1, maxLength: 6 }),
    machine: fc.constantFrom(...MACHINES),
    kind: fc.constantFrom('zfs' as const, 'transfer' as const),
    // Sends are frequent and priorities few, so that ties the later keys must break are common.
    action: fc.oneof({ arbitrary: fc.constant('send' as const), weight: 3 }, { arbitrary: fc.constantFrom(...TASK_ACTIONS), weight: 2 }),
    priority: fc.integer({ min: 0, max: 1 }).map((p) => p * 100),
    enqueuedAt: fc.integer({ min: NOW - 120 * MINUTE, max: NOW }),
    lastFailedSendAt: fc.option(fc.integer({ min: NOW - 60 * MINUTE, max: NOW + MINUTE }), { nil: undefined }),
  }),
  { maxLength: 40, size: '+1', selector: (t) => t.id },
);
const slotsArb = fc.record({ zfs: fc.integer({ min: 0, max: 4 }), transfer: fc.integer({ min: 0, max: 4 }) });
const inputArb: fc.Arbitrary<TaskSelectionInput> = fc.record({
  queued: queuedArb.map((tasks) => tasks.map((t) => (t.lastFailedSendAt === undefined ? (({ lastFailedSendAt: _x, ...rest }) => rest)(t) : t))),
  running: fc.array(
    fc.record({ id: fc.string({ minLength: 7, maxLength: 9 }), machine: fc.constantFrom(...MACHINES), kind: fc.constantFrom('zfs' as const, 'transfer' as const) }),
    { maxLength: 6 },
  ),
  slots: fc.record({ m1: slotsArb, m2: slotsArb }) as fc.Arbitrary<Record<string, MachineSlots>>,
  now: fc.constant(NOW),
  recentFailureWindowMs: fc.integer({ min: 0, max: 30 * MINUTE }),
});

const freeSlots = (input: TaskSelectionInput, machine: string, kind: 'zfs' | 'transfer'): number => {
  const configured = input.slots[machine] ?? { zfs: 2, transfer: 1 };
  const running = input.running.filter((r) => r.machine === machine && r.kind === kind).length;
  return Math.max(0, configured[kind] - running);
};

describe('selectTasksToStart properties', () => {
  it('never exceeds the free slots of a machine and kind, and fills them when work is queued', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { start, waiting } = selectTasksToStart(input);
        expect(start.length + waiting.length).toBe(input.queued.length);
        for (const machine of MACHINES) {
          for (const kind of ['zfs', 'transfer'] as const) {
            const started = start.filter((t) => t.machine === machine && t.kind === kind).length;
            const queued = input.queued.filter((t) => t.machine === machine && t.kind === kind).length;
            expect(started).toBe(Math.min(freeSlots(input, machine, kind), queued));
          }
        }
      }),
    );
  });

  it('starts the best-ordered tasks: no waiting task of the same machine and kind ranks before a started one', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { start, waiting } = selectTasksToStart(input);
        const window = input.recentFailureWindowMs;
        for (let i = 1; i < start.length; i++) {
          expect(compareTasks(start[i - 1] as QueuedTask, start[i] as QueuedTask, input.now, window)).toBeLessThan(0);
        }
        for (const w of waiting) {
          for (const s of start.filter((t) => t.machine === w.machine && t.kind === w.kind)) {
            expect(compareTasks(s, w, input.now, window)).toBeLessThan(0);
          }
        }
      }),
    );
  });

  it('ZFS and transfer queues are independent: removing one kind never changes what starts of the other', () => {
    fc.assert(
      fc.property(inputArb, fc.constantFrom('zfs' as const, 'transfer' as const), (input, kind) => {
        const all = selectTasksToStart(input).start.filter((t) => t.kind === kind);
        const only = selectTasksToStart({ ...input, queued: input.queued.filter((t) => t.kind === kind) }).start;
        expect(ids(only)).toEqual(ids(all));
      }),
    );
  });

  it('orders by priority first, then action rank, then boost, then age', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const { start } = selectTasksToStart({ ...input, slots: { m1: { zfs: 99, transfer: 99 }, m2: { zfs: 99, transfer: 99 }, m3: { zfs: 99, transfer: 99 } }, running: [] });
        const window = input.recentFailureWindowMs ?? 0;
        const boosted = (t: QueuedTask): number =>
          t.action === 'send' && t.lastFailedSendAt !== undefined && t.lastFailedSendAt <= NOW && NOW - t.lastFailedSendAt <= window ? 0 : 1;
        const key = (t: QueuedTask): number[] => [-t.priority, TASK_ACTIONS.indexOf(t.action), boosted(t), t.enqueuedAt];
        for (let i = 1; i < start.length; i++) {
          const a = key(start[i - 1] as QueuedTask);
          const b = key(start[i] as QueuedTask);
          const firstDifference = a.findIndex((value, index) => value !== b[index]);
          if (firstDifference >= 0) expect(a[firstDifference] as number).toBeLessThan(b[firstDifference] as number);
        }
      }),
    );
  });
});
