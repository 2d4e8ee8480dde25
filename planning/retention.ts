/**
 * Retention: which restore points of one dataset to keep and which to destroy, with the reason for each.
 * Pure: snapshots, policy, `now`, the protected set and the pool's capacity in; a plan out. The exact semantics
 * are written down in `planning/RETENTION.md`; this comment is the short version.
 *
 * 1. Keep rules (a snapshot is kept when any rule keeps it; the reasons of all rules that keep it are listed):
 *    `newest` (always), `protected` (held as an incremental base by a vector; always), `future` (created after
 *    `now`: the clocks disagree, so bdr does not reason about it), `keepLast` (the N newest), and the calendar
 *    tiers `hourly`, `daily`, `weekly` (ISO, Monday first), `monthly`, `yearly` in the policy's time zone: per tier,
 *    the newest snapshot of each of the N most recent periods that contain a snapshot.
 * 2. Everything else is destroyed as `expired`.
 * 3. Caps: `maxSnapshots` (count) and `maxRolling` (pool allocation ≥ capacityPercent) thin out the kept
 *    snapshots that only calendar tiers keep: the densest tier first (snapshots whose coarsest keeping tier is
 *    hourly, then daily, weekly, monthly, yearly), oldest first within a tier, until both caps are satisfied.
 *    The floor (newest, protected, future, keepLast) is never thinned; a cap the floor prevents is reported in
 *    `unmetCaps`, which the controller turns into a `RetentionBlocked` event.
 */
import { DAY_MS, HOUR_MS, civilFromDays, formatLocalDate, formatOffset, isoWeekIndex, isoWeekOf, zoneClock } from './calendar.ts';
import { isValidTimeZone, toEpochMs, type Instant } from './schedule.ts';

export const CALENDAR_TIERS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
export type CalendarTier = (typeof CALENDAR_TIERS)[number];

export interface RetentionPolicy {
  readonly keepLast?: number;
  readonly hourly?: number;
  readonly daily?: number;
  readonly weekly?: number;
  readonly monthly?: number;
  readonly yearly?: number;
  /** IANA zone whose calendar the tiers follow; default UTC. */
  readonly timeZone?: string;
  readonly maxSnapshots?: number;
  readonly maxRolling?: { readonly capacityPercent: number };
}

export interface SnapshotInfo {
  readonly name: string;
  readonly createdAt: Instant;
  /** ZFS `used` of the snapshot: the bytes only it references (freed when it alone is destroyed). */
  readonly usedBytes?: number;
}

export interface PoolCapacity {
  readonly sizeBytes: number;
  readonly allocatedBytes: number;
}

export interface RetentionInput {
  readonly snapshots: readonly SnapshotInfo[];
  readonly policy: RetentionPolicy;
  readonly now: Instant;
  /** Names held as incremental bases by vectors (or otherwise pinned); never destroyed. */
  readonly protectedNames?: ReadonlySet<string> | readonly string[];
  /** The pool the dataset lives in; needed only for `maxRolling`. */
  readonly pool?: PoolCapacity;
}

export interface RetentionDecision {
  readonly name: string;
  readonly createdAt: number;
  readonly keep: boolean;
  /** Why it is kept (`newest`, `keepLast`, `daily 2026-11-26`, …) or destroyed (`expired`, `maxSnapshots: 101 > 100`). */
  readonly reasons: readonly string[];
}

export interface RetentionPlan {
  /** One decision per input snapshot, newest first. */
  readonly decisions: readonly RetentionDecision[];
  readonly keep: readonly string[];
  readonly destroy: readonly string[];
  /** Pool allocation after the destroys, counting only each snapshot's own `used` (an upper bound; see RETENTION.md). */
  readonly projectedAllocatedBytes?: number;
  /** Caps that are still exceeded because only the floor remains, e.g. `maxSnapshots: 130 > 100 …`. */
  readonly unmetCaps: readonly string[];
}

/** Problems in a policy, as messages; empty when valid. `planRetention` refuses invalid policies. */
export function validateRetentionPolicy(policy: RetentionPolicy): string[] {
  const problems: string[] = [];
  for (const field of ['keepLast', ...CALENDAR_TIERS] as const) {
    const value = policy[field];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      problems.push(`${field} must be a whole number ≥ 0, got ${String(value)}`);
    }
  }
  if (policy.maxSnapshots !== undefined && (!Number.isSafeInteger(policy.maxSnapshots) || policy.maxSnapshots < 1)) {
    problems.push(`maxSnapshots must be a whole number ≥ 1, got ${String(policy.maxSnapshots)}`);
  }
  const percent = policy.maxRolling?.capacityPercent;
  if (policy.maxRolling !== undefined && (typeof percent !== 'number' || !(percent > 0 && percent <= 100))) {
    problems.push(`maxRolling.capacityPercent must be in (0, 100], got ${String(percent)}`);
  }
  if (policy.timeZone !== undefined && !isValidTimeZone(policy.timeZone)) {
    problems.push(`timeZone "${policy.timeZone}" is not an IANA time zone`);
  }
  return problems;
}

