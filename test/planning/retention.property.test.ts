/**
 * Properties of planRetention over random snapshot sets, policies, zones, protected sets and pools.
 * Calendar tiers are checked against an independent oracle built on luxon (slow, obviously correct).
 */
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { describe, expect, it } from 'vitest';
import {
  CALENDAR_TIERS,
  planRetention,
  type CalendarTier,
  type RetentionInput,
  type RetentionPlan,
  type RetentionPolicy,
  type SnapshotInfo,
} from '../../planning/retention.ts';

const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe'] as const;
const HOUR = 3_600_000;
/** Instants near interesting boundaries: DST changes, month and year ends, a leap day. */
const ANCHORS = [
  '2026-03-29T01:00:00Z', // Berlin spring forward
  '2026-10-25T01:00:00Z', // Berlin fall back
  '2026-03-08T07:00:00Z', // New York spring forward
  '2026-11-01T06:00:00Z', // New York fall back
  '2026-04-04T15:00:00Z', // Lord Howe: 30-minute DST change
  '2026-12-31T23:00:00Z',
  '2028-02-29T12:00:00Z',
  '2026-01-31T23:30:00Z',
].map((s) => Date.parse(s));

/** Creation times around one anchor per case: dense near it (periods hold several snapshots), sparser further out. */
const instantNear = (anchor: number): fc.Arbitrary<number> =>
  fc.oneof(
    fc.integer({ min: -12, max: 12 }).map((q) => anchor + q * 15 * 60_000),
    fc.integer({ min: -3 * 24 * HOUR, max: 3 * 24 * HOUR }).map((d) => anchor + d),
    fc.integer({ min: -400 * 24 * HOUR, max: 400 * 24 * HOUR }).map((d) => anchor + d),
  );

const caseArb = fc.constantFrom(...ANCHORS).chain((anchor) =>
  fc.record({
    anchor: fc.constant(anchor),
    snapshots: fc
      .uniqueArray(fc.tuple(instantNear(anchor), fc.integer({ min: 0, max: 5_000_000 })), { maxLength: 120, selector: ([t]) => t })
      .map((items) => items.map(([createdAt, usedBytes], i): SnapshotInfo => ({ name: `snap-${i}`, createdAt, usedBytes }))),
  }),
);

const countArb = fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 12 }));
const policyArb: fc.Arbitrary<RetentionPolicy> = fc
  .record({
    keepLast: countArb,
    hourly: countArb,
    daily: countArb,
    weekly: countArb,
    monthly: countArb,
    yearly: countArb,
    timeZone: fc.constantFrom(...ZONES),
    maxSnapshots: fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 40 })),
    maxRolling: fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 100 }).map((capacityPercent) => ({ capacityPercent }))),
  })
  .map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as RetentionPolicy);

const inputArb: fc.Arbitrary<RetentionInput> = caseArb.chain(({ anchor, snapshots }) =>
  fc.record({
    snapshots: fc.constant(snapshots),
    policy: policyArb,
    // Mostly after the snapshots; sometimes before some of them (clock skew).
    now: fc.integer({ min: anchor - 24 * HOUR, max: anchor + 500 * 24 * HOUR }),
    protectedNames: fc.subarray(snapshots.map((s) => s.name), { maxLength: Math.min(5, snapshots.length) }),
    pool: fc
      .tuple(fc.integer({ min: 1, max: 1_000_000_000 }), fc.integer({ min: 0, max: 1_000_000_000 }))
      .map(([sizeBytes, allocatedBytes]) => ({ sizeBytes, allocatedBytes })),
  }),
);

const FLOOR_REASONS = new Set(['newest', 'protected', 'future', 'keepLast']);
const isFloor = (reasons: readonly string[]): boolean => reasons.some((r) => FLOOR_REASONS.has(r));
const tierOf = (reason: string): string => reason.split(' ')[0] ?? '';
const ms = (s: SnapshotInfo): number => (typeof s.createdAt === 'number' ? s.createdAt : s.createdAt.getTime());

