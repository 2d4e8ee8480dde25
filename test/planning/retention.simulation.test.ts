/**
 * The Dataset controller's loop, simulated: take a snapshot on schedule, plan, destroy what the plan says, repeat.
 * Checks the caps at every step and that pruning step by step ends where a single plan over all snapshots ends.
 */
import { describe, expect, it } from 'vitest';
import { planRetention, type RetentionPolicy, type SnapshotInfo } from '../../planning/retention.ts';

const MINUTE = 60_000;
const START = Date.parse('2026-10-19T00:00:00Z'); // a Monday; the week contains the Berlin fall-back night

interface Step {
  readonly now: number;
  readonly kept: readonly SnapshotInfo[];
  readonly destroyed: readonly string[];
  readonly unmetCaps: readonly string[];
}

function simulate(
  policy: RetentionPolicy,
  steps: number,
  everyMs: number,
  options: { protectedName?: string; usedBytes?: number; poolSize?: number; baseAllocated?: number } = {},
  onStep: (step: Step) => void = () => {},
): SnapshotInfo[] {
  let kept: SnapshotInfo[] = [];
  for (let i = 0; i < steps; i++) {
    const now = START + i * everyMs;
    kept.push({ name: `bdr-${String(i).padStart(5, '0')}`, createdAt: now, usedBytes: options.usedBytes ?? 0 });
    const allocated = (options.baseAllocated ?? 0) + kept.reduce((sum, s) => sum + (s.usedBytes ?? 0), 0);
    const plan = planRetention({
      snapshots: kept,
      policy,
      now,
      protectedNames: options.protectedName !== undefined ? [options.protectedName] : [],
      ...(options.poolSize !== undefined ? { pool: { sizeBytes: options.poolSize, allocatedBytes: allocated } } : {}),
    });
    const destroyed = new Set(plan.destroy);
    kept = kept.filter((s) => !destroyed.has(s.name));
    onStep({ now, kept, destroyed: plan.destroy, unmetCaps: plan.unmetCaps });
  }
  return kept;
}

describe('a simulated week of 5-minute snapshots', () => {
  const STEPS = 7 * 24 * 12;

  it('maxSnapshots holds after every run, the newest and the held base always survive', () => {
    const policy: RetentionPolicy = { keepLast: 12, hourly: 24, daily: 7, timeZone: 'Europe/Berlin', maxSnapshots: 40 };
    const base = 'bdr-00100';
    let steps = 0;
    simulate(policy, STEPS, 5 * MINUTE, { protectedName: base }, (step) => {
      steps += 1;
      expect(step.kept.length).toBeLessThanOrEqual(40);
      expect(step.unmetCaps).toEqual([]);
      expect(step.kept.at(-1)?.createdAt).toBe(step.now);
      if (step.now >= START + 100 * 5 * MINUTE) expect(step.kept.some((s) => s.name === base)).toBe(true);
    });
    expect(steps).toBe(STEPS);
  });

  it('without caps, pruning after every snapshot ends with exactly the set one plan over all snapshots keeps', () => {
    const policy: RetentionPolicy = { keepLast: 6, hourly: 24, daily: 7, weekly: 2, timeZone: 'Europe/Berlin' };
    const final = simulate(policy, STEPS, 5 * MINUTE);
    const all: SnapshotInfo[] = Array.from({ length: STEPS }, (_, i) => ({ name: `bdr-${String(i).padStart(5, '0')}`, createdAt: START + i * 5 * MINUTE }));
    const oneShot = planRetention({ snapshots: all, policy, now: START + (STEPS - 1) * 5 * MINUTE });
    expect(final.map((s) => s.name).sort()).toEqual([...oneShot.keep].sort());
    // By hand, in Berlin time: the last snapshot (25 Oct 23:55Z) is Monday 26 Oct 00:55 CET. keepLast = Monday
    // 00:30…00:55 (6; 00:55 is also hourly Mon 00, daily 26 Oct and weekly W44). Hourly: 23 more, Sunday 01…23
    // (the 25-hour Sunday). Daily: Sunday's keeper (23:55) is already hourly, so 5 more, Tuesday … Saturday.
    // Weekly W43's keeper is that same Sunday 23:55. Total 6 + 23 + 5.
    expect(final).toHaveLength(6 + 23 + 5);
  });

  it('maxRolling keeps the pool below the threshold once expiry alone no longer does, never touching the floor', () => {
    // Each snapshot holds 1 MB of its own; 600 MB of live data on a 700 MB pool; thin at 95 %.
    const MB = 1_000_000;
    const policy: RetentionPolicy = { keepLast: 6, hourly: 48, daily: 7, maxRolling: { capacityPercent: 95 } };
    simulate(policy, STEPS, 5 * MINUTE, { usedBytes: MB, poolSize: 700 * MB, baseAllocated: 600 * MB }, (step) => {
      const allocated = 600 * MB + step.kept.length * MB;
      // 95 % of 700 MB = 665 MB: at most 64 snapshots fit below it.
      expect(allocated / (700 * MB)).toBeLessThan(0.95);
      expect(step.kept.length).toBeGreaterThanOrEqual(Math.min(6, (step.now - START) / (5 * MINUTE) + 1));
    });
  });
});
