/**
 * Example-based retention tests. Every expected set is written out by hand from the documented semantics
 * (planning/RETENTION.md), never computed by the function under test.
 */
import { describe, expect, it } from 'vitest';
import { planRetention, validateRetentionPolicy, type RetentionPlan, type SnapshotInfo } from '../../planning/retention.ts';

const HOUR = 3_600_000;
const at = (iso: string): number => Date.parse(iso);
/** Names snapshots after their UTC creation time, e.g. `2026-11-25T23:00`. */
const named = (ms: number, usedBytes?: number): SnapshotInfo => ({
  name: new Date(ms).toISOString().slice(0, 16),
  createdAt: ms,
  ...(usedBytes !== undefined ? { usedBytes } : {}),
});
const series = (fromIso: string, count: number, stepMs: number, usedBytes?: number): SnapshotInfo[] =>
  Array.from({ length: count }, (_, i) => named(at(fromIso) + i * stepMs, usedBytes));
const reasonsOf = (plan: RetentionPlan, name: string): readonly string[] =>
  plan.decisions.find((d) => d.name === name)?.reasons ?? ['<missing>'];

describe('72 hours of hourly snapshots', () => {
  // 2026-11-23T00:00Z … 2026-11-25T23:00Z, one per hour.
  const snapshots = series('2026-11-23T00:00:00Z', 72, HOUR);
  const now = at('2026-11-26T00:10:00Z');

  it('keepLast 3, hourly 24, daily 7 keeps the last 24 hours plus the last snapshot of each earlier day', () => {
    const plan = planRetention({ snapshots, policy: { keepLast: 3, hourly: 24, daily: 7 }, now });
    const lastDay = Array.from({ length: 24 }, (_, h) => `2026-11-25T${String(h).padStart(2, '0')}:00`);
    const expected = ['2026-11-23T23:00', '2026-11-24T23:00', ...lastDay];
    expect([...plan.keep].sort()).toEqual(expected.sort());
    expect(plan.destroy).toHaveLength(72 - 26);
    expect(reasonsOf(plan, '2026-11-25T23:00')).toEqual(['newest', 'keepLast', 'hourly 2026-11-25T23', 'daily 2026-11-25']);
    expect(reasonsOf(plan, '2026-11-25T21:00')).toEqual(['keepLast', 'hourly 2026-11-25T21']);
    expect(reasonsOf(plan, '2026-11-25T00:00')).toEqual(['hourly 2026-11-25T00']);
    expect(reasonsOf(plan, '2026-11-24T23:00')).toEqual(['daily 2026-11-24']);
    expect(reasonsOf(plan, '2026-11-24T22:00')).toEqual(['expired']);
    expect(plan.unmetCaps).toEqual([]);
  });

  it('hourly 36 reaches back into the previous day; weekly keeps the newest of ISO week 48 only', () => {
    const plan = planRetention({ snapshots, policy: { hourly: 36, weekly: 4 }, now });
    // 36 newest hours: 2026-11-24T12:00 … 2026-11-25T23:00. All 72 lie in ISO week 2026-W48 (Mon 23 Nov).
    const expected = Array.from({ length: 36 }, (_, i) => new Date(at('2026-11-24T12:00:00Z') + i * HOUR).toISOString().slice(0, 16));
    expect([...plan.keep].sort()).toEqual(expected);
    expect(reasonsOf(plan, '2026-11-25T23:00')).toContain('weekly 2026-W48');
  });

  it('a protected base older than the policy survives, with its reason', () => {
    const plan = planRetention({ snapshots, policy: { keepLast: 1 }, now, protectedNames: new Set(['2026-11-23T05:00']) });
    expect([...plan.keep].sort()).toEqual(['2026-11-23T05:00', '2026-11-25T23:00']);
    expect(reasonsOf(plan, '2026-11-23T05:00')).toEqual(['protected']);
  });

  it('an empty policy keeps only the newest', () => {
    const plan = planRetention({ snapshots, policy: {}, now });
    expect(plan.keep).toEqual(['2026-11-25T23:00']);
  });
});

