/**
 * Replication: what one Vector sends next, as a pure function (no I/O; `now` is an argument). The contract is
 * written down in `planning/REPLICATION.md`; this is the short version.
 *
 * 1. The common base is the newest target snapshot whose **guid** is on the source (names do not matter, so
 *    snapshots sanoid, zrepl or syncoid made are adopted as bases).
 * 2. The target must not have moved on: snapshots newer than the base that the source lacks, or data written
 *    since its newest snapshot, refuse with `TargetDiverged`; a target with data but no common snapshot refuses
 *    with `NoCommonSnapshot`. A refusal proposes nothing: no step, no prune, no hold (bdr never uses `-F`).
 * 3. Which points are sent: the remote RetentionPolicy (`planRetention`) evaluated over the target's snapshots
 *    plus the source's points newer than the base, as if they were already there. The kept ones, and always the
 *    source's newest, are sent as a sparse `-i` chain; when every point after the base is kept, as one `-I`.
 *    An empty target first gets a full send of the oldest point the remote keeps.
 * 4. Holds (`bdr:<vector>`): the point about to be sent is held on the source before its step, the received one
 *    on the target after it, and only then the previous bases are released (new before old, zrepl's step holds).
 * 5. Target prunes: the remote policy over the target after the sends; never the newest, a held snapshot, the
 *    common base, or any snapshot a step uses as its base.
 */
import { planRetention, type PoolCapacity, type RetentionDecision, type RetentionPolicy } from './retention.ts';

export interface ReplicaSnapshot {
  /** Full name, `pool/ds@short`. */
  readonly name: string;
  /** ZFS guid as a decimal string (64 bits do not fit a JS number); equal guids mean the same snapshot. */
  readonly guid: string;
  /** Epoch ms the restore point stands for (ZFS `creation`, or the instant in a bdr name). */
  readonly createdAt: number;
  /** ZFS `createtxg`: orders snapshots of one dataset exactly, even within one second. */
  readonly createTxg?: number;
  /** ZFS `used` (bytes only this snapshot holds); only the target's matter, for a remote `maxRolling`. */
  readonly usedBytes?: number;
  /** Hold tags known on it; undefined when unknown (`zfs holds` is missing on zfs-fuse). */
  readonly held?: readonly string[];
}

/** What one end's ZFS can do; `ZfsCapabilities` from zfs/capabilities.ts fits. */
export interface EndCapabilities {
  readonly sendCompressed: boolean;
  readonly sendRaw: boolean;
  readonly sendLargeBlocks: boolean;
  /** `receive -s`, `send -t` and the `receive_resume_token` property. */
  readonly resumeTokens: boolean;
}

/** The Vector's `spec.transport` flags; unset ones take the CRD defaults. */
export interface TransportWishes {
  /** Default true. */
  readonly compressed?: boolean;
  /** Default false. Never silently dropped: an unencrypted fallback would show the target the data. */
  readonly raw?: boolean;
  /** Default true. */
  readonly largeBlocks?: boolean;
  /** Default true. */
  readonly resumable?: boolean;
}

/** An interrupted `receive -s`, as the target reports it. */
export interface PartialReceive {
  readonly token: string;
  /** The guid of the snapshot the interrupted stream was bringing (`zfs send -nvt TOKEN` prints `toguid`). */
  readonly toGuid?: string;
  /** Its incremental base's guid; absent for a full stream. */
  readonly fromGuid?: string;
}

export interface ReplicationInput {
  readonly now: number;
  /** Every snapshot of the source dataset (a `-I` step carries all of them between its ends), any order. */
  readonly source: { readonly dataset: string; readonly snapshots: readonly ReplicaSnapshot[] };
  readonly target: {
    readonly dataset: string;
    readonly exists: boolean;
    readonly snapshots: readonly ReplicaSnapshot[];
    /** Bytes written since the newest snapshot (ZFS `written`); more than 0 means the replica was changed. */
    readonly writtenSinceNewest?: number;
    readonly partialReceive?: PartialReceive;
    /** The target's pool, so that a remote `maxRolling` can be evaluated for the prunes (with each snapshot's `usedBytes`). */
    readonly pool?: PoolCapacity;
  };
  /** The vector's remote RetentionPolicy: it decides which points the target keeps, hence which are sent. */
  readonly remotePolicy: RetentionPolicy;
  readonly capabilities: { readonly source: EndCapabilities; readonly target: EndCapabilities };
  readonly transport?: TransportWishes;
  /** `bdr:<vector>`. */
  readonly holdTag: string;
}