/** Independent oracle: per tier, the newest snapshot of each of the N most recent periods (luxon calendar). */
function oracleTierKeepers(snapshots: readonly SnapshotInfo[], policy: RetentionPolicy): Map<CalendarTier, Set<string>> {
  const zone = policy.timeZone ?? 'UTC';
  const newestFirst = [...snapshots].sort((a, b) => ms(b) - ms(a) || (a.name < b.name ? 1 : -1));
  const result = new Map<CalendarTier, Set<string>>();
  for (const tier of CALENDAR_TIERS) {
    const limit = policy[tier] ?? 0;
    const newestPerPeriod = new Map<string, string>();
    for (const s of newestFirst) {
      const dt = DateTime.fromMillis(ms(s), { zone });
      const key = {
        hourly: `${dt.toFormat('yyyy-MM-dd HH')} ${dt.offset}`,
        daily: dt.toFormat('yyyy-MM-dd'),
        weekly: `${dt.weekYear}-${dt.weekNumber}`,
        monthly: dt.toFormat('yyyy-MM'),
        yearly: dt.toFormat('yyyy'),
      }[tier];
      if (!newestPerPeriod.has(key) && newestPerPeriod.size < limit) newestPerPeriod.set(key, s.name);
    }
    result.set(tier, new Set(newestPerPeriod.values()));
  }
  return result;
}

function withoutCaps(policy: RetentionPolicy): RetentionPolicy {
  const { maxSnapshots: _count, maxRolling: _rolling, ...rest } = policy;
  return rest;
}

function newestName(snapshots: readonly SnapshotInfo[]): string | undefined {
  return [...snapshots].sort((a, b) => ms(b) - ms(a) || (a.name < b.name ? 1 : -1))[0]?.name;
}

const RUNS = { numRuns: 400 };

describe('planRetention properties', () => {
  it('decides every snapshot exactly once; keep and destroy partition the input', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const plan = planRetention(input);
        expect(plan.decisions).toHaveLength(input.snapshots.length);
        expect(new Set([...plan.keep, ...plan.destroy])).toEqual(new Set(input.snapshots.map((s) => s.name)));
        expect(plan.keep.length + plan.destroy.length).toBe(input.snapshots.length);
        for (const d of plan.decisions) expect(d.reasons.length).toBeGreaterThan(0);
      }),
      RUNS,
    );
  });

  it('never destroys the newest or a protected snapshot', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const plan = planRetention(input);
        const destroyed = new Set(plan.destroy);
        const newest = newestName(input.snapshots);
        if (newest !== undefined) expect(destroyed.has(newest)).toBe(false);
        for (const name of input.protectedNames ?? []) expect(destroyed.has(name)).toBe(false);
      }),
      RUNS,
    );
  });

  it('is idempotent: planning the kept set again (same now, projected pool) destroys nothing', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const first = planRetention(input);
        const kept = new Set(first.keep);
        const second = planRetention({
          ...input,
          snapshots: input.snapshots.filter((s) => kept.has(s.name)),
          ...(input.pool && first.projectedAllocatedBytes !== undefined
            ? { pool: { sizeBytes: input.pool.sizeBytes, allocatedBytes: first.projectedAllocatedBytes } }
            : {}),
        });
        expect(second.destroy).toEqual([]);
      }),
      RUNS,
    );
  });

  it('keeps at most N snapshots per tier, one per period', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const plan = planRetention(input);
        for (const tier of CALENDAR_TIERS) {
          const labels = plan.decisions.flatMap((d) => d.reasons.filter((r) => tierOf(r) === tier));
          expect(labels.length).toBeLessThanOrEqual(input.policy[tier] ?? 0);
          expect(new Set(labels).size).toBe(labels.length);
        }
        expect(plan.decisions.filter((d) => d.reasons.includes('keepLast')).length).toBeLessThanOrEqual(input.policy.keepLast ?? 0);
      }),
      RUNS,
    );
  });

  it('calendar tiers match an independent luxon oracle in every zone (DST, month ends, leap days)', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const plan = planRetention({ ...input, policy: withoutCaps(input.policy) });
        const oracle = oracleTierKeepers(input.snapshots, input.policy);
        for (const tier of CALENDAR_TIERS) {
          const actual = new Set(plan.decisions.filter((d) => d.reasons.some((r) => tierOf(r) === tier)).map((d) => d.name));
          expect(actual, tier).toEqual(oracle.get(tier));
        }
      }),
      RUNS,
    );
  });

  it('respects maxSnapshots unless only the floor remains (then reports it)', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const plan = planRetention(input);
        const max = input.policy.maxSnapshots;
        if (max === undefined || plan.keep.length <= max) return;
        for (const d of plan.decisions.filter((x) => x.keep)) expect(isFloor(d.reasons)).toBe(true);
        expect(plan.unmetCaps.some((c) => c.startsWith('maxSnapshots'))).toBe(true);
      }),
      RUNS,
    );
  });

  it('maxRolling leaves the projected allocation below the threshold unless only the floor remains', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const plan = planRetention(input);
        const percent = input.policy.maxRolling?.capacityPercent;
        if (percent === undefined || input.pool === undefined) return;
        const projected = plan.projectedAllocatedBytes ?? 0;
        if ((projected / input.pool.sizeBytes) * 100 < percent) return;
        for (const d of plan.decisions.filter((x) => x.keep)) expect(isFloor(d.reasons)).toBe(true);
      }),
      RUNS,
    );
  });

  it('caps only thin what the uncapped plan keeps: densest tier first, oldest first, never the floor', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const capped = planRetention(input);
        const uncapped = planRetention({ ...input, policy: withoutCaps(input.policy) });
        const uncappedReasons = new Map(uncapped.decisions.map((d) => [d.name, d.reasons]));
        const cappedKeep = new Set(capped.keep);
        // Kept with caps ⊆ kept without caps; "expired" means the same in both.
        for (const name of capped.keep) expect(new Set(uncapped.keep).has(name)).toBe(true);
        const rank = (name: string): number =>
          Math.max(...(uncappedReasons.get(name) ?? []).map((r) => CALENDAR_TIERS.indexOf(tierOf(r) as CalendarTier)));
        const thinned = uncapped.decisions.filter((d) => d.keep && !cappedKeep.has(d.name));
        const survivors = uncapped.decisions.filter((d) => d.keep && cappedKeep.has(d.name) && !isFloor(d.reasons));
        for (const t of thinned) {
          expect(isFloor(t.reasons)).toBe(false);
          for (const s of survivors) {
            // Every survivor comes after every thinned one in thinning order (tier rank, then age).
            const order = rank(s.name) - rank(t.name) || s.createdAt - t.createdAt;
            expect(order).toBeGreaterThan(0);
          }
        }
      }),
      RUNS,
    );
  });

  it('does not depend on the order of the input', () => {
    fc.assert(
      fc.property(inputArb, fc.integer(), (input, seed) => {
        const shuffled = [...input.snapshots].sort((a, b) => ((a.name.length * 31 + seed) % 7) - ((b.name.length * 17 + seed) % 5));
        const a: RetentionPlan = planRetention(input);
        const b: RetentionPlan = planRetention({ ...input, snapshots: shuffled });
        expect(b).toEqual(a);
        // Already sorted input (either direction) takes a shortcut that must give the same plan.
        const ascending = [...input.snapshots].sort((x, y) => ms(x) - ms(y));
        expect(planRetention({ ...input, snapshots: ascending })).toEqual(a);
        expect(planRetention({ ...input, snapshots: [...ascending].reverse() })).toEqual(a);
      }),
      { numRuns: 100 },
    );
  });
});