describe('calendar boundaries in the policy time zone', () => {
  it('Berlin fall back: the repeated hour 02:00 is two hourly periods, and the 25-hour day is one daily period', () => {
    // 2026-10-25: 03:00 CEST → 02:00 CET at 01:00Z. Hourly snapshots 22:00Z on the 24th … 04:00Z on the 25th.
    const snapshots = series('2026-10-24T22:00:00Z', 7, HOUR);
    const plan = planRetention({ snapshots, policy: { hourly: 4, daily: 2, timeZone: 'Europe/Berlin' }, now: at('2026-10-25T05:00:00Z') });
    expect(reasonsOf(plan, '2026-10-25T04:00')).toEqual(['newest', 'hourly 2026-10-25T05+01:00', 'daily 2026-10-25']);
    expect(reasonsOf(plan, '2026-10-25T02:00')).toEqual(['hourly 2026-10-25T03+01:00']);
    expect(reasonsOf(plan, '2026-10-25T01:00')).toEqual(['hourly 2026-10-25T02+01:00']);
    expect(reasonsOf(plan, '2026-10-25T00:00')).toEqual(['expired']); // 02:00 CEST: the fifth hourly period
    // 22:00Z on the 24th is 00:00 CEST on the 25th (same local day); 23:00Z likewise: the 24th has no snapshot.
    expect(reasonsOf(plan, '2026-10-24T22:00')).toEqual(['expired']);
    expect(plan.keep).toHaveLength(4);
  });

  it('New York spring forward: the 23-hour day is one daily period; hour 02 does not exist', () => {
    // 2026-03-08: 02:00 EST → 03:00 EDT at 07:00Z. Snapshots 05:00Z … 09:00Z = 00:00 EST … 05:00 EDT.
    const snapshots = series('2026-03-08T05:00:00Z', 5, HOUR);
    const plan = planRetention({ snapshots, policy: { hourly: 10, daily: 10, timeZone: 'America/New_York' }, now: at('2026-03-08T10:00:00Z') });
    expect(plan.decisions.map((d) => d.reasons.find((r) => r.startsWith('hourly')))).toEqual([
      'hourly 2026-03-08T05-04:00',
      'hourly 2026-03-08T04-04:00',
      'hourly 2026-03-08T03-04:00',
      'hourly 2026-03-08T01-05:00',
      'hourly 2026-03-08T00-05:00',
    ]);
    expect(plan.decisions.filter((d) => d.reasons.some((r) => r.startsWith('daily')))).toHaveLength(1);
  });

  it('month end: 31 Jan 23:30 UTC is already February in Berlin', () => {
    const snapshots = [named(at('2026-01-31T22:30:00Z')), named(at('2026-01-31T23:30:00Z'))];
    const now = at('2026-02-01T12:00:00Z');
    const berlin = planRetention({ snapshots, policy: { monthly: 12, timeZone: 'Europe/Berlin' }, now });
    expect(reasonsOf(berlin, '2026-01-31T22:30')).toEqual(['monthly 2026-01']);
    expect(reasonsOf(berlin, '2026-01-31T23:30')).toEqual(['newest', 'monthly 2026-02']);
    const utc = planRetention({ snapshots, policy: { monthly: 12 }, now });
    expect(reasonsOf(utc, '2026-01-31T22:30')).toEqual(['expired']);
  });

  it('leap day: 29 Feb 2028 is a daily period of February, and February is one monthly period', () => {
    const snapshots = series('2028-02-28T12:00:00Z', 3, 24 * HOUR); // 28 Feb, 29 Feb, 1 Mar
    const plan = planRetention({ snapshots, policy: { daily: 3, monthly: 2, yearly: 1 }, now: at('2028-03-02T00:00:00Z') });
    expect(reasonsOf(plan, '2028-03-01T12:00')).toEqual(['newest', 'daily 2028-03-01', 'monthly 2028-03', 'yearly 2028']);
    expect(reasonsOf(plan, '2028-02-29T12:00')).toEqual(['daily 2028-02-29', 'monthly 2028-02']);
    expect(reasonsOf(plan, '2028-02-28T12:00')).toEqual(['daily 2028-02-28']);
  });

  it('ISO weeks start on Monday and belong to the year of their Thursday', () => {
    // Thu 31 Dec 2026 and Sun 3 Jan 2027 are both in 2026-W53; Mon 4 Jan 2027 starts 2027-W01.
    const snapshots = [named(at('2026-12-31T12:00:00Z')), named(at('2027-01-03T12:00:00Z')), named(at('2027-01-04T12:00:00Z'))];
    const plan = planRetention({ snapshots, policy: { weekly: 5 }, now: at('2027-01-05T00:00:00Z') });
    expect(reasonsOf(plan, '2027-01-04T12:00')).toEqual(['newest', 'weekly 2027-W01']);
    expect(reasonsOf(plan, '2027-01-03T12:00')).toEqual(['weekly 2026-W53']);
    expect(reasonsOf(plan, '2026-12-31T12:00')).toEqual(['expired']);
  });

  it('periods without snapshots are skipped: daily 3 after a 10-day outage still keeps 3 restore points', () => {
    const snapshots = [...series('2026-11-01T12:00:00Z', 3, 24 * HOUR), named(at('2026-11-14T12:00:00Z'))];
    const plan = planRetention({ snapshots, policy: { daily: 3 }, now: at('2026-11-14T13:00:00Z') });
    expect([...plan.keep].sort()).toEqual(['2026-11-02T12:00', '2026-11-03T12:00', '2026-11-14T12:00']);
  });
});