export type SendMode = 'full' | 'i' | 'I';

export interface SendStep {
  /** Incremental base on the source (full name); undefined for a full send. */
  readonly from?: string;
  readonly fromGuid?: string;
  /** The base as the target names it (an adopted base can have another name there). */
  readonly fromOnTarget?: string;
  /** The source snapshot sent (full name). */
  readonly to: string;
  readonly toGuid: string;
  readonly toCreatedAt: number;
  /** What the target calls it after the receive. */
  readonly receivedAs: string;
  readonly mode: SendMode;
  /** How many snapshots the step brings to the target (more than 1 only for `-I`). */
  readonly points: number;
  /** Why this point is sent: the remote policy's reasons (`daily 2026-11-26`, `newest`, …). */
  readonly why: string;
  /** Continue an interrupted stream with `zfs send -t` instead of starting it again. */
  readonly resumeToken?: string;
}

export interface Prune {
  /** Full target name. */
  readonly name: string;
  readonly guid: string;
  readonly reasons: readonly string[];
}

export interface HoldAction {
  readonly op: 'hold' | 'release';
  readonly side: 'source' | 'target';
  /** Full name on that side. */
  readonly snapshot: string;
  readonly tag: string;
  /** -1: before the first step; i: once step i has succeeded (before step i+1). */
  readonly afterStep: number;
  readonly why: string;
}

export interface SendFlags {
  readonly compressed: boolean;
  readonly raw: boolean;
  readonly largeBlocks: boolean;
  /** Receive with `-s` (a stream cut off can be continued with a token). */
  readonly resumable: boolean;
  /** Wished for but not used, and why, for status (`compressed: zfs-fuse … lacks send -c`). */
  readonly unavailable: readonly string[];
}

export interface CommonSnapshot {
  readonly guid: string;
  readonly source: string;
  readonly target: string;
  readonly createdAt: number;
}

export type RefusalReason = 'NoCommonSnapshot' | 'TargetDiverged' | 'NameCollision' | 'RawSendUnsupported';

interface Planned {
  /** Ordered hold and release actions; see `HoldAction.afterStep`. */
  readonly holds: readonly HoldAction[];
  /** Target snapshots to destroy once the steps and holds are done, oldest first. */
  readonly prunes: readonly Prune[];
  /** Remote caps the prunes cannot meet (only protected points left, or pool capacity unknown), as retention words them. */
  readonly targetUnmetCaps: readonly string[];
  readonly flags: SendFlags;
  /** The snapshots that must stay held when the plan is done: the Dataset controller's `protectedSnapshots`. */
  readonly basesAfter: { readonly source: string; readonly target: string };
}

export type ReplicationPlan =
  | ({ readonly kind: 'upToDate'; readonly common: CommonSnapshot } & Planned)
  | ({
      readonly kind: 'send';
      readonly common?: CommonSnapshot;
      readonly steps: readonly SendStep[];
      /** Run `zfs receive -A` on the target first: its partial state is for a stream this plan does not resume. */
      readonly discardPartialReceive: boolean;
    } & Planned)
  | { readonly kind: 'wait'; readonly reason: 'NoSourceSnapshot'; readonly message: string }
  | { readonly kind: 'refuse'; readonly reason: RefusalReason; readonly message: string };