/** Which tier is coarser: thinning removes low ranks first ("densest tier first"). */
const TIER_RANK: Readonly<Record<CalendarTier, number>> = { hourly: 1, daily: 2, weekly: 3, monthly: 4, yearly: 5 };
const FLOOR_RANK = Number.POSITIVE_INFINITY;

interface TierState {
  readonly tier: CalendarTier;
  readonly limit: number;
  periods: number;
  lastKey: number;
}

export function planRetention(input: RetentionInput): RetentionPlan {
  const { policy } = input;
  const problems = validateRetentionPolicy(policy);
  if (problems.length > 0) throw new RangeError(`invalid retention policy: ${problems.join('; ')}`);

  const nowMs = toEpochMs(input.now);
  const protectedNames = input.protectedNames instanceof Set ? input.protectedNames : new Set(input.protectedNames ?? []);
  const count = input.snapshots.length;

  const createdAt = new Float64Array(count);
  for (let i = 0; i < count; i++) createdAt[i] = toEpochMs((input.snapshots[i] as SnapshotInfo).createdAt);
  const order = newestFirst(createdAt, (i) => (input.snapshots[i] as SnapshotInfo).name);
  // From here on everything is indexed by position k in newest-first order; permuting once keeps every later pass
  // sequential in memory (random access into 100,000 objects costs more than the passes themselves).
  const sorted: SnapshotInfo[] = new Array<SnapshotInfo>(count);
  const times = new Float64Array(count);
  for (let k = 0; k < count; k++) {
    const i = order[k] as number;
    sorted[k] = input.snapshots[i] as SnapshotInfo;
    times[k] = createdAt[i] as number;
  }

  // reasons[k] and rank[k] are indexed by position in `order` (0 = newest). Reason lists are allocated only
  // for kept snapshots: with 100,000 snapshots, allocation dominates the cost of a plan.
  const reasons: (string[] | undefined)[] = new Array<string[] | undefined>(count).fill(undefined);
  const rank = new Float64Array(count); // 0 = not kept; tier rank; FLOOR_RANK = never thinned
  const keepFloor = (k: number, reason: string): void => {
    addReason(reasons, k, reason);
    rank[k] = FLOOR_RANK;
  };

  const keepLast = policy.keepLast ?? 0;
  const anyProtected = protectedNames.size > 0;
  for (let k = 0; k < count; k++) {
    if (k === 0) keepFloor(k, 'newest');
    if (anyProtected && protectedNames.has((sorted[k] as SnapshotInfo).name)) keepFloor(k, 'protected');
    if ((times[k] as number) > nowMs) keepFloor(k, 'future');
    if (k < keepLast) keepFloor(k, 'keepLast');
  }

  applyCalendarTiers(policy, times, reasons, rank);

  // Destroy what no rule keeps; then thin for the caps.
  const destroyReasons: (readonly string[] | undefined)[] = new Array<readonly string[] | undefined>(count).fill(undefined);
  let keptCount = 0;
  let projected = input.pool?.allocatedBytes;
  for (let k = 0; k < count; k++) {
    if (rank[k] === 0) {
      destroyReasons[k] = EXPIRED;
      if (projected !== undefined) projected -= usedBytesOf(sorted[k] as SnapshotInfo);
    } else {
      keptCount += 1;
    }
  }

  const unmetCaps: string[] = [];
  const maxSnapshots = policy.maxSnapshots;
  const rollingPercent = policy.maxRolling?.capacityPercent;
  const pool = input.pool;
  const poolSize = pool?.sizeBytes ?? 0;
  const rollingActive = rollingPercent !== undefined && pool !== undefined && poolSize > 0;
  if (rollingPercent !== undefined && !rollingActive) {
    unmetCaps.push('maxRolling: pool capacity unknown, not evaluated');
  }
  const overCount = (): boolean => maxSnapshots !== undefined && keptCount > maxSnapshots;
  const overCapacity = (): boolean =>
    rollingActive && percentOf(projected as number, poolSize) >= (rollingPercent as number);

  if (overCount() || overCapacity()) {
    // Thinning candidates: kept by calendar tiers only. Densest tier first, then oldest first.
    const candidates: number[] = [];
    for (let k = 0; k < count; k++) if (rank[k] !== 0 && rank[k] !== FLOOR_RANK) candidates.push(k);
    candidates.sort((a, b) => (rank[a] as number) - (rank[b] as number) || b - a);
    for (const k of candidates) {
      const why: string[] = [];
      if (overCount()) why.push(`maxSnapshots: ${keptCount} > ${maxSnapshots as number}`);
      if (overCapacity()) {
        why.push(`maxRolling: pool at ${formatPercent(percentOf(projected as number, poolSize))}% ≥ ${rollingPercent as number}%`);
      }
      if (why.length === 0) break;
      destroyReasons[k] = why;
      keptCount -= 1;
      if (projected !== undefined) projected -= usedBytesOf(sorted[k] as SnapshotInfo);
    }
    if (overCount()) {
      unmetCaps.push(`maxSnapshots: ${keptCount} > ${maxSnapshots as number}, but all remaining snapshots are the floor (newest, keepLast, protected)`);
    }
    if (overCapacity()) {
      unmetCaps.push(
        `maxRolling: pool at ${formatPercent(percentOf(projected as number, poolSize))}% ≥ ${rollingPercent as number}% after thinning; only the floor (newest, keepLast, protected) remains`,
      );
    }
  }

  const decisions: RetentionDecision[] = new Array<RetentionDecision>(count);
  const keep: string[] = [];
  const destroy: string[] = [];
  for (let k = 0; k < count; k++) {
    const snapshot = sorted[k] as SnapshotInfo;
    const destroyed = destroyReasons[k];
    if (destroyed === undefined) keep.push(snapshot.name);
    else destroy.push(snapshot.name);
    decisions[k] = {
      name: snapshot.name,
      createdAt: times[k] as number,
      keep: destroyed === undefined,
      reasons: destroyed ?? reasons[k] ?? [],
    };
  }
  return {
    decisions,
    keep,
    destroy,
    ...(projected !== undefined ? { projectedAllocatedBytes: Math.max(0, projected) } : {}),
    unmetCaps,
  };
}