describe('caps', () => {
  it('maxSnapshots during a week of 5-minute snapshots thins the oldest hourly-only restore points', () => {
    // Mon 2026-11-16T00:00Z … Sun 2026-11-22T23:55Z, every 5 minutes (2016 snapshots).
    const snapshots = series('2026-11-16T00:00:00Z', 7 * 24 * 12, 5 * 60_000);
    const policy = { keepLast: 12, hourly: 48, daily: 7, maxSnapshots: 50 };
    const plan = planRetention({ snapshots, policy, now: at('2026-11-23T00:00:00Z') });
    // Before the cap: keepLast = 22T23:00…23:55 (12); hourly = the :55 of each hour of the 21st and 22nd (48,
    // one of them is also keepLast); daily = 23:55 of the 16th…22nd (7; 21st and 22nd also hourly) → 12 + 47 + 5 = 64.
    // 14 too many: the 14 oldest hourly-only ones go, 21T00:55 … 21T13:55.
    const thinned = Array.from({ length: 14 }, (_, h) => `2026-11-21T${String(h).padStart(2, '0')}:55`);
    const destroyedByCap = plan.decisions.filter((d) => !d.keep && d.reasons[0]?.startsWith('maxSnapshots'));
    expect(destroyedByCap.map((d) => d.name).sort()).toEqual(thinned);
    expect(plan.keep).toHaveLength(50);
    expect(reasonsOf(plan, '2026-11-21T00:55')).toEqual(['maxSnapshots: 64 > 50']);
    expect(reasonsOf(plan, '2026-11-21T13:55')).toEqual(['maxSnapshots: 51 > 50']);
    expect(reasonsOf(plan, '2026-11-21T14:55')).toEqual(['hourly 2026-11-21T14']);
    expect(reasonsOf(plan, '2026-11-16T23:55')).toEqual(['daily 2026-11-16']);
    expect(plan.unmetCaps).toEqual([]);
  });

  it('maxSnapshots below the floor is reported, never forced', () => {
    const snapshots = series('2026-11-25T00:00:00Z', 10, HOUR);
    const plan = planRetention({
      snapshots,
      policy: { keepLast: 4, hourly: 10, maxSnapshots: 2 },
      now: at('2026-11-26T00:00:00Z'),
      protectedNames: ['2026-11-25T00:00'],
    });
    // Floor: keepLast 4 (06:00–09:00, 09:00 also newest) + the protected 00:00 = 5; hourly-only 01:00–05:00 are thinned.
    expect([...plan.keep].sort()).toEqual(['2026-11-25T00:00', '2026-11-25T06:00', '2026-11-25T07:00', '2026-11-25T08:00', '2026-11-25T09:00']);
    expect(plan.unmetCaps).toEqual(['maxSnapshots: 5 > 2, but all remaining snapshots are the floor (newest, keepLast, protected)']);
  });

  it('maxRolling: expired snapshots count first, then hourly-only before daily-kept, oldest first', () => {
    // 48 hourly snapshots, 1 GB each, on a 100 GB pool that is 93 GB full; threshold 90 %.
    const GB = 1_000_000_000;
    const snapshots = series('2026-11-24T00:00:00Z', 48, HOUR, GB);
    const plan = planRetention({
      snapshots,
      policy: { hourly: 30, daily: 2, maxRolling: { capacityPercent: 90 } },
      now: at('2026-11-26T00:00:00Z'),
      pool: { sizeBytes: 100 * GB, allocatedBytes: 93 * GB },
    });
    // Kept before the cap: hourly 24T18:00 … 25T23:00 (30) + daily 24T23:00 (already hourly) → 30 kept, 18 expired.
    // Expiry frees 18 GB → 75 %: below 90 %, so nothing is thinned.
    expect(plan.keep).toHaveLength(30);
    expect(plan.projectedAllocatedBytes).toBe(75 * GB);

    const full = planRetention({
      snapshots,
      policy: { hourly: 30, daily: 2, maxRolling: { capacityPercent: 90 } },
      now: at('2026-11-26T00:00:00Z'),
      pool: { sizeBytes: 100 * GB, allocatedBytes: 111 * GB },
    });
    // 111 − 18 = 93 GB → 93 %, 92 %, 91 %, 90 %: four thinned (the oldest hourly-only: 24T18:00 … 24T21:00;
    // 24T23:00 is also daily and comes last), leaving 89 %.
    expect(full.decisions.filter((d) => d.reasons[0]?.startsWith('maxRolling')).map((d) => d.name).sort()).toEqual([
      '2026-11-24T18:00',
      '2026-11-24T19:00',
      '2026-11-24T20:00',
      '2026-11-24T21:00',
    ]);
    expect(reasonsOf(full, '2026-11-24T18:00')).toEqual(['maxRolling: pool at 93% ≥ 90%']);
    expect(reasonsOf(full, '2026-11-24T21:00')).toEqual(['maxRolling: pool at 90% ≥ 90%']);
    expect(full.projectedAllocatedBytes).toBe(89 * GB);
  });

  it('maxRolling without pool capacity is reported as not evaluated', () => {
    const plan = planRetention({ snapshots: series('2026-11-25T00:00:00Z', 3, HOUR), policy: { keepLast: 1, maxRolling: { capacityPercent: 80 } }, now: at('2026-11-26T00:00:00Z') });
    expect(plan.unmetCaps).toEqual(['maxRolling: pool capacity unknown, not evaluated']);
  });
});