/** Orders one dataset's snapshots oldest first: by createtxg when every snapshot has one, else creation, then name. */
export function sortOldestFirst(snapshots: readonly ReplicaSnapshot[]): ReplicaSnapshot[] {
  const byTxg = snapshots.every((s) => s.createTxg !== undefined);
  const compare = (a: ReplicaSnapshot, b: ReplicaSnapshot): number =>
    byTxg
      ? (a.createTxg as number) - (b.createTxg as number)
      : a.createdAt - b.createdAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  // `zfs list -s createtxg` already delivers this order; checking is much cheaper than sorting 10,000 objects.
  let sorted = true;
  for (let i = 1; i < snapshots.length && sorted; i++) sorted = compare(snapshots[i - 1] as ReplicaSnapshot, snapshots[i] as ReplicaSnapshot) < 0;
  return sorted ? [...snapshots] : [...snapshots].sort(compare);
}

/**
 * The source snapshots a step reads while its stream runs: its point, and for `-I` every snapshot between its
 * base and its point too (the stream carries each of them, so destroying one mid-stream fails it).
 */
export function stepSourcePoints(step: SendStep, sourceSnapshots: readonly ReplicaSnapshot[]): string[] {
  if (step.mode !== 'I' || step.from === undefined) return [step.to];
  const ordered = sortOldestFirst(sourceSnapshots).map((s) => s.name);
  const from = ordered.indexOf(step.from);
  const to = ordered.indexOf(step.to);
  return from >= 0 && to > from ? ordered.slice(from + 1, to + 1) : [step.to];
}

export function shortNameOf(fullName: string): string {
  const at = fullName.indexOf('@');
  if (at <= 0 || at === fullName.length - 1) throw new RangeError(`"${fullName}" is not a snapshot name (dataset@name)`);
  return fullName.slice(at + 1);
}

/** Throws on snapshots of another dataset (a caller bug); with `guids`, also on a repeated guid. */
function checkSnapshots(dataset: string, snapshots: readonly ReplicaSnapshot[], side: string, guids?: Map<string, number>): void {
  const prefix = `${dataset}@`;
  for (let i = 0; i < snapshots.length; i++) {
    const s = snapshots[i] as ReplicaSnapshot;
    if (!s.name.startsWith(prefix) || s.name.length === prefix.length) {
      throw new RangeError(`${side} snapshot "${s.name}" is not a snapshot of ${dataset}`);
    }
    if (guids === undefined) continue;
    if (guids.has(s.guid)) throw new RangeError(`${side} snapshots share guid ${s.guid}`);
    guids.set(s.guid, i);
  }
}

/** Flags both ends support, among those the vector wants; `raw` refuses rather than falling back. */
export function negotiateFlags(
  capabilities: ReplicationInput['capabilities'],
  wishes: TransportWishes = {},
): SendFlags | { refuse: string } {
  const unavailable: string[] = [];
  const both = (wanted: boolean, name: string, flag: string, has: (c: EndCapabilities) => boolean): boolean => {
    if (!wanted) return false;
    const missing = (['source', 'target'] as const).filter((side) => !has(capabilities[side]));
    if (missing.length === 0) return true;
    unavailable.push(`${name}: the ${missing.join(' and ')} machine's ZFS lacks ${flag}`);
    return false;
  };
  const raw = both(wishes.raw ?? false, 'raw', 'send -w', (c) => c.sendRaw);
  if ((wishes.raw ?? false) && !raw) {
    return { refuse: `${unavailable.join('; ')}. A raw (encrypted) send was asked for; bdr does not fall back to sending decrypted data. Upgrade ZFS on both machines or set spec.transport.raw: false.` };
  }
  return {
    compressed: both(wishes.compressed ?? true, 'compressed', 'send -c', (c) => c.sendCompressed),
    raw,
    largeBlocks: both(wishes.largeBlocks ?? true, 'largeBlocks', 'send -L', (c) => c.sendLargeBlocks),
    resumable: both(wishes.resumable ?? true, 'resumable', 'resume tokens (receive -s, send -t)', (c) => c.resumeTokens),
    unavailable,
  };
}

