/**
 * The Dataset and Vector controllers' loops, simulated hour by hour: an hourly restore point on the source,
 * local retention pruning it (planning/retention.ts, held bases protected), and, when the vector's schedule is
 * due, a replication plan carried out the way ZFS would (a receive needs the target's newest snapshot to be the
 * step's base, no -F), holds applied, target prunes applied. Expected end states are worked out by hand.
 */
import { describe, expect, it } from 'vitest';
import { planReplication, type ReplicaSnapshot, type SendStep } from '../../planning/replication.ts';
import { planRetention, type RetentionPolicy } from '../../planning/retention.ts';
import { isDue, parseSchedule, type Schedule } from '../../planning/schedule.ts';

const HOUR = 3_600_000;
const START = Date.parse('2026-11-23T00:00:00Z');
const TAG = 'bdr:web';
const CAPS = { sendCompressed: false, sendRaw: false, sendLargeBlocks: false, resumeTokens: false }; // zfs-fuse

interface Snap {
  name: string;
  guid: string;
  createdAt: number;
  createTxg: number;
  held: Set<string>;
}

const short = (t: number): string => `bdr-${new Date(t).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
const at = (day: number, hour: number): number => START + (day * 24 + hour) * HOUR;

function schedule(spec: unknown): Schedule {
  const parsed = parseSchedule(spec);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.value;
}

interface Outcome {
  source: Snap[];
  target: Snap[];
  steps: SendStep[];
  stepsPerSync: number[];
  maxSourceCount: number;
}

function simulate(options: { hours: number; local: RetentionPolicy; remote: RetentionPolicy; vector: Schedule; unreachable?: (now: number) => boolean }): Outcome {
  const source: Snap[] = [];
  let target: Snap[] | undefined; // undefined: the replica does not exist yet
  let lastSync: number | undefined;
  let txg = 100;
  let targetTxg = 9000;
  const steps: SendStep[] = [];
  const stepsPerSync: number[] = [];
  let maxSourceCount = 0;
  const view = (s: Snap): ReplicaSnapshot => ({ name: s.name, guid: s.guid, createdAt: s.createdAt, createTxg: s.createTxg, held: [...s.held] });

  for (let h = 0; h < options.hours; h++) {
    const now = START + h * HOUR;
    source.push({ name: `tank/web@${short(now)}`, guid: `g${txg}`, createdAt: now, createTxg: txg++, held: new Set() });
    // Local retention, as the Dataset controller runs it: held snapshots are protected.
    const local = planRetention({ snapshots: source, policy: options.local, now, protectedNames: source.filter((s) => s.held.size > 0).map((s) => s.name) });
    const destroy = new Set(local.destroy);
    for (const s of source) if (destroy.has(s.name)) expect(s.held.size).toBe(0);
    source.splice(0, source.length, ...source.filter((s) => !destroy.has(s.name)));
    maxSourceCount = Math.max(maxSourceCount, source.length);

    if (!isDue(options.vector, lastSync, now) || options.unreachable?.(now)) continue;
    const plan = planReplication({
      now,
      source: { dataset: 'tank/web', snapshots: source.map(view) },
      target: { dataset: 'backup/web', exists: target !== undefined, snapshots: (target ?? []).map(view), writtenSinceNewest: 0 },
      remotePolicy: options.remote,
      capabilities: { source: CAPS, target: CAPS },
      holdTag: TAG,
    });
    if (plan.kind !== 'send' && plan.kind !== 'upToDate') throw new Error(`unexpected plan ${JSON.stringify(plan)}`);
    const planSteps = plan.kind === 'send' ? plan.steps : [];
    const sideOf = (side: 'source' | 'target'): Snap[] => (side === 'source' ? source : (target ?? []));
    const applyHolds = (afterStep: number): void => {
      for (const h of plan.holds.filter((x) => x.afterStep === afterStep)) {
        const snap = sideOf(h.side).find((s) => s.name === h.snapshot);
        if (snap === undefined) throw new Error(`hold action on a missing snapshot ${h.snapshot}`);
        if (h.op === 'hold') snap.held.add(h.tag);
        else snap.held.delete(h.tag);
      }
    };
    applyHolds(-1);
    planSteps.forEach((step, i) => {
      // What ZFS enforces: a full receive creates the dataset; an incremental one needs the base to be the newest.
      if (step.mode === 'full') {
        expect(target).toBeUndefined();
        target = [];
      } else {
        expect(target?.at(-1)?.name).toBe(step.fromOnTarget);
      }
      const from = step.mode === 'I' ? source.findIndex((s) => s.name === step.from) : source.findIndex((s) => s.name === step.to) - 1;
      const to = source.findIndex((s) => s.name === step.to);
      for (const s of source.slice(from + 1, to + 1)) {
        (target as Snap[]).push({ name: `backup/web@${s.name.split('@')[1] as string}`, guid: s.guid, createdAt: s.createdAt, createTxg: targetTxg++, held: new Set() });
      }
      steps.push(step);
      applyHolds(i);
    });
    const prune = new Set(plan.prunes.map((p) => p.name));
    for (const s of target ?? []) if (prune.has(s.name)) expect(s.held.size).toBe(0);
    target = target?.filter((s) => !prune.has(s.name));
    stepsPerSync.push(planSteps.length);
    lastSync = now;
  }
  return { source, target: target ?? [], steps, stepsPerSync, maxSourceCount };
}

const names = (snaps: readonly Snap[]): string[] => snaps.map((s) => s.name.split('@')[1] as string);

describe('hourly local restore points, daily remote, three simulated days', () => {
  const local: RetentionPolicy = { hourly: 24, daily: 7 };
  const dailyAt23 = schedule({ cron: '0 23 * * *' });

  it('the target ends with exactly the daily points the remote keeps; one send per day plus the initial one', () => {
    const out = simulate({ hours: 72, local, remote: { daily: 7 }, vector: dailyAt23 });
    // Runs: Mon 00:00 (never synced: due at once) → full Mon 00:00; then 23:00 on Mon, Tue, Wed → one -i each.
    expect(out.stepsPerSync).toEqual([1, 1, 1, 1]);
    expect(out.steps.map((s) => `${s.mode} ${s.to.split('@')[1] as string}`)).toEqual([
      `full ${short(at(0, 0))}`,
      `i ${short(at(0, 23))}`,
      `i ${short(at(1, 23))}`,
      `i ${short(at(2, 23))}`,
    ]);
    // Mon 00:00 was the base of Monday evening's step, so it is pruned one run later (Tuesday 23:00).
    expect(names(out.target)).toEqual([short(at(0, 23)), short(at(1, 23)), short(at(2, 23))]);
    // The bases end held on both sides and nothing else carries the vector's tag.
    expect(out.source.filter((s) => s.held.has(TAG)).map((s) => s.name)).toEqual([`tank/web@${short(at(2, 23))}`]);
    expect(out.target.filter((s) => s.held.has(TAG)).map((s) => s.name)).toEqual([`backup/web@${short(at(2, 23))}`]);
    // Local retention: 24 hourlies + the previous days' dailies, never more.
    expect(out.maxSourceCount).toBeLessThanOrEqual(24 + 2);
  });

  it('a shorter remote policy prunes the target down to it', () => {
    const out = simulate({ hours: 72, local, remote: { daily: 2 }, vector: dailyAt23 });
    expect(out.steps).toHaveLength(4);
    expect(names(out.target)).toEqual([short(at(1, 23)), short(at(2, 23))]);
  });

  it('after an outage of a day and a half, one sparse catch-up: one -i per day, not every hourly', () => {
    // Unreachable from Monday 23:00 until Wednesday 10:00; the schedule stays due, so it syncs at 10:00.
    const out = simulate({ hours: 72, local, remote: { daily: 7 }, vector: dailyAt23, unreachable: (now) => now >= at(0, 23) && now < at(2, 10) });
    expect(out.stepsPerSync).toEqual([1, 3, 1]);
    expect(out.steps.map((s) => `${s.mode} ${s.to.split('@')[1] as string}`)).toEqual([
      `full ${short(at(0, 0))}`,
      `i ${short(at(0, 23))}`,
      `i ${short(at(1, 23))}`,
      `i ${short(at(2, 10))}`,
      `i ${short(at(2, 23))}`,
    ]);
    // Wednesday 10:00 was the last run's base: it stays until the next run, then expires.
    expect(names(out.target)).toEqual([short(at(0, 23)), short(at(1, 23)), short(at(2, 10)), short(at(2, 23))]);
  });

  it('a vector that runs every hour keeps the replica current: every hour is sent, only the dailies stay', () => {
    const out = simulate({ hours: 72, local, remote: { daily: 7 }, vector: schedule({ interval: '1h' }) });
    expect(out.steps).toHaveLength(72);
    expect(out.steps.slice(1).every((s) => s.mode === 'i')).toBe(true);
    // Each run prunes the base before the previous one unless it is its day's last point.
    expect(names(out.target)).toEqual([short(at(0, 23)), short(at(1, 23)), short(at(2, 22)), short(at(2, 23))]);
  });
});