/**
 * One pass, newest to oldest, for all tiers at once. A period starts whenever a snapshot's period key differs
 * from the previous (newer) snapshot's: keys are monotone in time, so periods are contiguous runs, and the first
 * snapshot of a run is the newest of its period.
 */
function applyCalendarTiers(
  policy: RetentionPolicy,
  times: Float64Array,
  reasons: (string[] | undefined)[],
  rank: Float64Array,
): void {
  const active: TierState[] = [];
  for (const tier of CALENDAR_TIERS) {
    const limit = policy[tier] ?? 0;
    if (limit > 0) active.push({ tier, limit, periods: 0, lastKey: Number.NaN });
  }
  if (active.length === 0) return;
  const clock = zoneClock(policy.timeZone ?? 'UTC');
  let remaining = active.length;
  for (let k = 0; k < times.length && remaining > 0; k++) {
    const utc = times[k] as number;
    const offsetMin = clock.offsetMinutes(utc);
    const local = utc + offsetMin * 60_000;
    const day = Math.floor(local / DAY_MS);
    for (const state of active) {
      if (state.periods > state.limit) continue;
      const key = periodKey(state.tier, local, day, offsetMin);
      if (key === state.lastKey) continue;
      state.lastKey = key;
      state.periods += 1;
      if (state.periods > state.limit) {
        remaining -= 1;
        continue;
      }
      addReason(reasons, k, `${state.tier} ${periodLabel(state.tier, local, day, offsetMin, clock.isUtc)}`);
      if ((rank[k] as number) < TIER_RANK[state.tier]) rank[k] = TIER_RANK[state.tier];
    }
  }
}

/**
 * Numeric identity of the period containing an instant. Hourly periods include the UTC offset, so the hour that
 * repeats when DST ends (02:00–03:00 twice in Berlin) is two hourly periods, one per elapsed hour.
 */
function periodKey(tier: CalendarTier, local: number, day: number, offsetMin: number): number {
  switch (tier) {
    case 'hourly':
      return Math.floor(local / HOUR_MS) * 4096 + (offsetMin + 2048);
    case 'daily':
      return day;
    case 'weekly':
      return isoWeekIndex(day);
    case 'monthly': {
      const { year, month } = civilFromDays(day);
      return year * 12 + month;
    }
    case 'yearly':
      return civilFromDays(day).year;
  }
}

