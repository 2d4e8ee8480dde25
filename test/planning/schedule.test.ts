import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../planning/duration.ts';
import {
  describeSchedule,
  isDue,
  missedRuns,
  nextDue,
  nextScheduledAfter,
  parseSchedule,
  validateScheduleSpec,
  type Schedule,
  type ScheduleSpec,
} from '../../planning/schedule.ts';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();

function schedule(spec: ScheduleSpec): Schedule {
  const parsed = parseSchedule(spec);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.value;
}

describe('parseDuration', () => {
  it('reads Go-style durations in all units', () => {
    expect(parseDuration('15m')).toEqual({ ok: true, value: 15 * 60_000 });
    expect(parseDuration('1h30m')).toEqual({ ok: true, value: 90 * 60_000 });
    expect(parseDuration('1.5h')).toEqual({ ok: true, value: 90 * 60_000 });
    expect(parseDuration('250ms')).toEqual({ ok: true, value: 250 });
    expect(parseDuration('1d')).toEqual({ ok: true, value: 86_400_000 });
    expect(parseDuration('2w1d')).toEqual({ ok: true, value: 15 * 86_400_000 });
    expect(parseDuration('0')).toEqual({ ok: true, value: 0 });
  });

  it('explains what is wrong instead of throwing', () => {
    for (const bad of ['', '15', 'm', '15x', '1h 30m', '-5m', '1y', 'h1']) {
      const parsed = parseDuration(bad);
      expect(parsed.ok, bad).toBe(false);
      if (!parsed.ok) expect(parsed.problem).toMatch(/duration/);
    }
  });

  it('round-trips through formatDuration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 365 * 86_400_000 }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toEqual({ ok: true, value: ms });
      }),
    );
  });
});

describe('parseSchedule', () => {
  it('accepts intervals, 5-field cron, macros and IANA zones', () => {
    expect(schedule({ interval: '15m' })).toEqual({ kind: 'interval', intervalMs: 900_000, text: '15m' });
    expect(schedule({ cron: '0  2 * * *' })).toEqual({ kind: 'cron', expression: '0 2 * * *', timeZone: 'UTC' });
    for (const macro of ['@hourly', '@daily', '@weekly', '@monthly', '@yearly']) {
      expect(schedule({ cron: macro, timeZone: 'America/New_York' }).kind).toBe('cron');
    }
  });

  it.each([
    [{}, 'interval', /exactly one/],
    [{ interval: '15m', cron: '* * * * *' }, 'interval', /exactly one/],
    [{ interval: '0s' }, 'interval', /minimum/],
    [{ interval: 'soon' }, 'interval', /invalid/],
    [{ interval: '1h', timeZone: 'Europe/Berlin' }, 'timeZone', /cron schedules only/],
    [{ cron: '0 * * * * *' }, 'cron', /5 fields/],
    [{ cron: '0 * *' }, 'cron', /5 fields/],
    [{ cron: '61 * * * *' }, 'cron', /range/],
    [{ cron: '0 0 30 2 *' }, 'cron', /day of month/],
    [{ cron: '@sometimes' }, 'cron', /unknown macro/],
    [{ cron: '0 * * * *', timeZone: 'Mars/Olympus' }, 'timeZone', /IANA/],
  ] as const)('rejects %j with a message on field %s', (spec, field, message) => {
    const parsed = parseSchedule(spec);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toMatch(message);
    const validated = validateScheduleSpec(spec);
    expect(validated).toMatchObject({ ok: false, field });
  });

  it('describes schedules for status and bdr plan', () => {
    expect(describeSchedule(schedule({ interval: '90m' }))).toBe('every 1h30m (epoch-aligned, UTC)');
    expect(describeSchedule(schedule({ cron: '0 2 * * *', timeZone: 'Europe/Berlin' }))).toBe('cron "0 2 * * *" (Europe/Berlin)');
  });

  it('rejects non-objects', () => {
    for (const bad of [null, 'hourly', 5, []]) expect(parseSchedule(bad).ok).toBe(false);
  });
});

describe('interval schedules are aligned to the epoch', () => {
  it('never drift: the next instant is the next multiple of the interval after the last run', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 * 24 * 60 }).map((minutes) => minutes * 60_000),
        fc.integer({ min: at('2020-01-01T00:00:00Z'), max: at('2040-01-01T00:00:00Z') }),
        (intervalMs, lastRun) => {
          const s: Schedule = { kind: 'interval', intervalMs, text: formatDuration(intervalMs) };
          const next = nextDue(s, lastRun, lastRun);
          expect(next % intervalMs).toBe(0);
          expect(next).toBeGreaterThan(lastRun);
          expect(next - lastRun).toBeLessThanOrEqual(intervalMs);
        },
      ),
    );
  });

  it('a run at 10:07 with a 15m interval is next due at 10:15, not 10:22', () => {
    const s = schedule({ interval: '15m' });
    expect(iso(nextDue(s, at('2026-11-26T10:07:00Z'), at('2026-11-26T10:08:00Z')))).toBe('2026-11-26T10:15:00.000Z');
    expect(isDue(s, at('2026-11-26T10:07:00Z'), at('2026-11-26T10:14:59Z'))).toBe(false);
    expect(isDue(s, at('2026-11-26T10:07:00Z'), at('2026-11-26T10:15:00Z'))).toBe(true);
  });

  it('a job that never ran is due immediately and has missed nothing', () => {
    const s = schedule({ interval: '1h' });
    const now = at('2026-11-26T10:07:00Z');
    expect(nextDue(s, undefined, now)).toBe(now);
    expect(isDue(s, undefined, now)).toBe(true);
    expect(missedRuns(s, undefined, now)).toBe(0);
  });

  it('counts missed runs like an enumeration of the scheduled instants (VolSync semantics)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 240 }).map((minutes) => minutes * 60_000),
        fc.integer({ min: at('2026-01-01T00:00:00Z'), max: at('2026-02-01T00:00:00Z') }),
        fc.integer({ min: 0, max: 3 * 86_400_000 }),
        (intervalMs, lastRun, elapsed) => {
          const s: Schedule = { kind: 'interval', intervalMs, text: formatDuration(intervalMs) };
          const now = lastRun + elapsed;
          // Enumerate the instants in (lastRun, now]; all but the last one were missed.
          let instants = 0;
          for (let t = nextScheduledAfter(s, lastRun); t <= now; t += intervalMs) instants += 1;
          expect(missedRuns(s, lastRun, now)).toBe(Math.max(0, instants - 1));
        },
      ),
    );
  });
});

