/**
 * Which queued tasks start now: the seed's per-machine task queue with separate slots for ZFS operations and
 * for transfers (Machine `spec.slots: { zfs, transfer }`).
 *
 * Order (first key first):
 * 1. `priority`, the Dataset's priority: **higher first** (as Kubernetes PriorityClass values and the Dataset
 *    schema's "higher runs first"; default 100 there).
 * 2. The action, in the seed's second-level order: receive, send, build, stream; actions the seed does not
 *    rank (snapshot, prune, hold, other) come after stream, in that order.
 * 3. A boost for a send whose last attempt failed within `recentFailureWindowMs` before `now` (default 15 min):
 *    the seed retries a send interrupted by a transient network problem ahead of the others.
 * 4. Age: the earlier `enqueuedAt` first; then `id`, so the result never depends on input order.
 *
 * Slot loop (seed): walk the ordered queue; a ZFS task starts when a ZFS slot is free, a transfer task when a
 * transfer slot is free, each start takes one slot; stop when no slot of either kind is left or the queue ends.
 * Deviations, and why:
 * - The seed runs one loop per machine; this function takes the queues of many machines and runs the loop for
 *   each machine independently (a busy machine never holds up another).
 * - The seed starts from the configured slot counts; here the free slots are the counts minus the tasks already
 *   running of that kind on that machine (never below zero, e.g. after slots were lowered), because the caller
 *   runs this on every reconcile, not once per batch.
 * - The seed leaves the failed-send boost's rank open ("may prioritize … even if the default prioritization would
 *   otherwise instruct"); bdr ranks it after priority and action, so a retried send never overtakes a receive or a
 *   more important dataset (a receive frees the other side's queue; priorities are the user's word).
 * - A task whose `id` is already running is not started twice (a duplicate in the queue is reported as waiting).
 */

export type TaskKind = 'zfs' | 'transfer';
export const TASK_ACTIONS = ['receive', 'send', 'build', 'stream', 'snapshot', 'prune', 'hold', 'other'] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

export interface QueuedTask {
  readonly id: string;
  readonly machine: string;
  readonly kind: TaskKind;
  readonly action: TaskAction;
  /** Higher runs first. */
  readonly priority: number;
  /** Epoch milliseconds. */
  readonly enqueuedAt: number;
  /** When this send last failed (epoch ms); only meaningful for `send`. */
  readonly lastFailedSendAt?: number;
}

export interface RunningTask {
  readonly id: string;
  readonly machine: string;
  readonly kind: TaskKind;
}

export interface MachineSlots {
  readonly zfs: number;
  readonly transfer: number;
}

export interface TaskSelectionInput {
  readonly queued: readonly QueuedTask[];
  readonly running: readonly RunningTask[];
  /** Slot counts per machine name; machines not listed get `defaultSlots`. */
  readonly slots: Readonly<Record<string, MachineSlots>>;
  readonly now: number;
  /** Defaults to the Machine schema's defaults: 2 ZFS slots, 1 transfer slot. */
  readonly defaultSlots?: MachineSlots;
  /** How long after a failure a send is boosted; default 15 minutes. */
  readonly recentFailureWindowMs?: number;
}

export interface TaskSelection {
  /** Tasks to start now, in the order they were picked. */
  readonly start: readonly QueuedTask[];
  /** Tasks that stay queued, in queue order. */
  readonly waiting: readonly QueuedTask[];
}

export const DEFAULT_SLOTS: MachineSlots = { zfs: 2, transfer: 1 };
export const DEFAULT_RECENT_FAILURE_WINDOW_MS = 15 * 60_000;

const ACTION_RANK: Readonly<Record<TaskAction, number>> = Object.fromEntries(
  TASK_ACTIONS.map((action, index) => [action, index]),
) as Record<TaskAction, number>;

/** True when a send failed within the window before `now` (a failure "in the future" is clock skew: no boost). */
export function isRecentlyFailedSend(task: QueuedTask, now: number, windowMs: number): boolean {
  return (
    task.action === 'send' &&
    task.lastFailedSendAt !== undefined &&
    task.lastFailedSendAt <= now &&
    now - task.lastFailedSendAt <= windowMs
  );
}

/** The comparator that defines queue order (negative: `a` runs first). */
export function compareTasks(a: QueuedTask, b: QueuedTask, now: number, windowMs = DEFAULT_RECENT_FAILURE_WINDOW_MS): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  const byAction = ACTION_RANK[a.action] - ACTION_RANK[b.action];
  if (byAction !== 0) return byAction;
  const boostA = isRecentlyFailedSend(a, now, windowMs) ? 1 : 0;
  const boostB = isRecentlyFailedSend(b, now, windowMs) ? 1 : 0;
  if (boostA !== boostB) return boostB - boostA;
  if (a.enqueuedAt !== b.enqueuedAt) return a.enqueuedAt - b.enqueuedAt;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Orders a queue (does not mutate the input). */
export function orderQueue(queued: readonly QueuedTask[], now: number, windowMs = DEFAULT_RECENT_FAILURE_WINDOW_MS): QueuedTask[] {
  return [...queued].sort((a, b) => compareTasks(a, b, now, windowMs));
}

export function selectTasksToStart(input: TaskSelectionInput): TaskSelection {
  const windowMs = input.recentFailureWindowMs ?? DEFAULT_RECENT_FAILURE_WINDOW_MS;
  const defaults = input.defaultSlots ?? DEFAULT_SLOTS;
  const runningIds = new Set(input.running.map((task) => task.id));

  // Free slots per machine and kind: configured minus running, never negative.
  const free = new Map<string, { zfs: number; transfer: number }>();
  const freeOf = (machine: string): { zfs: number; transfer: number } => {
    let entry = free.get(machine);
    if (entry === undefined) {
      const configured = Object.hasOwn(input.slots, machine) ? (input.slots[machine] as MachineSlots) : defaults;
      entry = { zfs: Math.max(0, configured.zfs), transfer: Math.max(0, configured.transfer) };
      free.set(machine, entry);
    }
    return entry;
  };
  for (const task of input.running) {
    const entry = freeOf(task.machine);
    entry[task.kind] = Math.max(0, entry[task.kind] - 1);
  }

  const start: QueuedTask[] = [];
  const waiting: QueuedTask[] = [];
  const startedIds = new Set<string>();
  for (const task of orderQueue(input.queued, input.now, windowMs)) {
    const entry = freeOf(task.machine);
    // The seed's loop stops once both kinds are exhausted; per machine that is the same as skipping the rest.
    if (entry[task.kind] > 0 && !runningIds.has(task.id) && !startedIds.has(task.id)) {
      entry[task.kind] -= 1;
      startedIds.add(task.id);
      start.push(task);
    } else {
      waiting.push(task);
    }
  }
  return { start, waiting };
}
