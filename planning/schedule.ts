/**
 * When a periodic job (snapshot, replication) is due: a pure function of the schedule, the time of the last
 * run and `now` (VolSync's approach: the schedule is derived from status timestamps, never from timers).
 *
 * Semantics, in one place:
 * - A schedule is a set of *scheduled instants*. `nextDue(s, lastRun, now)` is the first scheduled instant
 *   strictly after `lastRun`; the job is due when that instant is ≤ `now`. A job that never ran is due at `now`
 *   (the first run happens right away, as in VolSync, instead of waiting up to a whole period).
 * - Interval schedules (`{ interval: '15m' }`) are aligned to the Unix epoch in UTC: the instants are the
 *   multiples of the interval since 1970-01-01T00:00Z. A restart or a late run therefore never shifts later
 *   runs ("drift"), and every dataset with the same interval fires at the same instants, which lets the
 *   controller take them in one atomic `zfs snapshot`. Consequence: `1d` fires at 00:00 UTC; use a cron
 *   schedule with a time zone for "every day at 02:00 Berlin time".
 * - Cron schedules (`{ cron: '0 2 * * *', timeZone: 'Europe/Berlin' }`) are 5-field cron (minute hour
 *   day-of-month month day-of-week) or @hourly/@daily/@weekly/@monthly/@yearly (@annually), evaluated in the
 *   IANA time zone (default UTC) by cron-parser; @weekly is Sunday 00:00 and @monthly the 1st at 00:00, as in
 *   classic cron. Across DST: a local time that does not exist (spring forward,
 *   02:30 in Berlin on the last Sunday of March) fires at the same wall-clock offset after the gap (03:30); a local
 *   time that occurs twice (fall back) fires once, at its first occurrence. Hour-stepped expressions
 *   (`0 * * * *`) fire once per elapsed hour through both transitions. When day-of-month and day-of-week are
 *   both restricted, either matching is enough (classic cron).
 * - Missed runs (VolSync semantics): a scheduled instant is *missed* when no run happened before the following
 *   scheduled instant. With instants t1 < t2 < … < tk in (lastRun, now], t1…t(k-1) are missed and tk is merely
 *   due, so `missedRuns` is max(0, k-1). A job that never ran has missed nothing.
 */
import { CronExpressionParser } from 'cron-parser';
import { IANAZone } from 'luxon';
import { formatDuration, parseDuration, type Parsed } from './duration.ts';

/** What a user writes in YAML. */
export type ScheduleSpec = { readonly interval: string } | { readonly cron: string; readonly timeZone?: string };

/** A validated schedule: only `parseSchedule` makes these, so the functions below cannot meet bad input. */
export type Schedule =
  | { readonly kind: 'interval'; readonly intervalMs: number; readonly text: string }
  | { readonly kind: 'cron'; readonly expression: string; readonly timeZone: string };

/** An instant: epoch milliseconds or a Date. */
export type Instant = number | Date;

/** Shortest interval accepted: below a second the controller's reconcile cadence could never keep up. */
export const MIN_INTERVAL_MS = 1_000;

/** Upper bound on the instants `missedRuns` enumerates for cron schedules; the count saturates there. */
export const DEFAULT_MISSED_RUNS_LIMIT = 10_000;

const CRON_MACROS = new Set(['@hourly', '@daily', '@weekly', '@monthly', '@yearly', '@annually']);

export function toEpochMs(instant: Instant): number {
  return typeof instant === 'number' ? instant : instant.getTime();
}

const zoneValidity = new Map<string, boolean>();

/**
 * True when `zone` is an IANA time zone name this runtime knows. Luxon asks Intl, which costs close to a
 * millisecond per call, so answers are remembered (bounded, since names come from user input).
 */
export function isValidTimeZone(zone: string): boolean {
  let valid = zoneValidity.get(zone);
  if (valid === undefined) {
    valid = IANAZone.isValidZone(zone);
    if (zoneValidity.size >= 1024) zoneValidity.clear();
    zoneValidity.set(zone, valid);
  }
  return valid;
}

/** Validates user input; never throws. Accepts the spec as `unknown` because it comes from YAML. */
export function parseSchedule(spec: unknown): Parsed<Schedule> {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    return { ok: false, problem: 'schedule must be an object with either "interval" or "cron"' };
  }
  const record = spec as Record<string, unknown>;
  const hasInterval = record['interval'] !== undefined;
  const hasCron = record['cron'] !== undefined;
  if (hasInterval === hasCron) {
    return { ok: false, problem: 'schedule must set exactly one of "interval" (e.g. "15m") or "cron" (e.g. "0 * * * *")' };
  }
  if (hasInterval) {
    if (record['timeZone'] !== undefined) {
      return { ok: false, problem: 'schedule.timeZone applies to cron schedules only (intervals are aligned to the epoch in UTC)' };
    }
    return parseIntervalSchedule(record['interval']);
  }
  return parseCronSchedule(record['cron'], record['timeZone']);
}

/**
 * The same validation, shaped for field-level reporting (`api/semantics.ts`, `bdr validate`): which field of the
 * schedule object is wrong. Never throws.
 */