function periodLabel(tier: CalendarTier, local: number, day: number, offsetMin: number, utc: boolean): string {
  const date = formatLocalDate(day);
  switch (tier) {
    case 'hourly': {
      const hour = String(Math.floor((local - day * DAY_MS) / HOUR_MS)).padStart(2, '0');
      return `${date}T${hour}${utc ? '' : formatOffset(offsetMin)}`;
    }
    case 'daily':
      return date;
    case 'weekly': {
      const { weekYear, week } = isoWeekOf(isoWeekIndex(day));
      return `${weekYear}-W${String(week).padStart(2, '0')}`;
    }
    case 'monthly':
      return date.slice(0, 7);
    case 'yearly':
      return date.slice(0, 4);
  }
}

/**
 * Indices ordered newest first; equal creation times by name, descending, so the plan never depends on input
 * order. A comparator sort of 100,000 items costs more than the whole rest of a plan, so when the creation
 * times allow it, each (time, index) pair is packed into one exactly representable number and sorted by the
 * native numeric sort. ZFS reports creation in whole seconds, which keeps the packed keys small; fractional or
 * far-apart times fall back to the comparator sort.
 */
function newestFirst(createdAt: Float64Array, nameOf: (index: number) => string): number[] {
  const count = createdAt.length;
  const byNameDescending = (a: number, b: number): number => {
    const nameA = nameOf(a);
    const nameB = nameOf(b);
    return nameA < nameB ? 1 : nameA > nameB ? -1 : 0;
  };
  // `zfs list -s creation` already yields strictly ascending times: then no sort is needed at all.
  let ascending = true;
  let descending = true;
  for (let i = 1; i < count && (ascending || descending); i++) {
    const step = (createdAt[i] as number) - (createdAt[i - 1] as number);
    if (!(step > 0)) ascending = false;
    if (!(step < 0)) descending = false;
  }
  if (ascending || descending) {
    const order = new Array<number>(count);
    for (let k = 0; k < count; k++) order[k] = ascending ? count - 1 - k : k;
    return order;
  }

  let newest = Number.NEGATIVE_INFINITY;
  let oldest = Number.POSITIVE_INFINITY;
  let wholeSeconds = true;
  let integers = true;
  for (let i = 0; i < count; i++) {
    const t = createdAt[i] as number;
    if (t > newest) newest = t;
    if (t < oldest) oldest = t;
    if (!Number.isInteger(t)) integers = false;
    else if (t % 1000 !== 0) wholeSeconds = false;
  }
  const unit = wholeSeconds ? 1000 : 1;
  const span = (newest - oldest) / unit;
  let order: number[];
  if (count > 1 && integers && (span + 1) * count <= Number.MAX_SAFE_INTEGER) {
    const keys = new Float64Array(count);
    for (let i = 0; i < count; i++) keys[i] = ((newest - (createdAt[i] as number)) / unit) * count + i;
    keys.sort();
    order = new Array<number>(count);
    for (let k = 0; k < count; k++) order[k] = (keys[k] as number) % count;
  } else {
    order = Array.from({ length: count }, (_, i) => i);
    order.sort((a, b) => (createdAt[b] as number) - (createdAt[a] as number) || byNameDescending(a, b));
    return order;
  }
  // Runs of equal creation times were ordered by index; order them by name instead.
  for (let start = 0; start < count; ) {
    let end = start + 1;
    while (end < count && createdAt[order[end] as number] === createdAt[order[start] as number]) end += 1;
    if (end - start > 1) {
      const run = order.slice(start, end).sort(byNameDescending);
      for (let j = 0; j < run.length; j++) order[start + j] = run[j] as number;
    }
    start = end;
  }
  return order;
}

/** Shared by every expired decision (frozen, so no caller can change one through another). */
const EXPIRED: readonly string[] = Object.freeze(['expired']);

function addReason(reasons: (string[] | undefined)[], k: number, reason: string): void {
  const list = reasons[k];
  if (list === undefined) reasons[k] = [reason];
  else list.push(reason);
}

function usedBytesOf(snapshot: SnapshotInfo): number {
  const used = snapshot.usedBytes;
  return used !== undefined && Number.isFinite(used) && used > 0 ? used : 0;
}

function percentOf(allocated: number, size: number): number {
  return (allocated / size) * 100;
}

/** Rounded down to one decimal, so a shown value never claims more than the threshold comparison saw. */
function formatPercent(percent: number): string {
  return String(Math.floor(percent * 10) / 10);
}
