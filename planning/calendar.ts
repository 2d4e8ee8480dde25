/**
 * Calendar periods of an instant in an IANA time zone, computed fast enough for 100,000 snapshots.
 *
 * Asking Intl (through luxon) for a zone offset costs a few microseconds, far too slow to do per snapshot.
 * `ZoneClock` therefore remembers a span of time over which the offset is known to be constant and only asks
 * again outside it. Spans are found by probing one day back or forward: when the offset is the same at both
 * ends of a day, the whole day is taken to have that offset. That relies on one assumption, true of every zone
 * in the tz database: no zone changes its offset twice within 24 hours. When the ends differ, the transition is
 * located to the millisecond by bisection.
 *
 * Wall-clock arithmetic then works on "local epoch milliseconds" (`utc + offset`), using the proleptic
 * Gregorian calendar (civil-from-days after H. Hinnant), so leap years need no special case.
 */
import { IANAZone } from 'luxon';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
const PROBE_SPAN_MS = DAY_MS;

export class ZoneClock {
  readonly #zone: IANAZone | undefined;
  #spanStart = 1;
  #spanEnd = 0; // empty span until the first lookup
  #spanOffsetMin = 0;

  constructor(readonly zoneName: string) {
    // UTC needs no lookups at all; the common case stays cheap.
    this.#zone = zoneName === 'UTC' || zoneName === 'Etc/UTC' ? undefined : IANAZone.create(zoneName);
    if (this.#zone !== undefined && !this.#zone.isValid) throw new RangeError(`unknown time zone "${zoneName}"`);
  }

  get isUtc(): boolean {
    return this.#zone === undefined;
  }

  /** UTC offset in minutes at instant `ms` (e.g. +60 for Berlin in winter). */
  offsetMinutes(ms: number): number {
    const zone = this.#zone;
    if (zone === undefined) return 0;
    if (ms >= this.#spanStart && ms <= this.#spanEnd) return this.#spanOffsetMin;
    const offset = zone.offset(ms);
    let start = ms;
    let end = ms;
    // Extend backwards: snapshots are usually visited newest first.
    const before = ms - PROBE_SPAN_MS;
    start = zone.offset(before) === offset ? before : this.#transitionAfter(before, ms, offset);
    const after = ms + PROBE_SPAN_MS;
    end = zone.offset(after) === offset ? after : this.#transitionBefore(ms, after, offset);
    this.#spanStart = start;
    this.#spanEnd = end;
    this.#spanOffsetMin = offset;
    return offset;
  }

  /** Earliest instant in (lo, hi] that has `offset`, given offset(hi) = offset ≠ offset(lo). */
  #transitionAfter(lo: number, hi: number, offset: number): number {
    const zone = this.#zone as IANAZone;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (zone.offset(mid) === offset) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /** Latest instant in [lo, hi) that has `offset`, given offset(lo) = offset ≠ offset(hi). */
  #transitionBefore(lo: number, hi: number, offset: number): number {
    const zone = this.#zone as IANAZone;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (zone.offset(mid) === offset) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /** Wall-clock time at `ms` expressed as milliseconds since 1970-01-01T00:00 local. */
  localMs(ms: number): number {
    return ms + this.offsetMinutes(ms) * 60_000;
  }
}

const clocks = new Map<string, ZoneClock>();

/**
 * A shared clock per zone. Sharing is safe because a clock only memoizes facts of the tz database, and it lets
 * every plan of a reconcile reuse the spans the previous plans found.
 */
export function zoneClock(zoneName: string): ZoneClock {
  let clock = clocks.get(zoneName);
  if (clock === undefined) {
    clock = new ZoneClock(zoneName);
    if (clocks.size >= 256) clocks.clear(); // bounded: zone names come from user input
    clocks.set(zoneName, clock);
  }
  return clock;
}

export interface CivilDate {
  readonly year: number;
  readonly month: number; // 1..12
  readonly day: number; // 1..31
}

/** Days since 1970-01-01 → proleptic Gregorian date (Hinnant's civil_from_days). */
export function civilFromDays(epochDay: number): CivilDate {
  const z = epochDay + 719_468;
  const era = Math.floor(z / 146_097);
  const dayOfEra = z - era * 146_097;
  const yearOfEra = Math.floor((dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365);
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  return { year, month, day };
}

/** Proleptic Gregorian date → days since 1970-01-01 (Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

/**
 * ISO-8601 week index of a local epoch day: weeks start on Monday; 1970-01-01 was a Thursday, so Monday
 * 1969-12-29 is day −3 and starts week 0.
 */
export function isoWeekIndex(epochDay: number): number {
  return Math.floor((epochDay + 3) / 7);
}

/** ISO week-year and week number (1..53) of a week index, e.g. `{ weekYear: 2026, week: 48 }`. */
export function isoWeekOf(weekIndex: number): { weekYear: number; week: number } {
  const thursday = weekIndex * 7; // Monday (index*7 − 3) + 3: the Thursday decides the ISO year
  const weekYear = civilFromDays(thursday).year;
  const week = Math.floor((thursday - daysFromCivil(weekYear, 1, 1)) / 7) + 1;
  return { weekYear, week };
}

const pad = (value: number, width = 2): string => String(value).padStart(width, '0');

export function formatOffset(offsetMinutes: number): string {
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export function formatLocalDate(epochDay: number): string {
  const { year, month, day } = civilFromDays(epochDay);
  return `${pad(year, 4)}-${pad(month)}-${pad(day)}`;
}