export function planReplication(input: ReplicationInput): ReplicationPlan {
  const { source, target, holdTag } = input;
  const negotiated = negotiateFlags(input.capabilities, input.transport);
  if ('refuse' in negotiated) return { kind: 'refuse', reason: 'RawSendUnsupported', message: negotiated.refuse };
  const flags = negotiated;

  const src = sortOldestFirst(source.snapshots);
  const tgt = sortOldestFirst(target.snapshots);
  if (src.length === 0) {
    return { kind: 'wait', reason: 'NoSourceSnapshot', message: `${source.dataset} has no restore point yet; the first sync follows the first snapshot.` };
  }
  // The target's guids only: a map of 10,000 source guids would cost more than the whole rest of a steady-state plan.
  const tgtIndexByGuid = new Map<string, number>();
  checkSnapshots(source.dataset, src, 'source');
  checkSnapshots(target.dataset, tgt, 'target', tgtIndexByGuid);
  const targetName = (sourceName: string): string => `${target.dataset}@${shortNameOf(sourceName)}`;

  // The newest target snapshot the source also has. Everything after it on the target is foreign to the source.
  let commonT = -1;
  let commonS = -1;
  if (tgt.length > 0) {
    for (let i = 0; i < src.length; i++) {
      const j = tgtIndexByGuid.get((src[i] as ReplicaSnapshot).guid);
      if (j !== undefined && j > commonT) {
        commonT = j;
        commonS = i;
      }
    }
  }
  const written = target.writtenSinceNewest ?? 0;
  const newestTarget = tgt.at(-1);

  if (commonT < 0 && (tgt.length > 0 || (target.exists && target.partialReceive === undefined))) {
    const what = tgt.length > 0
      ? `has ${tgt.length} snapshot${tgt.length === 1 ? '' : 's'} (newest ${(newestTarget as ReplicaSnapshot).name}) but none with a guid the source ${source.dataset} has`
      : 'exists but has no snapshot';
    return {
      kind: 'refuse',
      reason: 'NoCommonSnapshot',
      message:
        `Target ${target.dataset} ${what}, so nothing can be sent incrementally and bdr never overwrites a dataset. ` +
        `If its data is not needed, destroy it on the target machine (zfs destroy -r ${target.dataset}) and the next sync sends a full copy; ` +
        `otherwise point the vector at another target dataset.`,
    };
  }
  if (commonT >= 0) {
    const ahead = tgt.slice(commonT + 1);
    const commonName = (tgt[commonT] as ReplicaSnapshot).name;
    if (ahead.length > 0 || written > 0) {
      const problems: string[] = [];
      if (ahead.length > 0) {
        problems.push(`it has ${ahead.length} snapshot${ahead.length === 1 ? '' : 's'} newer than the common snapshot ${commonName} that the source lacks (${ahead.slice(0, 3).map((s) => s.name).join(', ')}${ahead.length > 3 ? ', …' : ''})`);
      }
      if (written > 0) problems.push(`${written} bytes were written to it since its newest snapshot ${(newestTarget as ReplicaSnapshot).name}`);
      return {
        kind: 'refuse',
        reason: 'TargetDiverged',
        message:
          `Target ${target.dataset} changed since the last sync: ${problems.join('; and ')}. bdr destroys nothing and does not receive with -F. ` +
          `Copy off anything needed from the replica, then roll it back on the target machine (zfs rollback -r ${commonName}, which destroys the newer snapshots and writes) and the next sync continues incrementally; ` +
          `or destroy the replica (zfs destroy -r ${target.dataset}) for a full resend.`,
      };
    }
  }

  const common: CommonSnapshot | undefined = commonT >= 0
    ? (() => {
        const t = tgt[commonT] as ReplicaSnapshot;
        const s = src[commonS] as ReplicaSnapshot;
        return { guid: t.guid, source: s.name, target: t.name, createdAt: s.createdAt };
      })()
    : undefined;
  const baseIndex = common ? commonS : -1;
  const candidates = src.slice(baseIndex + 1);

  // Which candidates the remote keeps: the policy over the target as it would be with every candidate on it.
  const targetByName = new Map(tgt.map((t) => [t.name, t] as const));
  const receivedNames = candidates.map((c) => targetName(c.name));
  const collisionAt = receivedNames.findIndex((name) => targetByName.has(name));
  if (collisionAt >= 0) {
    const collision = candidates[collisionAt] as ReplicaSnapshot;
    const other = targetByName.get(receivedNames[collisionAt] as string) as ReplicaSnapshot;
    return {
      kind: 'refuse',
      reason: 'NameCollision',
      message:
        `Target ${target.dataset} already has a snapshot named ${other.name} (guid ${other.guid}), older than the common base, while the source's ${collision.name} (guid ${collision.guid}) still has to be sent; ` +
        `a receive cannot create it. Rename or destroy ${other.name} on the target machine (zfs rename / zfs destroy).`,
    };
  }
  const reasons = new Array<readonly string[] | undefined>(candidates.length).fill(undefined);
  if (candidates.length > 0) {
    const evaluated = planRetention({
      snapshots: [
        ...tgt.map((t) => ({ name: t.name, createdAt: t.createdAt })),
        ...candidates.map((c, k) => ({ name: receivedNames[k] as string, createdAt: c.createdAt })),
      ],
      policy: input.remotePolicy,
      now: input.now,
      protectedNames: common ? [common.target] : [],
    });
    // Kept points are few (tens); a map of them is cheaper than one over every candidate.
    const kept = new Map<string, readonly string[]>();
    for (const d of evaluated.decisions) if (d.keep) kept.set(d.name, d.reasons);
    for (let k = 0; k < candidates.length; k++) reasons[k] = kept.get(receivedNames[k] as string);
    // The replica is as fresh as the schedule allows, whatever the policy's tie-breaks say.
    reasons[candidates.length - 1] ??= ['newest'];
  }
  const sent: number[] = [];
  for (let k = 0; k < candidates.length; k++) if (reasons[k] !== undefined) sent.push(k);

  const steps: SendStep[] = [];
  const describeWhy = (k: number): string => (reasons[k] as readonly string[]).join(', ');
  const stepTo = (k: number): Pick<SendStep, 'to' | 'toGuid' | 'toCreatedAt' | 'receivedAs'> => {
    const c = candidates[k] as ReplicaSnapshot;
    return { to: c.name, toGuid: c.guid, toCreatedAt: c.createdAt, receivedAs: receivedNames[k] as string };
  };
  let chainStart = 0; // index into `sent` of the first incremental target
  let base: ReplicaSnapshot | undefined = common ? (src[baseIndex] as ReplicaSnapshot) : undefined;
  let baseOnTarget: string | undefined = common?.target;
  let baseK = -1;
  if (!common) {
    const first = sent[0] as number;
    steps.push({
      ...stepTo(first),
      mode: 'full',
      points: 1,
      why: `empty target: full copy of the oldest restore point the remote policy keeps (${describeWhy(first)})`,
    });
    base = candidates[first];
    baseOnTarget = receivedNames[first];
    baseK = first;
    chainStart = 1;
  }
  const rest = sent.slice(chainStart);
  if (rest.length > 0) {
    // Every candidate after the base is kept (contiguous run): one -I carries them all.
    const contiguous = (rest.at(-1) as number) - baseK === rest.length;
    if (rest.length > 1 && contiguous) {
      const last = rest.at(-1) as number;
      steps.push({
        from: (base as ReplicaSnapshot).name,
        fromGuid: (base as ReplicaSnapshot).guid,
        fromOnTarget: baseOnTarget as string,
        ...stepTo(last),
        mode: 'I',
        points: rest.length,
        why: `the remote policy keeps all ${rest.length} restore points after the base (newest: ${describeWhy(last)})`,
      });
    } else {
      for (const k of rest) {
        const b = base as ReplicaSnapshot;
        steps.push({ from: b.name, fromGuid: b.guid, fromOnTarget: baseOnTarget as string, ...stepTo(k), mode: 'i', points: 1, why: describeWhy(k) });
        base = candidates[k];
        baseOnTarget = receivedNames[k];
      }
    }
  }

  // Resume the interrupted stream when it is exactly the first step; otherwise its partial state must go.
  let discardPartialReceive = false;
  const partial = target.partialReceive;
  if (partial !== undefined) {
    const first = steps[0];
    const resumable = first !== undefined && flags.resumable && partial.fromGuid === first.fromGuid;
    const nextGuid = candidates[baseK + 1]?.guid;
    // A token from the base straight to the -I's last point is an -i stream: resuming it would skip the
    // intermediate points the policy keeps, so it is discarded instead.
    if (resumable && partial.toGuid === first.toGuid && first.mode !== 'I') {
      steps[0] = { ...first, resumeToken: partial.token };
    } else if (resumable && first.mode === 'I' && partial.toGuid !== undefined && partial.toGuid === nextGuid) {
      // An -I stream was cut inside its first snapshot: finish that one from the token, then -I over the rest.
      // Every point of an -I is kept, so the set of points sent does not change.
      const k = baseK + 1;
      const resumed: SendStep = { ...first, ...stepTo(k), mode: 'i', points: 1, why: describeWhy(k), resumeToken: partial.token };
      const remaining = first.points - 1;
      const lastK = baseK + first.points;
      const rest: SendStep = {
        ...first,
        from: resumed.to,
        fromGuid: resumed.toGuid,
        fromOnTarget: resumed.receivedAs,
        mode: remaining > 1 ? 'I' : 'i',
        points: remaining,
        why: remaining > 1 ? `the remote policy keeps all ${remaining} restore points after the base (newest: ${describeWhy(lastK)})` : describeWhy(lastK),
      };
      steps.splice(0, 1, resumed, rest);
    } else {
      discardPartialReceive = true;
    }
  }

  const finalBaseSource = steps.length > 0 ? (steps.at(-1) as SendStep).to : (common as CommonSnapshot).source;
  const finalBaseTarget = steps.length > 0 ? (steps.at(-1) as SendStep).receivedAs : (common as CommonSnapshot).target;
  const holds = planHolds({ src, tgt, common, steps, holdTag });

  // Target prunes: the remote policy over the target after the sends (every point received, -I included).
  const stepBasesOnTarget = new Set<string>();
  for (const s of steps) if (s.fromOnTarget !== undefined) stepBasesOnTarget.add(s.fromOnTarget);
  const protectedNames = new Set<string>(stepBasesOnTarget);
  if (common) protectedNames.add(common.target);
  const releasedOnTarget = new Set(holds.filter((h) => h.side === 'target' && h.op === 'release').map((h) => h.snapshot));
  for (const t of tgt) {
    const tags = (t.held ?? []).filter((tag) => tag !== holdTag || !releasedOnTarget.has(t.name));
    if (tags.length > 0) protectedNames.add(t.name);
  }
  const afterSends = [
    ...tgt.map((t) => ({ name: t.name, createdAt: t.createdAt, ...(t.usedBytes !== undefined ? { usedBytes: t.usedBytes } : {}) })),
    ...sent.map((k) => ({ name: receivedNames[k] as string, createdAt: (candidates[k] as ReplicaSnapshot).createdAt })),
  ];
  const prunes: Prune[] = [];
  let targetUnmetCaps: readonly string[] = [];
  if (tgt.length > 0) {
    const after = planRetention({ snapshots: afterSends, policy: input.remotePolicy, now: input.now, protectedNames, ...(target.pool ? { pool: target.pool } : {}) });
    targetUnmetCaps = after.unmetCaps;
    const decisionByName = new Map<string, RetentionDecision>(after.decisions.map((d) => [d.name, d]));
    for (const t of tgt) {
      const d = decisionByName.get(t.name) as RetentionDecision;
      if (!d.keep && !protectedNames.has(t.name) && t.name !== finalBaseTarget) prunes.push({ name: t.name, guid: t.guid, reasons: d.reasons });
    }
  }

  const planned: Planned = { holds, prunes, targetUnmetCaps, flags, basesAfter: { source: finalBaseSource, target: finalBaseTarget } };
  if (steps.length === 0) return { kind: 'upToDate', common: common as CommonSnapshot, ...planned };
  return { kind: 'send', ...(common ? { common } : {}), steps, discardPartialReceive, ...planned };
}

