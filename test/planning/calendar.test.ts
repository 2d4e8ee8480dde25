import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import { ZoneClock, civilFromDays, daysFromCivil, isoWeekIndex, isoWeekOf } from '../../planning/calendar.ts';

const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Santiago'] as const;
const MIN_MS = Date.UTC(1990, 0, 1);
const MAX_MS = Date.UTC(2060, 0, 1);

describe('civil calendar arithmetic', () => {
  it('agrees with Date for every day from 1900 to 2200', () => {
    fc.assert(
      fc.property(fc.integer({ min: daysFromCivil(1900, 1, 1), max: daysFromCivil(2200, 12, 31) }), (day) => {
        const date = new Date(day * 86_400_000);
        expect(civilFromDays(day)).toEqual({ year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() });
        expect(daysFromCivil(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate())).toBe(day);
      }),
      { numRuns: 2000 },
    );
  });

  it('knows leap days (2024, 2028, 2000) and non-leap centuries (2100)', () => {
    expect(civilFromDays(daysFromCivil(2028, 2, 29) + 1)).toEqual({ year: 2028, month: 3, day: 1 });
    expect(civilFromDays(daysFromCivil(2000, 2, 28) + 1)).toEqual({ year: 2000, month: 2, day: 29 });
    expect(civilFromDays(daysFromCivil(2100, 2, 28) + 1)).toEqual({ year: 2100, month: 3, day: 1 });
  });

  it('numbers ISO weeks like luxon (Monday first, the Thursday decides the year)', () => {
    fc.assert(
      fc.property(fc.integer({ min: daysFromCivil(1990, 1, 1), max: daysFromCivil(2100, 1, 1) }), (day) => {
        const luxon = DateTime.fromMillis(day * 86_400_000, { zone: 'UTC' });
        expect(isoWeekOf(isoWeekIndex(day))).toEqual({ weekYear: luxon.weekYear, week: luxon.weekNumber });
        // A week index changes exactly between Sunday and Monday.
        expect(isoWeekIndex(day + 1) !== isoWeekIndex(day)).toBe(luxon.plus({ days: 1 }).weekday === 1);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('ZoneClock', () => {
  it('returns the same offsets as luxon, whatever order instants are asked in', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ZONES),
        fc.array(fc.integer({ min: MIN_MS, max: MAX_MS }), { minLength: 1, maxLength: 60 }),
        (zone, instants) => {
          const clock = new ZoneClock(zone);
          for (const ms of instants) {
            expect(clock.offsetMinutes(ms)).toBe(DateTime.fromMillis(ms, { zone }).offset);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('switches offsets at the exact millisecond of a DST transition (Berlin, New York)', () => {
    const berlin = new ZoneClock('Europe/Berlin');
    const fallBack = Date.parse('2026-10-25T01:00:00Z'); // 03:00 CEST → 02:00 CET
    expect(berlin.offsetMinutes(fallBack - 1)).toBe(120);
    expect(berlin.offsetMinutes(fallBack)).toBe(60);
    const newYork = new ZoneClock('America/New_York');
    const springForward = Date.parse('2026-03-08T07:00:00Z'); // 02:00 EST → 03:00 EDT
    expect(newYork.offsetMinutes(springForward)).toBe(-240);
    expect(newYork.offsetMinutes(springForward - 1)).toBe(-300);
  });

  it('rejects unknown zones', () => {
    expect(() => new ZoneClock('Mars/Olympus_Mons')).toThrow(RangeError);
  });
});