describe('ordering of equal creation times', () => {
  // Few distinct times, so many snapshots share one; names decide among them.
  const tiedArb = fc
    .uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 60 })
    .chain((names) =>
      fc.tuple(
        fc.constant(names),
        fc.array(fc.integer({ min: 0, max: 5 }).map((h) => Date.parse('2026-11-26T00:00:00Z') + h * HOUR), {
          minLength: names.length,
          maxLength: names.length,
        }),
        policyArb,
      ),
    );

  it('orders ties by name whatever the input order, on the packed and the comparator path alike', () => {
    fc.assert(
      fc.property(tiedArb, ([names, times, policy]) => {
        const snapshots = names.map((name, i): SnapshotInfo => ({ name, createdAt: times[i] as number }));
        const now = Date.parse('2026-11-27T00:00:00Z');
        const plan = planRetention({ snapshots, policy: withoutCaps(policy), now });
        const reversed = planRetention({ snapshots: [...snapshots].reverse(), policy: withoutCaps(policy), now });
        // Half a millisecond later everywhere: same order, but fractional times take the comparator sort.
        const fractional = planRetention({
          snapshots: snapshots.map((s) => ({ ...s, createdAt: (s.createdAt as number) + 0.5 })),
          policy: withoutCaps(policy),
          now,
        });
        expect(reversed).toEqual(plan);
        expect(fractional.decisions.map((d) => [d.name, d.keep])).toEqual(plan.decisions.map((d) => [d.name, d.keep]));
        for (let i = 1; i < plan.decisions.length; i++) {
          const a = plan.decisions[i - 1] as RetentionPlan['decisions'][number];
          const b = plan.decisions[i] as RetentionPlan['decisions'][number];
          expect(a.createdAt > b.createdAt || (a.createdAt === b.createdAt && a.name > b.name)).toBe(true);
        }
      }),
      RUNS,
    );
  });
});