/**
 * Hold moves, simulated over the known holds so that nothing is held twice or released early: before step i the
 * point it sends is held on the source (local retention cannot take it mid-transfer); after step i the received
 * snapshot is held on the target, then the step's base is released on both sides. Holds of this tag anywhere
 * else (left by an interrupted run) are released before the first step, after the new holds.
 */
function planHolds(args: {
  src: readonly ReplicaSnapshot[];
  tgt: readonly ReplicaSnapshot[];
  common: CommonSnapshot | undefined;
  steps: readonly SendStep[];
  holdTag: string;
}): HoldAction[] {
  const { holdTag: tag, steps, common } = args;
  const heldOn = (snapshots: readonly ReplicaSnapshot[]): Set<string> =>
    new Set(snapshots.filter((s) => s.held?.includes(tag)).map((s) => s.name));
  const held = { source: heldOn(args.src), target: heldOn(args.tgt) };
  const actions: HoldAction[] = [];
  const hold = (side: 'source' | 'target', snapshot: string, afterStep: number, why: string): void => {
    if (held[side].has(snapshot)) return;
    held[side].add(snapshot);
    actions.push({ op: 'hold', side, snapshot, tag, afterStep, why });
  };
  const release = (side: 'source' | 'target', snapshot: string, afterStep: number, why: string): void => {
    if (!held[side].delete(snapshot)) return;
    actions.push({ op: 'release', side, snapshot, tag, afterStep, why });
  };
  if (common) {
    hold('source', common.source, -1, 'common base: local retention must keep it until the next base is on the target');
    hold('target', common.target, -1, 'common base: remote retention must keep it until the next base is received');
  }
  steps.forEach((step, i) => {
    hold('source', step.to, i - 1, `step ${i + 1} sends it: it must survive the transfer and become the next base`);
    hold('target', step.receivedAs, i, `received by step ${i + 1}: the next base`);
    if (step.from !== undefined && step.fromOnTarget !== undefined) {
      release('target', step.fromOnTarget, i, `superseded by ${step.receivedAs}`);
      release('source', step.from, i, `superseded by ${step.to}`);
    }
  });
  // A stray is no step's base or point, so it goes before the first step: a run that then fails (the secondary
  // unreachable for a day) must not leave one more held point on the source each time it is retried.
  const finalSource = steps.at(-1)?.to ?? common?.source;
  const finalTarget = steps.at(-1)?.receivedAs ?? common?.target;
  for (const name of [...held.source]) if (name !== finalSource) release('source', name, -1, 'stray hold of this vector (an interrupted run left it)');
  for (const name of [...held.target]) if (name !== finalTarget) release('target', name, -1, 'stray hold of this vector (an interrupted run left it)');
  // In the order they are carried out (a stable sort keeps each step's own order).
  return actions.sort((x, y) => x.afterStep - y.afterStep);
}

/** One line per step for `bdr plan`: `-i pool/a@x → pool/a@y (daily 2026-11-26)`. */
/** A step in short: `-i A → B`, `-I A → B` or `full B`, by snapshot (or bookmark) names without their dataset. */
export function stepLabel(step: Pick<SendStep, 'mode' | 'from' | 'to'>): string {
  const short = (name: string) => name.slice(Math.max(name.indexOf('@'), name.indexOf('#')) + 1);
  return step.mode === 'full' || step.from === undefined ? `full ${short(step.to)}` : `-${step.mode} ${short(step.from)} → ${short(step.to)}`;
}

export function describeStep(step: SendStep): string {
  const how = step.mode === 'full' ? 'full' : `-${step.mode} ${step.from as string} →`;
  return `${how} ${step.to}${step.resumeToken !== undefined ? ' (resuming)' : ''} (${step.why})`;
}
