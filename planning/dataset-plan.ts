/**
 * What the Dataset controller does next for one dataset, as a pure function: whether a restore point is due
 * (and its name), which of bdr's restore points retention destroys and why, and when to look again. The
 * controller acts on it; `bdr plan` prints it. Only snapshots bdr owns are ever candidates for destruction;
 * held ones and the bases vectors need are protected.
 */
import { planRetention, type PoolCapacity, type RetentionDecision, type RetentionPolicy } from './retention.ts';
import { missedRuns, nextDue, type Schedule } from './schedule.ts';

/** Prefix of the snapshots bdr takes: `bdr-20261126T063600Z`, the UTC instant the restore point stands for. */
export const SNAPSHOT_PREFIX = 'bdr-';

export function snapshotShortName(at: number): string {
  const iso = new Date(Math.floor(at / 1000) * 1000).toISOString(); // 2026-11-26T06:36:00.000Z
  return `${SNAPSHOT_PREFIX}${iso.slice(0, 19).replace(/[-:]/g, '')}Z`;
}

/** The instant a bdr snapshot name stands for, or undefined for names bdr did not make. */
export function instantOfSnapshotName(shortName: string): number | undefined {
  const m = /^bdr-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(shortName);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, s);
  return Number.isNaN(t) ? undefined : t;
}

export interface DatasetSnapshot {
  /** Full name, `pool/ds@short`. */
  name: string;
  /** Epoch ms the restore point stands for (the name's instant for bdr's snapshots, else ZFS creation). */
  createdAt: number;
  usedBytes: number;
  /** Taken by bdr for this Dataset (its ownership property matches). */
  owned: boolean;
  /** Has user holds: ZFS itself refuses to destroy it. */
  held: boolean;
}

export interface DatasetPlanInput {
  /** Full ZFS dataset name. */
  dataset: string;
  schedule: Schedule;
  policy: RetentionPolicy;
  snapshots: readonly DatasetSnapshot[];
  now: number;
  /** Full names that vectors need as incremental bases. */
  protectedNames?: ReadonlySet<string>;
  /** The pool, for maximum rolling. */
  pool?: PoolCapacity;
  /** Suspended datasets take no snapshots and prune nothing. */
  suspended?: boolean;
}

export interface DatasetPlan {
  /** The snapshot to take now, if one is due. */
  take?: { name: string; at: number };
  /** When the next restore point is due after this plan is carried out. */
  nextSnapshotAt: number;
  /** Scheduled instants that passed without a restore point (an outage, a stopped operator). */
  missed: number;
  /** Retention decisions over bdr's restore points, including the one about to be taken; newest first. */
  decisions: readonly RetentionDecision[];
  destroy: readonly string[];
  /** Caps retention could not meet because only protected restore points remain. */
  unmetCaps: readonly string[];
}

export type SnapshotDueInput = Pick<DatasetPlanInput, 'dataset' | 'schedule' | 'snapshots' | 'now' | 'suspended'>;

/** The newest restore point bdr took for this dataset: the schedule's last run. */
function lastRunOf(snapshots: readonly DatasetSnapshot[]): number | undefined {
  let last: number | undefined;
  for (const s of snapshots) if (s.owned && (last === undefined || s.createdAt > last)) last = s.createdAt;
  return last;
}

/**
 * The snapshot due now, if any. Used on its own to batch every dataset of a machine that is due at the same
 * instant into one snapshot command.
 */
export function dueSnapshot(input: SnapshotDueInput): { name: string; at: number } | undefined {
  if (input.suspended) return undefined;
  if (nextDue(input.schedule, lastRunOf(input.snapshots), input.now) > input.now) return undefined;
  const name = `${input.dataset}@${snapshotShortName(input.now)}`;
  // Two reconciles within one second must not collide on the name.
  if (input.snapshots.some((s) => s.name === name)) return undefined;
  return { name, at: Math.floor(input.now / 1000) * 1000 };
}

export function planDataset(input: DatasetPlanInput): DatasetPlan {
  const owned = input.snapshots.filter((s) => s.owned);
  const lastRun = lastRunOf(owned);
  const missed = missedRuns(input.schedule, lastRun, input.now);
  const take = dueSnapshot(input);
  const lastAfter = take ? take.at : lastRun;
  const nextSnapshotAt = nextDue(input.schedule, lastAfter ?? input.now, input.now);

  if (input.suspended) {
    return { nextSnapshotAt, missed, decisions: [], destroy: [], unmetCaps: [] };
  }
  const candidates = [
    ...owned.map((s) => ({ name: s.name, createdAt: s.createdAt, usedBytes: s.usedBytes })),
    ...(take ? [{ name: take.name, createdAt: take.at, usedBytes: 0 }] : []),
  ];
  const protectedNames = new Set(input.protectedNames ?? []);
  for (const s of owned) if (s.held) protectedNames.add(s.name);
  const retention = planRetention({
    snapshots: candidates,
    policy: input.policy,
    now: input.now,
    protectedNames,
    ...(input.pool ? { pool: input.pool } : {}),
  });
  return {
    ...(take ? { take } : {}),
    nextSnapshotAt,
    missed,
    decisions: retention.decisions,
    destroy: retention.destroy,
    unmetCaps: retention.unmetCaps,
  };
}