describe('input handling', () => {
  it('accepts Date creation times and any input order; equal times are ordered by name', () => {
    const t = at('2026-11-25T10:00:00Z');
    const plan = planRetention({
      snapshots: [{ name: 'b', createdAt: new Date(t) }, { name: 'c', createdAt: t - HOUR }, { name: 'a', createdAt: t }],
      policy: { keepLast: 1 },
      now: new Date(t + HOUR),
    });
    expect(plan.decisions.map((d) => d.name)).toEqual(['b', 'a', 'c']);
    expect(plan.keep).toEqual(['b']);
  });

  it('keeps snapshots from the future (clock skew) with a reason', () => {
    const plan = planRetention({ snapshots: series('2026-11-25T00:00:00Z', 3, HOUR), policy: {}, now: at('2026-11-25T00:30:00Z') });
    expect(reasonsOf(plan, '2026-11-25T01:00')).toEqual(['future']);
    expect(reasonsOf(plan, '2026-11-25T02:00')).toEqual(['newest', 'future']);
    expect(reasonsOf(plan, '2026-11-25T00:00')).toEqual(['expired']);
  });

  it('validates policies and refuses to plan with an invalid one', () => {
    expect(validateRetentionPolicy({ hourly: 24, timeZone: 'Europe/Berlin', maxRolling: { capacityPercent: 90 } })).toEqual([]);
    expect(validateRetentionPolicy({ hourly: -1, daily: 1.5, maxSnapshots: 0, maxRolling: { capacityPercent: 0 }, timeZone: 'Nowhere' })).toHaveLength(5);
    expect(() => planRetention({ snapshots: [], policy: { hourly: -1 }, now: 0 })).toThrow(RangeError);
  });

  it('plans nothing for no snapshots', () => {
    expect(planRetention({ snapshots: [], policy: { keepLast: 3 }, now: 0 })).toEqual({ decisions: [], keep: [], destroy: [], unmetCaps: [] });
  });
});