describe('cron schedules', () => {
  it('fires in the given time zone', () => {
    const s = schedule({ cron: '0 2 * * *', timeZone: 'America/New_York' });
    // 02:00 EST = 07:00Z in winter.
    expect(iso(nextScheduledAfter(s, at('2026-11-26T00:00:00Z')))).toBe('2026-11-26T07:00:00.000Z');
  });

  it('Berlin spring forward: 02:30 does not exist on 2026-03-29 and fires at 03:30 CEST instead', () => {
    const s = schedule({ cron: '30 2 * * *', timeZone: 'Europe/Berlin' });
    expect(iso(nextScheduledAfter(s, at('2026-03-28T12:00:00Z')))).toBe('2026-03-29T01:30:00.000Z');
    expect(iso(nextScheduledAfter(s, at('2026-03-29T12:00:00Z')))).toBe('2026-03-30T00:30:00.000Z');
  });

  it('Berlin fall back: 02:30 occurs twice on 2026-10-25 and fires once, at the first occurrence', () => {
    const s = schedule({ cron: '30 2 * * *', timeZone: 'Europe/Berlin' });
    const first = nextScheduledAfter(s, at('2026-10-24T12:00:00Z'));
    expect(iso(first)).toBe('2026-10-25T00:30:00.000Z'); // 02:30 CEST
    expect(iso(nextScheduledAfter(s, first))).toBe('2026-10-26T01:30:00.000Z'); // next day, 02:30 CET
  });

  it('hourly cron fires once per elapsed hour through New York DST changes', () => {
    const s = schedule({ cron: '0 * * * *', timeZone: 'America/New_York' });
    for (const [from, hours] of [
      ['2026-03-08T04:00:00Z', 6], // spring forward at 07:00Z
      ['2026-11-01T04:00:00Z', 6], // fall back at 06:00Z
    ] as const) {
      let t = at(from);
      for (let i = 0; i < hours; i++) {
        const next = nextScheduledAfter(s, t);
        expect(next - t).toBe(3_600_000);
        t = next;
      }
    }
  });

  it('@monthly on the 1st, and a leap-day cron fires only in leap years', () => {
    expect(iso(nextScheduledAfter(schedule({ cron: '@monthly' }), at('2026-01-31T23:59:00Z')))).toBe('2026-02-01T00:00:00.000Z');
    expect(iso(nextScheduledAfter(schedule({ cron: '0 0 29 2 *' }), at('2026-03-01T00:00:00Z')))).toBe('2028-02-29T00:00:00.000Z');
  });

  it('is strictly after a last run with sub-second precision', () => {
    const s = schedule({ cron: '0 * * * *' });
    expect(iso(nextDue(s, at('2026-11-26T10:00:00.500Z'), at('2026-11-26T10:00:01Z')))).toBe('2026-11-26T11:00:00.000Z');
  });

  it('counts missed cron runs and saturates at the limit', () => {
    const s = schedule({ cron: '0 * * * *' });
    const lastRun = at('2026-11-26T00:30:00Z');
    // Instants 01:00 … 05:00 are in (lastRun, now]; 01:00 … 04:00 were missed, 05:00 is due.
    expect(missedRuns(s, lastRun, at('2026-11-26T05:00:00Z'))).toBe(4);
    expect(missedRuns(s, lastRun, at('2026-11-26T00:59:59Z'))).toBe(0);
    expect(missedRuns(s, lastRun, at('2026-11-26T01:00:00Z'))).toBe(0);
    expect(missedRuns(s, lastRun, at('2027-11-26T00:00:00Z'), 100)).toBe(100);
  });

  it('agrees with the interval schedule for an hourly cron in UTC', () => {
    const cron = schedule({ cron: '@hourly' });
    const interval = schedule({ interval: '1h' });
    fc.assert(
      fc.property(
        fc.integer({ min: at('2026-01-01T00:00:00Z'), max: at('2027-01-01T00:00:00Z') }),
        fc.integer({ min: 0, max: 50 * 3_600_000 }),
        (lastRun, elapsed) => {
          expect(nextDue(cron, lastRun, lastRun + elapsed)).toBe(nextDue(interval, lastRun, lastRun + elapsed));
          expect(missedRuns(cron, lastRun, lastRun + elapsed)).toBe(missedRuns(interval, lastRun, lastRun + elapsed));
        },
      ),
      { numRuns: 200 },
    );
  });
});