export function validateScheduleSpec(
  spec: unknown,
): { readonly ok: true } | { readonly ok: false; readonly field: 'interval' | 'cron' | 'timeZone'; readonly problem: string } {
  const parsed = parseSchedule(spec);
  if (parsed.ok) return { ok: true };
  const field = parsed.problem.startsWith('schedule.timeZone')
    ? 'timeZone'
    : parsed.problem.startsWith('schedule.cron')
      ? 'cron'
      : 'interval';
  return { ok: false, field, problem: parsed.problem };
}

function parseIntervalSchedule(value: unknown): Parsed<Schedule> {
  if (typeof value !== 'string') return { ok: false, problem: 'schedule.interval must be a string such as "15m"' };
  const parsed = parseDuration(value);
  if (!parsed.ok) return { ok: false, problem: `schedule.interval: ${parsed.problem}` };
  if (parsed.value < MIN_INTERVAL_MS) {
    return { ok: false, problem: `schedule.interval "${value}" is shorter than the minimum ${formatDuration(MIN_INTERVAL_MS)}` };
  }
  return { ok: true, value: { kind: 'interval', intervalMs: parsed.value, text: value } };
}

function parseCronSchedule(cron: unknown, timeZone: unknown): Parsed<Schedule> {
  if (typeof cron !== 'string') return { ok: false, problem: 'schedule.cron must be a string such as "0 * * * *"' };
  const zone = timeZone ?? 'UTC';
  if (typeof zone !== 'string' || !isValidTimeZone(zone)) {
    return { ok: false, problem: `schedule.timeZone "${String(zone)}" is not an IANA time zone (e.g. "Europe/Berlin", "UTC")` };
  }
  const expression = cron.trim().replace(/\s+/g, ' ');
  if (expression.startsWith('@')) {
    if (!CRON_MACROS.has(expression)) {
      return { ok: false, problem: `schedule.cron "${cron}": unknown macro (use ${[...CRON_MACROS].join(', ')})` };
    }
  } else if (expression.split(' ').length !== 5) {
    // cron-parser would also take a seconds field; bdr keeps the classic 5 fields so specs stay portable.
    return {
      ok: false,
      problem: `schedule.cron "${cron}" must have 5 fields (minute hour day-of-month month day-of-week), found ${expression === '' ? 0 : expression.split(' ').length}`,
    };
  }
  try {
    // Asking for one instant also rejects expressions that parse but can never fire.
    CronExpressionParser.parse(expression, { tz: zone, currentDate: 0 }).next();
  } catch (error) {
    return { ok: false, problem: `schedule.cron "${cron}": ${error instanceof Error ? error.message : String(error)}` };
  }
  return { ok: true, value: { kind: 'cron', expression, timeZone: zone } };
}

/** The first scheduled instant strictly after `after`. */
export function nextScheduledAfter(schedule: Schedule, after: Instant): number {
  const afterMs = toEpochMs(after);
  if (schedule.kind === 'interval') {
    return (Math.floor(afterMs / schedule.intervalMs) + 1) * schedule.intervalMs;
  }
  const iterator = CronExpressionParser.parse(schedule.expression, { tz: schedule.timeZone, currentDate: afterMs });
  const next = iterator.next().getTime();
  // cron-parser works at whole seconds; guard the "strictly after" contract for sub-second `after` values.
  return next > afterMs ? next : iterator.next().getTime();
}

/**
 * When the job is due next: `now` for a job that never ran, else the first scheduled instant after `lastRun`.
 * A result ≤ `now` means "due now" (possibly overdue; see `missedRuns`).
 */
export function nextDue(schedule: Schedule, lastRun: Instant | undefined, now: Instant): number {
  if (lastRun === undefined) return toEpochMs(now);
  return nextScheduledAfter(schedule, lastRun);
}

/** True when a run should start at `now`. */
export function isDue(schedule: Schedule, lastRun: Instant | undefined, now: Instant): boolean {
  return nextDue(schedule, lastRun, now) <= toEpochMs(now);
}

/**
 * How many scheduled instants after `lastRun` were missed by `now` (see the module comment). For cron schedules
 * the count saturates at `limit`, because enumerating a year of minutely instants would be pointless work.
 */
export function missedRuns(
  schedule: Schedule,
  lastRun: Instant | undefined,
  now: Instant,
  limit: number = DEFAULT_MISSED_RUNS_LIMIT,
): number {
  if (lastRun === undefined) return 0;
  const lastMs = toEpochMs(lastRun);
  const nowMs = toEpochMs(now);
  if (nowMs <= lastMs) return 0;
  if (schedule.kind === 'interval') {
    const instantsUpToNow = Math.floor(nowMs / schedule.intervalMs) - Math.floor(lastMs / schedule.intervalMs);
    return Math.max(0, instantsUpToNow - 1);
  }
  const iterator = CronExpressionParser.parse(schedule.expression, { tz: schedule.timeZone, currentDate: lastMs });
  let instants = 0;
  // `limit + 1` instants are needed to report `limit` misses.
  while (instants <= limit) {
    const next = iterator.next().getTime();
    if (next <= lastMs) continue;
    if (next > nowMs) break;
    instants += 1;
  }
  return Math.min(limit, Math.max(0, instants - 1));
}

/** Human description for status and `bdr plan`, e.g. `every 15m` or `cron "0 2 * * *" (Europe/Berlin)`. */
export function describeSchedule(schedule: Schedule): string {
  return schedule.kind === 'interval'
    ? `every ${formatDuration(schedule.intervalMs)} (epoch-aligned, UTC)`
    : `cron "${schedule.expression}" (${schedule.timeZone})`;
}
