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

/** One dataset on one machine; `snaps` undefined while it does not exist. */
interface Ds {
  readonly dataset: string;
  snaps: Snap[] | undefined;
}

let targetTxg = 9000;
const view = (s: Snap): ReplicaSnapshot => ({ name: s.name, guid: s.guid, createdAt: s.createdAt, createTxg: s.createTxg, held: [...s.held] });

/** Plans one vector's sync and carries the plan out the way ZFS would. Returns the steps done. */
function runVector(source: Ds, target: Ds, remote: RetentionPolicy, tag: string, now: number): SendStep[] {
  const plan = planReplication({
    now,
    source: { dataset: source.dataset, snapshots: (source.snaps ?? []).map(view) },
    target: { dataset: target.dataset, exists: target.snaps !== undefined, snapshots: (target.snaps ?? []).map(view), writtenSinceNewest: 0 },
    remotePolicy: remote,
    capabilities: { source: CAPS, target: CAPS },
    holdTag: tag,
  });
  if (plan.kind !== 'send' && plan.kind !== 'upToDate') throw new Error(`unexpected plan ${JSON.stringify(plan)}`);
  const src = source.snaps ?? [];
  const applyHolds = (afterStep: number): void => {
    for (const h of plan.holds.filter((x) => x.afterStep === afterStep)) {
      const snap = (h.side === 'source' ? src : (target.snaps ?? [])).find((s) => s.name === h.snapshot);
      if (snap === undefined) throw new Error(`hold action on a missing snapshot ${h.snapshot}`);
      if (h.op === 'hold') snap.held.add(h.tag);
      else snap.held.delete(h.tag);
    }
  };
  const steps = plan.kind === 'send' ? plan.steps : [];
  applyHolds(-1);
  steps.forEach((step, i) => {
    // What ZFS enforces: a full receive creates the dataset; an incremental one needs the base to be the newest.
    if (step.mode === 'full') {
      expect(target.snaps).toBeUndefined();
      target.snaps = [];
    } else {
      expect(target.snaps?.at(-1)?.name).toBe(step.fromOnTarget);
    }
    const to = src.findIndex((s) => s.name === step.to);
    const from = step.mode === 'I' ? src.findIndex((s) => s.name === step.from) : to - 1;
    for (const s of src.slice(from + 1, to + 1)) {
      (target.snaps as Snap[]).push({ name: `${target.dataset}@${s.name.split('@')[1] as string}`, guid: s.guid, createdAt: s.createdAt, createTxg: targetTxg++, held: new Set() });
    }
    applyHolds(i);
  });
  const prune = new Set(plan.prunes.map((p) => p.name));
  for (const s of target.snaps ?? []) if (prune.has(s.name)) expect(s.held.size).toBe(0);
  target.snaps = target.snaps?.filter((s) => !prune.has(s.name));
  return [...steps];
}

/** An hourly restore point on the source, then local retention as the Dataset controller runs it (held = protected). */
function takeAndPrune(source: Ds, local: RetentionPolicy, now: number, txg: number): void {
  const snaps = (source.snaps ??= []);
  snaps.push({ name: `${source.dataset}@${short(now)}`, guid: `g${txg}`, createdAt: now, createTxg: txg, held: new Set() });
  const plan = planRetention({ snapshots: snaps, policy: local, now, protectedNames: snaps.filter((s) => s.held.size > 0).map((s) => s.name) });
  const destroy = new Set(plan.destroy);
  for (const s of snaps) if (destroy.has(s.name)) expect(s.held.size).toBe(0);
  source.snaps = snaps.filter((s) => !destroy.has(s.name));
}

function simulate(options: { hours: number; local: RetentionPolicy; remote: RetentionPolicy; vector: Schedule; unreachable?: (now: number) => boolean }): Outcome {
  const source: Ds = { dataset: 'tank/web', snaps: [] };
  const target: Ds = { dataset: 'backup/web', snaps: undefined };
  let lastSync: number | undefined;
  const steps: SendStep[] = [];
  const stepsPerSync: number[] = [];
  let maxSourceCount = 0;
  for (let h = 0; h < options.hours; h++) {
    const now = START + h * HOUR;
    takeAndPrune(source, options.local, now, 100 + h);
    maxSourceCount = Math.max(maxSourceCount, source.snaps?.length ?? 0);
    if (!isDue(options.vector, lastSync, now) || options.unreachable?.(now)) continue;
    const done = runVector(source, target, options.remote, TAG, now);
    steps.push(...done);
    stepsPerSync.push(done.length);
    lastSync = now;
  }
  return { source: source.snaps ?? [], target: target.snaps ?? [], steps, stepsPerSync, maxSourceCount };
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

describe('a chain A → B → C with its own remote policy per hop', () => {
  it('the second hop is sparse again and the first hop never prunes the second hop\'s base on B', () => {
    const a: Ds = { dataset: 'tank/web', snaps: [] };
    const b: Ds = { dataset: 'backup/web', snaps: undefined };
    const c: Ds = { dataset: 'geo/web', snaps: undefined };
    const daily = schedule({ cron: '0 23 * * *' });
    const weekly = schedule({ cron: '0 23 * * 3' }); // Wednesdays
    let lastAB: number | undefined;
    let lastBC: number | undefined;
    const bcSteps: SendStep[] = [];
    for (let h = 0; h < 10 * 24; h++) {
      const now = START + h * HOUR;
      takeAndPrune(a, { hourly: 24, daily: 7 }, now, 100 + h);
      if (isDue(daily, lastAB, now)) {
        runVector(a, b, { daily: 3 }, 'bdr:ab', now);
        lastAB = now;
      }
      if (b.snaps !== undefined && isDue(weekly, lastBC, now)) {
        bcSteps.push(...runVector(b, c, { keepLast: 1, weekly: 4 }, 'bdr:bc', now));
        lastBC = now;
      }
    }
    // A → B first runs Mon 00:00 (full), then daily at 23:00; B keeps 3 dailies. B → C first runs Mon 00:00 too
    // (full of B's only point), then Wednesdays 23:00 (days 2 and 9), one -i each: B's newest, the Wednesday point.
    expect(bcSteps.map((s) => `${s.mode} ${s.to.split('@')[1] as string}`)).toEqual([`full ${short(at(0, 0))}`, `i ${short(at(2, 23))}`, `i ${short(at(9, 23))}`]);
    // B: days 7, 8, 9 (daily: 3), and day 2: it was B → C's base, held by bdr:bc, when A → B pruned B at the
    // last tick; B → C released it afterwards in the same tick, so A → B's next run prunes it.
    expect(names(b.snaps ?? [])).toEqual([short(at(2, 23)), short(at(7, 23)), short(at(8, 23)), short(at(9, 23))]);
    expect(b.snaps?.[0]?.held).toEqual(new Set());
    expect(runVector(a, b, { daily: 3 }, 'bdr:ab', at(10, 0))).toEqual([]); // up to date: only the prune
    expect(names(b.snaps ?? [])).toEqual([short(at(7, 23)), short(at(8, 23)), short(at(9, 23))]);
    // C: weekly 4 keeps the newest of each ISO week: day 2 (week of Mon 23 Nov) and day 9 (week of Mon 30 Nov).
    expect(names(c.snaps ?? [])).toEqual([short(at(2, 23)), short(at(9, 23))]);
    expect((b.snaps ?? []).find((s) => s.name.endsWith(short(at(9, 23))))?.held).toEqual(new Set(['bdr:ab', 'bdr:bc']));
  });
});
