/**
 * The Vector controller, part 2: replication runs. Called by the Vector reconciler once the vector is paired and
 * its key authorized (vector-controller.ts); this module decides whether a sync is due, runs it, and writes the
 * sync half of the status.
 *
 * One run: both machines' transfer slots (taken in machine-name order, so A → B and B → A never wait on each
 * other), one inventory per machine over the operator's own connections, `planReplication` with the vector's
 * remote RetentionPolicy, then the plan in order: holds before each step (new before old), each stream through
 * the primary's own OpenSSH with the vector key (or a local pipe when both ends are one machine) with its bytes
 * counted by `dd` on the primary, the whole vector dataset re-checked and made inert again over the operator's
 * connection after every run that sent a stream (`enforceReplicaProperties`; without a stream only when the
 * listing shows a value wrong), the target pruned by the remote policy, the old holds released. A refusal (diverged or
 * unrelated target) stalls the vector and destroys nothing. The held bases, and while a run goes on every step's
 * source point, are offered to the Dataset controller (`protectedSnapshots`). While a stream runs, status.transfer
 * and Reconciling=True (Transferring) say so.
 *
 * Command budget (test/controllers/vector-sync-commands.test.ts counts it at sshd): an incremental sync of one
 * step is 2 sessions on the primary (listing; the stream, whose shell holds the point sent before it and releases
 * the old base after the receive) and 3 on the storage machine (listing; the guard's receive, which moves the
 * target's hold once it received; the operator's re-check of the vector dataset); a no-op sync is the two
 * listings.
 */
import { performance } from 'node:perf_hooks';
import { vectorKind } from '../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, Vector, VectorStatus } from '../api/types.ts';
import { vectorHoldTag } from '../nodes/guard.ts';
import { instantOfSnapshotName } from '../planning/dataset-plan.ts';
import { formatDuration, parseDuration } from '../planning/duration.ts';
import { describeStep, planReplication, stepLabel, stepSourcePoints, type HoldAction, type ReplicaSnapshot, type ReplicationInput, type ReplicationPlan, type SendStep } from '../planning/replication.ts';
import { validateRetentionPolicy } from '../planning/retention.ts';
import { nextDue, parseSchedule, type Schedule } from '../planning/schedule.ts';
import { describeRate, transportLimits, type TransportLimits } from '../planning/transport.ts';
import { ZfsError } from '../zfs/errors.ts';
import type { Inventory } from '../zfs/inventory.ts';
import type { ZfsMachine } from '../zfs/machine.ts';
import { meteredTransferArgv, runMeteredTransfer, ThrottleUnavailableError } from '../zfs/metered-transfer.ts';
import { enforceReplicaProperties, replicaPolicyFor, replicaPropertiesSettled, type ReplicaCheck } from '../zfs/replica.ts';
import { relay } from '../zfs/transfer.ts';
import { policyRules, poolOf } from './dataset-snapshots.ts';
import { ensureGuard } from './guard-currency.ts';
import type { MachineConnections, MachineHandle } from './machine-connections.ts';
import { backoffDelay, type BackoffPolicy } from './runtime/backoff.ts';
import type { Clock, Timer } from './runtime/clock.ts';
import { findCondition, setCondition, summarize, type ConditionInput, type Outcome } from './runtime/conditions.ts';
import type { ReconcileContext, ReconcileResult } from './runtime/controller.ts';
import type { EventRecorder } from './runtime/events.ts';
import { objectKey, type Informer } from './runtime/informer.ts';
import { resourceOf, type KubeClient } from './runtime/kube.ts';
import { writeStatus } from './runtime/status.ts';
import type { VectorSyncMetrics } from '../metrics/vector-metrics.ts';
import type { TaskRunner } from './task-runner.ts';
import { identityDir, machinePaths, ownerTags } from './vector-layout.ts';

const VECTOR = resourceOf(vectorKind);
/** status.transfer is rewritten at most this often during a run, so status writes stay few. */
export const TRANSFER_STATUS_INTERVAL_MS = 10_000;
/** Failed or refused runs are retried after backoffDelay(consecutiveFailures) with this policy. */
export const SYNC_BACKOFF: BackoffPolicy = { baseMs: 10_000, capMs: 10 * 60_000 };
const MAX_REQUEUE_MS = 6 * 3_600_000;
/** Any new value of this annotation starts a sync now; status.lastHandledSyncRequest echoes the value handled. */
export const SYNC_REQUESTED_ANNOTATION = 'bdr.dev/sync-requested';
const DEFAULT_PRIORITY = 100;

/**
 * Ready reasons this module writes. The key half of the reconciler treats a vector whose Ready carries one of
 * them as settled (its keys are fine; the sync decides when to look again).
 */
export const SYNC_READY_REASONS: ReadonlySet<string> = new Set([
  'Synced', 'UpToDate', 'SyncFailed', 'NoSourceSnapshot', 'NoCommonSnapshot', 'TargetDiverged', 'NameCollision',
  'RawSendUnsupported', 'InvalidSchedule', 'RetentionPolicyNotFound', 'InvalidRetentionPolicy', 'SourceNotReady',
  'InvalidTransport', 'SyncTimedOut', 'BandwidthLimitUnavailable', 'TargetReadOnly',
]);

/** What the Vector reconciler resolved: the machines and the vector's dataset on the storage machine. */
export interface PairedVector {
  primary: Machine;
  storage: Machine;
  /** The vector's dataset (the guard's prefix); the replica itself is received below it. */
  replica: string;
  /** Why no stream may go now (a ReadOnly StorageTarget); the sync then sends nothing and says so. */
  readOnly?: string;
}

export interface VectorSyncDeps {
  client: KubeClient;
  vectors: Informer<Vector>;
  datasets: Informer<Dataset>;
  policies: Informer<RetentionPolicy>;
  connections: MachineConnections;
  tasks: TaskRunner;
  events: EventRecorder;
  clock: Clock;
  metrics?: VectorSyncMetrics;
}

/** Totals since this process started, per vector: read by the metrics at scrape time. */
export interface SyncTotals {
  namespace: string;
  name: string;
  sentBytes: number;
  succeeded: number;
  failed: number;
  stalled: number;
  /** Bytes of the stream running now (0 between runs). */
  transferBytes: number;
}

interface Source {
  /** Source dataset on the primary. */
  dataset: string;
  /** The dataset's last path component: the replica is `<vector dataset>/<leaf>`. */
  leaf: string;
  /** The source's newest restore point as its controller last reported it (no command needed). */
  newestGuid: string | undefined;
  policyName: string | undefined;
  priority: number;
}

interface Bases {
  sourceMachine: string;
  source: string;
  targetMachine: string;
  target: string;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const short = (name: string) => name.slice(name.indexOf('@') + 1);

/** A refusal of the planner, or a receive that found the target changed: needs a human, nothing destroyed. */
class Refusal extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class VectorSync {
  private readonly bases = new Map<string, Bases>();
  /**
   * Every snapshot this process holds with a vector's tag (either side), kept as the holds are applied. Without
   * `zfs holds` (zfs-fuse) this is how a hold that a failed run took on its step's point is known to be the
   * vector's own, so a later plan releases it instead of keeping it for good.
   */
  private readonly ownHolds = new Map<string, Map<string, HoldAction['side']>>();
  private readonly lastAttempt = new Map<string, number>();
  /**
   * Per vector with a run going: its source machine and the point every step of the running plan sends. The
   * planner holds a step's point only just before that step (so a crash leaves no stray hold where holds cannot
   * be listed), so until then only this keeps local retention from destroying a later step's point mid-run.
   */
  private readonly inFlight = new Map<string, { machine: string; points: readonly string[] }>();
  private readonly totals = new Map<string, SyncTotals>();

  constructor(private readonly deps: VectorSyncDeps) {}

  /**
   * The snapshots on `machine` that a vector needs as its next incremental base, and while a run is going the
   * source points of all its steps (each is the next step's base): never pruned by local retention.
   */
  protectedSnapshots(machine: string): ReadonlyMap<string, string> {
    // Snapshot → the vectors holding it, so a blocked retention can say whose base it is.
    const out = new Map<string, string>();
    const add = (snapshot: string, vector: string) => {
      const had = out.get(snapshot);
      if (had === undefined) out.set(snapshot, vector);
      else if (!had.split(', ').includes(vector)) out.set(snapshot, `${had}, ${vector}`);
    };
    for (const [key, b] of this.bases) {
      if (b.sourceMachine === machine) add(b.source, key);
      if (b.targetMachine === machine) add(b.target, key);
    }
    for (const [key, run] of this.inFlight) if (run.machine === machine) for (const point of run.points) add(point, key);
    // After a restart, status names the base until the first run: the hold protects it too, this says why.
    for (const v of this.deps.vectors.list()) {
      if (this.bases.has(objectKey(v))) continue;
      const synced = v.status?.lastSyncedSnapshot?.name;
      const src = synced ? this.sourceOf(v) : undefined;
      if (synced && src && 'dataset' in src && this.primaryNameOf(v) === machine) add(`${src.dataset}@${synced}`, objectKey(v));
    }
    return out;
  }

  /**
   * Releases the vector's holds on both machines (its Vector is being deleted): the source's base would otherwise
   * stay un-prunable for good. Where they are comes from this process's last run, else from status; so do the
   * holds a failed or stopped run took on the point it was sending. A hold already gone counts as released; an
   * unreachable machine throws (the finalizer stays and tries again).
   */
  async releaseHolds(vector: Vector, machines: { primary?: Machine | undefined; storage?: Machine | undefined }, signal?: AbortSignal): Promise<void> {
    const key = objectKey(vector);
    const tag = vectorHoldTag(ownerTags(key).current);
    let bases: { source?: string; target?: string } | undefined = this.bases.get(key);
    const synced = vector.status?.lastSyncedSnapshot?.name;
    if (!bases && synced) {
      const src = this.sourceOf(vector);
      const replica = vector.status?.pairing?.dataset;
      bases = 'problem' in src ? {} : { source: `${src.dataset}@${synced}`, ...(replica ? { target: `${replica}/${src.leaf}@${synced}` } : {}) };
    }
    const held = { source: new Set<string>(), target: new Set<string>() };
    if (bases?.source) held.source.add(bases.source);
    if (bases?.target) held.target.add(bases.target);
    for (const [snapshot, side] of this.ownHolds.get(key) ?? []) held[side].add(snapshot);
    const inFlight = vector.status?.transfer?.snapshot;
    const src = inFlight ? this.sourceOf(vector) : undefined;
    if (inFlight && src && 'dataset' in src) held.source.add(`${src.dataset}@${inFlight}`);
    const release = async (machine: Machine | undefined, side: HoldAction['side']) => {
      if (!machine) return;
      const { zfs } = await this.deps.connections.get(machine);
      for (const snapshot of held[side]) await applyHold(zfs, { op: 'release', side, snapshot, tag, afterStep: -1, why: 'the vector is deleted' }, signal);
    };
    await release(machines.primary, 'source');
    await release(machines.storage, 'target');
    this.forget(key);
  }

  metricsTotals(): Iterable<SyncTotals> {
    return this.totals.values();
  }

  forget(vectorKey: string): void {
    this.bases.delete(vectorKey);
    this.ownHolds.delete(vectorKey);
    this.inFlight.delete(vectorKey);
    this.lastAttempt.delete(vectorKey);
    this.totals.delete(vectorKey);
  }

  private totalsOf(vector: Vector): SyncTotals {
    const key = objectKey(vector);
    let t = this.totals.get(key);
    if (!t) {
      t = { namespace: vector.metadata.namespace ?? 'default', name: vector.metadata.name, sentBytes: 0, succeeded: 0, failed: 0, stalled: 0, transferBytes: 0 };
      this.totals.set(key, t);
    }
    return t;
  }

  private primaryNameOf(vector: Vector): string | undefined {
    const ns = vector.metadata.namespace ?? 'default';
    if (vector.spec.source.datasetRef) return this.deps.datasets.get(`${ns}/${vector.spec.source.datasetRef.name}`)?.spec.machineRef.name;
    const src = vector.spec.source.vectorRef ? this.deps.vectors.get(`${ns}/${vector.spec.source.vectorRef.name}`) : undefined;
    return src?.status?.pairing?.machine;
  }

  /** The source dataset and what the vector inherits from it; a chained vector's source is its source vector's replica. */
  private sourceOf(vector: Vector, depth = 0): Source | { problem: string } {
    const ns = vector.metadata.namespace ?? 'default';
    const own = vector.spec.retentionPolicyRef?.name;
    if (vector.spec.source.datasetRef) {
      const ds = this.deps.datasets.get(`${ns}/${vector.spec.source.datasetRef.name}`);
      if (!ds) return { problem: `Dataset ${ns}/${vector.spec.source.datasetRef.name} does not exist` };
      const leaf = ds.spec.name.split('/').at(-1) ?? ds.spec.name;
      return { dataset: ds.spec.name, leaf, newestGuid: ds.status?.restorePoints?.newest?.guid, policyName: own ?? ds.spec.retentionPolicyRef.name, priority: ds.spec.priority ?? DEFAULT_PRIORITY };
    }
    const ref = vector.spec.source.vectorRef;
    if (!ref || depth > 8) return { problem: 'spec.source names neither a Dataset nor a Vector (or the chain is too long)' };
    const upstream = this.deps.vectors.get(`${ns}/${ref.name}`);
    if (!upstream) return { problem: `Vector ${ns}/${ref.name} does not exist` };
    const up = this.sourceOf(upstream, depth + 1);
    if ('problem' in up) return up;
    const replica = upstream.status?.pairing?.dataset;
    if (!replica) return { problem: `source Vector ${ns}/${ref.name} is not paired yet` };
    return { dataset: `${replica}/${up.leaf}`, leaf: up.leaf, newestGuid: upstream.status?.lastSyncedSnapshot?.guid, policyName: own ?? up.policyName, priority: up.priority };
  }

  /**
   * Runs a sync when one is due, else only refreshes InSync. `keyRequeueMs` is when the key half wants to look
   * again (rotation); the result asks for the earlier of the two.
   */
  async reconcile(vector: Vector, paired: PairedVector, ctx: ReconcileContext, keyRequeueMs: number): Promise<ReconcileResult> {
    const { clock } = this.deps;
    const key = objectKey(vector);
    const now = clock.now();
    const status = vector.status ?? {};
    const requeue = (ms: number) => ({ requeueAfterMs: Math.max(1_000, Math.min(MAX_REQUEUE_MS, keyRequeueMs, ms)) });

    if (paired.readOnly !== undefined) return this.write(vector, { state: 'failed', reason: 'TargetReadOnly', message: paired.readOnly }, {}, requeue(MAX_REQUEUE_MS));
    const source = this.sourceOf(vector);
    if ('problem' in source) return this.write(vector, { state: 'failed', reason: 'SourceNotReady', message: source.problem }, {}, requeue(30_000));
    const schedule = vector.spec.schedule ? parseSchedule(vector.spec.schedule) : undefined;
    if (schedule && !schedule.ok) return this.write(vector, { state: 'stalled', reason: 'InvalidSchedule', message: schedule.problem }, {}, requeue(MAX_REQUEUE_MS));
    const limits = transportLimits(vector.spec.transport);
    if (!limits.ok) {
      const message = limits.problems.map((p) => `spec.transport.${p.field}: ${p.problem}`).join('; ');
      return this.write(vector, { state: 'stalled', reason: 'InvalidTransport', message }, {}, requeue(MAX_REQUEUE_MS));
    }
    const ns = vector.metadata.namespace ?? 'default';
    const policy = source.policyName ? this.deps.policies.get(`${ns}/${source.policyName}`) : undefined;
    if (!policy) {
      return this.write(vector, { state: 'failed', reason: 'RetentionPolicyNotFound', message: `RetentionPolicy ${ns}/${source.policyName ?? '?'} (the remote policy) does not exist` }, {}, requeue(30_000));
    }
    const problems = validateRetentionPolicy(policyRules(policy));
    if (problems.length > 0) return this.write(vector, { state: 'stalled', reason: 'InvalidRetentionPolicy', message: problems.join('; ') }, {}, requeue(MAX_REQUEUE_MS));

    // When: after a failure, by backoff; with a schedule, by it; without, after each new source restore point.
    const failures = status.consecutiveFailures ?? 0;
    const lastSync = status.lastSyncTime ? Date.parse(status.lastSyncTime) : undefined;
    let due: boolean;
    let next = Number.POSITIVE_INFINITY;
    if (failures > 0) next = (this.lastAttempt.get(key) ?? 0) + backoffDelay(failures, SYNC_BACKOFF);
    else if (schedule?.ok) next = nextDue(schedule.value, lastSync, now);
    if (failures > 0 || schedule?.ok) due = next <= now;
    else due = lastSync === undefined || (source.newestGuid !== undefined && source.newestGuid !== status.lastSyncedSnapshot?.guid);
    const requested = vector.metadata.annotations?.[SYNC_REQUESTED_ANNOTATION];
    if (requested !== undefined && requested !== status.lastHandledSyncRequest) due = true;
    if (!due) {
      const extra: VectorStatus = Number.isFinite(next) ? { nextSyncTime: iso(next) } : {};
      return this.write(vector, this.outcomeOf(vector), extra, requeue(Math.min(next - now, this.rpoCrossing(vector, now) ?? MAX_REQUEUE_MS)));
    }
    this.lastAttempt.set(key, now);
    return this.run(vector, key, paired, source, policy, ctx, requeue, schedule?.ok ? schedule.value : undefined, limits.value);
  }

  /** When the newest replicated point will pass the RPO, from now (undefined: no RPO, or already past). */
  private rpoCrossing(vector: Vector, now: number): number | undefined {
    const rpo = vector.spec.rpo ? parseDuration(vector.spec.rpo) : undefined;
    const newest = vector.status?.lastSyncedSnapshot?.createdAt;
    if (!rpo?.ok || !newest) return undefined;
    const at = Date.parse(newest) + rpo.value - now;
    return at > 0 ? at + 1_000 : undefined;
  }

  /** The Ready outcome a vector keeps between runs: what its last run said. */
  private outcomeOf(vector: Vector): Outcome {
    const ready = findCondition(vector.status?.conditions, 'Ready');
    const stalled = findCondition(vector.status?.conditions, 'Stalled');
    if (ready && SYNC_READY_REASONS.has(ready.reason)) {
      if (stalled?.status === 'True') return { state: 'stalled', reason: stalled.reason, message: stalled.message };
      if (ready.status === 'False') return { state: 'failed', reason: ready.reason, message: ready.message };
      return { state: 'ready', reason: ready.reason, message: ready.message };
    }
    return { state: 'ready', reason: ready?.reason ?? 'Succeeded', message: ready?.message ?? 'paired' };
  }

  private inSync(vector: Vector, status: VectorStatus, now: number): ConditionInput {
    const newest = status.lastSyncedSnapshot;
    if (!newest?.createdAt) return { type: 'InSync', status: 'False', reason: 'NeverSynced', message: 'no restore point has been replicated yet' };
    const rpo = vector.spec.rpo ? parseDuration(vector.spec.rpo) : undefined;
    const age = now - Date.parse(newest.createdAt);
    if (rpo?.ok) {
      return age > rpo.value
        ? { type: 'InSync', status: 'False', reason: 'RpoExceeded', message: `the newest replicated restore point ${newest.name} is ${Math.round(age / 1000)}s old, over the rpo ${vector.spec.rpo ?? ''}` }
        : { type: 'InSync', status: 'True', reason: 'WithinRpo', message: `the newest replicated restore point ${newest.name} is within the rpo ${vector.spec.rpo ?? ''}` };
    }
    return (status.consecutiveFailures ?? 0) > 0
      ? { type: 'InSync', status: 'False', reason: 'SyncFailing', message: `the last ${status.consecutiveFailures ?? 0} run(s) failed; newest replicated restore point ${newest.name}` }
      : { type: 'InSync', status: 'True', reason: 'Synced', message: `newest replicated restore point ${newest.name}` };
  }

  /** Writes the sync half of status (the key half's fields stay as they are) with Ready/Stalled and InSync. */
  private async write(vector: Vector, outcome: Outcome, fields: VectorStatus, result: ReconcileResult, current?: Vector): Promise<ReconcileResult> {
    const base = current ?? vector;
    const now = this.deps.clock.now();
    const generation = base.metadata.generation ?? 0;
    const status: VectorStatus = { ...(base.status ?? {}), ...fields };
    delete status.transfer;
    let conditions = summarize(status.conditions, outcome, generation, new Date(now));
    conditions = setCondition(conditions, this.inSync(base, status, now), generation, new Date(now));
    status.conditions = conditions;
    status.observedGeneration = generation;
    await writeStatus(this.deps.client, VECTOR, base, status);
    return result;
  }

  private async run(
    vector: Vector,
    key: string,
    paired: PairedVector,
    source: Source,
    policy: RetentionPolicy,
    ctx: ReconcileContext,
    requeue: (ms: number) => ReconcileResult,
    schedule: Schedule | undefined,
    limits: TransportLimits,
  ): Promise<ReconcileResult> {
    const { clock, events, connections } = this.deps;
    // The run's deadline (spec.transport.syncTimeout), armed once both transfer slots are held: every command of
    // the run gets its signal through ctx, so ending the run ends whatever it is doing on the machines.
    const operatorSignal = ctx.signal;
    const deadline = new Deadline(clock, operatorSignal);
    ctx = { ...ctx, signal: deadline.signal };
    const { primary, storage, replica } = paired;
    const targetData = `${replica}/${source.leaf}`;
    const totals = this.totalsOf(vector);
    const started = performance.now();
    const requested = vector.metadata.annotations?.[SYNC_REQUESTED_ANNOTATION];
    const handled: VectorStatus = requested !== undefined ? { lastHandledSyncRequest: requested.slice(0, 256) } : {};
    let latest = vector;
    let bytes = 0;
    try {
      const [src, tgt] = await Promise.all([connections.get(primary), connections.get(storage)]);
      // Listing takes no signal: the deadline stops waiting for it (a hung `zfs list` would otherwise keep both
      // slots for good); the listing changes nothing, so leaving it to end on its own is safe.
      const planNow = () => deadline.race(this.plan(vector, key, source, policy, src, tgt, replica, targetData, storage.metadata.name));
      const act = async ({ plan, targetInventory, sourceSnapshots }: Planned) => {
        if (plan.kind === 'refuse') throw new Refusal(plan.reason, plan.message);
        if (plan.kind === 'wait') return { plan, bytes: 0, pruned: [] as string[] };
        if (plan.kind === 'send') this.inFlight.set(key, { machine: primary.metadata.name, points: plan.steps.flatMap((s) => stepSourcePoints(s, sourceSnapshots)) });
        const zfsOf = (side: HoldAction['side']) => (side === 'source' ? src.zfs : tgt.zfs);
        const own = this.ownHolds.get(key) ?? new Map<string, HoldAction['side']>();
        this.ownHolds.set(key, own);
        // Each side's moves in plan order (new before old there); the two machines are independent of each other.
        // Recorded as the vector's own before a hold is taken and forgotten once released (see ownHolds).
        const batch = (step: number) => plan.holds.filter((x) => x.afterStep === step);
        const taking = (actions: readonly HoldAction[]) => {
          for (const h of actions) if (h.op === 'hold') own.set(h.snapshot, h.side);
        };
        const done = (actions: readonly HoldAction[]) => {
          for (const h of actions) if (h.op === 'release') own.delete(h.snapshot);
        };
        const runHolds = async (actions: readonly HoldAction[]) => {
          taking(actions);
          await Promise.all((['source', 'target'] as const).map((side) => applyHolds(zfsOf(side), actions.filter((h) => h.side === side), ctx.signal)));
          done(actions);
        };
        const steps = plan.kind === 'send' ? plan.steps : [];
        const mode = vector.spec.transport?.mode ?? 'Direct';
        // A stream run by a shell on the primary (Direct, or a local pipe) carries its step's hold moves in its own
        // session: the source's before the stream and after the receive, the target's in the guard's receive (or
        // the local shell). The source's first hold goes with the first stream; the target's before it cannot.
        const carried = steps.length > 0 && (mode === 'Direct' || primary.metadata.name === storage.metadata.name);
        const first = batch(-1);
        // The event goes to the API server while the machines take the first holds: neither waits for the other.
        const announced = plan.kind === 'send'
          ? events.record(vector, 'Normal', 'SyncStarted', `sending ${plan.steps.length} stream(s) to ${storage.metadata.name}: ${plan.steps.map(describeStep).join('; ')}`)
          : Promise.resolve();
        const prepared = (async () => {
          if (plan.kind === 'send' && plan.discardPartialReceive) await tgt.zfs.run(['zfs', 'receive', '-A', targetData], { signal: ctx.signal });
          await runHolds(carried ? first.filter((h) => h.side === 'target') : first);
        })();
        await Promise.all([announced, prepared]);
        for (const [i, step] of steps.entries()) {
          const position = { index: i, count: steps.length };
          let lastWrite = clock.now();
          // status.transfer for this step is written while the stream starts, not before it; later writes queue behind it.
          let writing: Promise<unknown> = this.progress(latest, step, 0, position, storage.metadata.name).then((v) => (latest = v), () => undefined);
          const moves = carried ? { before: i === 0 ? first.filter((h) => h.side === 'source') : [], after: batch(i) } : undefined;
          if (moves) taking([...moves.before, ...moves.after]);
          let sent: number;
          try {
            sent = await this.transfer(key, step, plan.flags, paired, src, tgt, targetData, ctx.signal, (b) => {
              totals.transferBytes = b;
              if (clock.now() - lastWrite < TRANSFER_STATUS_INTERVAL_MS) return;
              lastWrite = clock.now();
              writing = writing.then(() => this.progress(latest, step, b, position, storage.metadata.name)).then((v) => (latest = v), () => undefined);
            }, mode, limits, moves);
          } finally {
            // A progress write still in flight must not land after the final status (of success or failure).
            await writing;
          }
          bytes += sent;
          totals.sentBytes += sent;
          totals.transferBytes = 0;
          if (moves) done([...moves.before, ...moves.after]);
          else await runHolds(batch(i));
        }
        // The operator re-checks the whole vector dataset (not only the replica) after every run that sent a stream,
        // through the guard or not: a guard killed by SIGKILL leaves what it received as the stream made it, and a
        // local pipe or Relay receive bypasses the guard (so the re-check also sets the guard's receive mark). Without
        // a stream, only when the listing taken before the run shows something not inert (then no command runs).
        const viaGuard = paired.primary.metadata.name !== paired.storage.metadata.name && mode === 'Direct';
        if (steps.length > 0 || (plan.kind === 'upToDate' && !replicaPropertiesSettled(targetInventory, replica))) {
          const receivedMark = steps.length > 0 ? { receivedMark: { under: targetData, tag: vectorHoldTag(ownerTags(key).current) } } : {};
          const check = await enforceReplicaProperties(tgt.zfs, replica, { signal: ctx.signal, ...receivedMark });
          const repaired = replicaRepairs(check, targetInventory, steps.length > 0 && !viaGuard);
          if (repaired.length > 0) {
            await events.record(vector, 'Warning', 'ReplicaRepaired', `${replica} on ${storage.metadata.name} was not inert; the operator ${repaired.join('; ')}`);
          }
        }
        let pruned: string[] = [];
        if (plan.prunes.length > 0) {
          const results = await tgt.zfs.destroySnapshots(plan.prunes.map((p) => p.name), { signal: ctx.signal });
          pruned = results.filter((r) => r.destroyed).map((r) => r.snapshot);
          const failed = results.filter((r): r is Extract<typeof r, { destroyed: false }> => !r.destroyed);
          if (pruned.length > 0) {
            const why = plan.prunes.filter((p) => pruned.includes(p.name)).map((p) => `${short(p.name)} (${p.reasons.join(', ')})`);
            await events.record(vector, 'Normal', 'ReplicaPruned', `destroyed ${pruned.length} on ${storage.metadata.name} by the remote policy: ${why.join('; ')}`);
          }
          if (failed.length > 0) await events.record(vector, 'Warning', 'ReplicaPruneBlocked', failed.map((f) => `${short(f.snapshot)}: ${f.error.message}`).join('; '));
        }
        return { plan, bytes, pruned };
      };
      // A run holds a transfer slot on both machines, one run per machine at a time, so many vectors on one pair
      // would queue even when there is nothing to send. When the source's controller reports no restore point
      // newer than the last one synced, the run is planned first without the slots; if there is truly nothing to
      // do (no stream, hold, prune or property to set), it ends there, read-only. Anything else is planned again
      // under the slots from fresh listings, so nothing is ever changed on a machine outside them.
      const expectSend = source.newestGuid === undefined || source.newestGuid !== vector.status?.lastSyncedSnapshot?.guid;
      const early = expectSend ? undefined : await planNow();
      const outcome = early && nothingToDo(early, targetData)
        ? await act(early)
        : await withTransferSlots(this.deps.tasks, [primary.metadata.name, storage.metadata.name], primary.metadata.name, key, source.priority, async () => {
            deadline.arm(limits.syncMs);
            return act(await planNow());
          });

      const now = clock.now();
      const { plan } = outcome;
      if (plan.kind === 'wait') {
        return this.write(vector, { state: 'ready', reason: 'NoSourceSnapshot', message: plan.message }, { consecutiveFailures: 0, ...handled }, requeue(30_000), latest);
      }
      const seconds = (performance.now() - started) / 1000;
      const sent = plan.kind === 'send' ? plan.steps : [];
      const newest = sent.at(-1);
      const basesAfter = plan.basesAfter;
      this.bases.set(key, { sourceMachine: primary.metadata.name, source: basesAfter.source, targetMachine: storage.metadata.name, target: basesAfter.target });
      const previous = vector.status?.lastSyncedSnapshot;
      const lastSynced = newest
        ? { name: short(newest.to), guid: newest.toGuid, createdAt: iso(newest.toCreatedAt) }
        : plan.kind === 'upToDate'
          ? { name: short(plan.common.source), guid: plan.common.guid, createdAt: iso(plan.common.createdAt) }
          : previous;
      const common = plan.common ? { name: short(plan.common.target), guid: plan.common.guid, createdAt: iso(plan.common.createdAt) } : undefined;
      const next = schedule ? nextDue(schedule, now, now) : undefined;
      totals.succeeded += 1;
      this.deps.metrics?.syncDuration.observe({ namespace: totals.namespace, name: totals.name }, seconds);
      const unavailable = plan.flags.unavailable.length > 0 ? `; not available: ${plan.flags.unavailable.join(', ')}` : '';
      // Recorded while the status is written (two independent API calls).
      const succeeded = sent.length > 0
        ? events.record(vector, 'Normal', 'SyncSucceeded', `sent ${sent.length} stream(s), ${bytes} bytes in ${seconds.toFixed(1)}s; replica ${targetData} now at ${lastSynced?.name ?? '?'}${unavailable}`)
        : Promise.resolve();
      const used = (['compressed', 'raw', 'largeBlocks', 'resumable'] as const).filter((f) => plan.flags[f]);
      const transport: NonNullable<VectorStatus['transport']> = {
        mode: primary.metadata.name === storage.metadata.name ? 'LocalPipe' : (vector.spec.transport?.mode ?? 'Direct'),
        flags: used,
        unavailable: plan.flags.unavailable.map((u) => u.slice(0, 256)),
      };
      const fields: VectorStatus = {
        lastSyncTime: iso(now),
        transport,
        ...(lastSynced ? { lastSyncedSnapshot: lastSynced } : {}),
        ...(common ? { commonSnapshot: common } : {}),
        lastSyncBytes: bytes,
        lastSyncDuration: `${seconds.toFixed(3)}s`,
        consecutiveFailures: 0,
        ...handled,
        ...(next !== undefined ? { nextSyncTime: iso(next) } : {}),
      };
      const message = sent.length > 0 ? `replicated ${lastSynced?.name ?? ''} to ${storage.metadata.name} (${bytes} bytes)` : `${targetData} on ${storage.metadata.name} is up to date at ${lastSynced?.name ?? ''}`;
      const [result] = await Promise.all([
        this.write(vector, { state: 'ready', reason: sent.length > 0 ? 'Synced' : 'UpToDate', message }, fields, requeue(next !== undefined ? next - now : MAX_REQUEUE_MS), latest),
        succeeded,
      ]);
      return result;
    } catch (err) {
      if (operatorSignal.aborted) throw err;
      totals.transferBytes = 0;
      const failures = (vector.status?.consecutiveFailures ?? 0) + 1;
      const retryMs = backoffDelay(failures, SYNC_BACKOFF);
      if (deadline.fired) {
        // The stream (if one ran) was ended on the machines: ZFS keeps no half-received snapshot (an interrupted
        // `receive -s` state is discarded by the next run's plan), and the held base stays, so the retry sends that
        // step again incrementally.
        totals.failed += 1;
        const at = latest.status?.transfer?.snapshot;
        const message = `sync to ${storage.metadata.name} took longer than spec.transport.syncTimeout (${formatDuration(limits.syncMs)}) and was ended${at ? ` while sending ${at}` : ''}; the base stays held and the retry sends that step again from it; retrying in ${Math.round(retryMs / 1000)}s (raise syncTimeout if a run needs longer)`;
        await events.record(vector, 'Warning', 'SyncTimedOut', message);
        return this.write(vector, { state: 'failed', reason: 'SyncTimedOut', message }, { consecutiveFailures: failures, ...handled }, requeue(retryMs), latest);
      }
      const refusal = err instanceof Refusal ? err : err instanceof ZfsError && err.kind === 'conflict' ? divergedOnReceive(err, targetData, storage.metadata.name, latest.status?.lastSyncedSnapshot?.name) : undefined;
      if (refusal) {
        totals.stalled += 1;
        await events.record(vector, 'Warning', refusal.reason, refusal.message);
        return this.write(vector, { state: 'stalled', reason: refusal.reason, message: refusal.message }, { consecutiveFailures: failures, ...handled }, requeue(retryMs), latest);
      }
      totals.failed += 1;
      const message = `sync to ${storage.metadata.name} failed: ${(err as Error).message}; retrying in ${Math.round(retryMs / 1000)}s`;
      await events.record(vector, 'Warning', 'SyncFailed', message);
      return this.write(vector, { state: 'failed', reason: 'SyncFailed', message }, { consecutiveFailures: failures, ...handled }, requeue(retryMs), latest);
    } finally {
      deadline.dispose();
      this.inFlight.delete(key);
    }
  }

  /**
   * Writes status.transfer for the step running now, and in the same patch Reconciling=True (Transferring), so
   * kstatus and Argo CD read the vector as in progress while a stream runs; Ready stays what the last run said.
   * The run's final status write (`write`, through `summarize`) removes Reconciling again, or keeps it True with
   * ProgressingWithRetry when the run failed. Returns the object as written (for the next merge patch).
   */
  private async progress(vector: Vector, step: SendStep, bytes: number, position: { index: number; count: number }, storage: string): Promise<Vector> {
    const now = this.deps.clock.now();
    const snapshot = short(step.to);
    const startedAt = vector.status?.transfer?.snapshot === snapshot ? vector.status.transfer.startedAt : iso(now);
    const what = `${position.index + 1} of ${position.count}: ${stepLabel(step)}${step.resumeToken !== undefined ? ' (resuming)' : ''}`;
    const transfer = { step: what, snapshot, bytes, ...(startedAt ? { startedAt } : {}) };
    const conditions = setCondition(
      vector.status?.conditions,
      { type: 'Reconciling', status: 'True', reason: 'Transferring', message: `sending ${snapshot} to ${storage} (stream ${position.index + 1} of ${position.count}): ${bytes} bytes so far` },
      vector.metadata.generation ?? 0,
      new Date(now),
    );
    return (await writeStatus(this.deps.client, VECTOR, vector, { ...(vector.status ?? {}), transfer, conditions })).object;
  }

  private async plan(
    vector: Vector,
    key: string,
    source: Source,
    policy: RetentionPolicy,
    src: MachineHandle,
    tgt: MachineHandle,
    replica: string,
    targetData: string,
    storageMachine: string,
  ): Promise<Planned> {
    // One `zfs get` per machine and nothing else (capabilities are cached per connection): the source's of its
    // dataset, without pool figures; the target's of the vector's dataset, with the replica's inert properties
    // (so their re-check costs no command when they are right) and the pool only for a remote maxRolling.
    const [srcInv, tgtInv, srcCaps, tgtCaps] = await Promise.all([
      src.zfs.inventory({ roots: [source.dataset], userProperties: [], pools: false }),
      tgt.zfs.capabilities().then((caps) =>
        tgt.zfs.inventory({ roots: [replica], userProperties: [], properties: replicaPolicyFor(caps).properties, pools: policy.spec.maxRolling !== undefined }),
      ),
      src.zfs.capabilities(),
      tgt.zfs.capabilities(),
    ]);
    const targetExists = tgtInv.datasets.some((d) => d.name === targetData);
    // An interrupted `receive -s` (OpenZFS) would refuse every other stream. Its token is decoded on the source
    // (`zfs send -nvt`): the planner continues it only when it brings exactly its first step, else it is discarded
    // (`receive -A`) and the step starts again from the base; an undecodable token is discarded too.
    const token = targetExists && tgtCaps.resumeTokens ? await tgt.zfs.resumeToken(targetData) : undefined;
    const contents = token !== undefined && srcCaps.resumeTokens ? await src.zfs.describeResumeToken(token) : undefined;
    const input = replicationInput({
      now: this.deps.clock.now(),
      vector,
      sourceDataset: source.dataset,
      sourceInventory: srcInv,
      targetDataset: targetData,
      targetInventory: tgtInv,
      policy,
      capabilities: { source: srcCaps, target: tgtCaps },
      ...(token !== undefined ? { resumeToken: token, ...(contents ? { resumeContents: contents } : {}) } : {}),
    });
    // Without `zfs holds` (zfs-fuse) a held snapshot's tags are unknown, so a base this vector held and a run cut
    // short moved past (its stream finished on its own) would stay held for good: the bases this vector is known
    // to hold are marked as its own, so the planner releases them. Another tag may hold them too (a chained
    // vector's): an unknown one is kept beside it, so a released base is not pruned before ZFS says it is free.
    // So are the holds this process took in runs that failed before moving past them, and the point of a step
    // that a stopped operator left in status.transfer (held on the source before its stream began).
    const synced = vector.status?.lastSyncedSnapshot?.name;
    const known = this.bases.get(key);
    const inFlight = vector.status?.transfer?.snapshot;
    const ownBases = new Set([
      ...(synced ? [`${source.dataset}@${synced}`, `${targetData}@${synced}`] : []),
      ...(known ? [known.source, known.target] : []),
      ...(this.ownHolds.get(key)?.keys() ?? []),
      ...(inFlight ? [`${source.dataset}@${inFlight}`] : []),
    ]);
    const mark = (list: readonly ReplicaSnapshot[]) =>
      list.map((s) => (s.held === undefined && ownBases.has(s.name) ? { ...s, held: [input.holdTag, '?'] } : s));
    // The replica may be another vector's source (a chain A → B → C): what that vector needs on this machine (its
    // base, and while it runs every point its streams read, -I intermediates included, which carry no hold) is
    // kept out of this vector's remote prunes, as if held with that vector's tag.
    const neededByOthers = new Map<string, string[]>();
    for (const [snapshot, vectors] of this.protectedSnapshots(storageMachine)) {
      const others = vectors.split(', ').filter((v) => v !== key);
      if (others.length > 0) neededByOthers.set(snapshot, others.map((v) => vectorHoldTag(ownerTags(v).current)));
    }
    const markNeeded = (list: readonly ReplicaSnapshot[]) =>
      list.map((s) => {
        const tags = neededByOthers.get(s.name);
        return tags ? { ...s, held: [...new Set([...(s.held ?? []), ...tags])] } : s;
      });
    const plan = planReplication({
      ...input,
      source: { ...input.source, snapshots: mark(input.source.snapshots) },
      target: { ...input.target, snapshots: markNeeded(mark(input.target.snapshots)) },
    });
    return { plan, targetInventory: tgtInv, sourceSnapshots: input.source.snapshots };
  }

  private async transfer(
    key: string,
    step: SendStep,
    flags: { compressed: boolean; raw: boolean; largeBlocks: boolean; resumable: boolean },
    paired: PairedVector,
    src: MachineHandle,
    tgt: MachineHandle,
    targetData: string,
    signal: AbortSignal,
    onProgress: (bytes: number) => void,
    mode: 'Direct' | 'Relay',
    limits: TransportLimits,
    /** Hold moves carried by the stream's own session (Direct or local only): `before` it, `after` the receive. */
    moves?: { before: readonly HoldAction[]; after: readonly HoldAction[] },
  ): Promise<number> {
    const { primary, storage } = paired;
    const sendOptions = {
      snapshot: step.to,
      ...(step.from !== undefined ? { from: step.from, intermediates: step.mode === 'I' } : {}),
      compressed: flags.compressed,
      raw: flags.raw,
      largeBlocks: flags.largeBlocks,
    };
    const receiveOptions = { noMount: true, resumable: flags.resumable };
    const sameMachine = primary.metadata.name === storage.metadata.name;
    const relayed = !sameMachine && mode === 'Relay';
    let stream: (options: { signal: AbortSignal; onProgress: (bytes: number) => void }) => Promise<{ bytes: number }>;
    if (relayed && moves) throw new TypeError('a relayed stream cannot carry hold moves');
    if (relayed) {
      // Through bdr's own connections to both machines (the primary cannot reach the secondary); counted (and
      // throttled) here.
      const rate = limits.bytesPerSecond !== undefined ? { bytesPerSecond: limits.bytesPerSecond } : {};
      const what = step.resumeToken !== undefined ? { resumeToken: step.resumeToken } : sendOptions;
      stream = (o) => relay(src.zfs, what, tgt.zfs, targetData, receiveOptions, { ...o, ...rate });
    } else {
      const sendArgv = step.resumeToken !== undefined ? await src.zfs.sendResumeArgv(step.resumeToken) : await src.zfs.sendArgv(sendOptions);
      // Direct: the target's moves are words of the guard's receive (+hold/+release, run once it received); the
      // source's run in the primary's shell. A local pipe runs both sides' in its one shell, in plan order.
      const argvOf = (h: HoldAction) => (h.side === 'source' ? src.zfs : tgt.zfs).holdArgv(h.op, h.tag, h.snapshot);
      const inGuard = sameMachine ? [] : (moves?.after ?? []).filter((h) => h.side === 'target');
      const inShell = { before: (moves?.before ?? []).map(argvOf), after: (moves?.after ?? []).filter((h) => !inGuard.includes(h)).map(argvOf) };
      for (const h of inGuard) if (h.tag !== vectorHoldTag(ownerTags(key).current)) throw new TypeError(`the guard moves only its key's tag, not ${h.tag}`);
      const receiveArgv = [...(await tgt.zfs.receiveArgv(targetData, receiveOptions)), ...inGuard.flatMap((h) => [`+${h.op}`, h.snapshot])];
      // The receive's words are this version's: after an upgrade the guard there may still be the old one.
      if (!sameMachine) await ensureGuard(tgt, machinePaths(storage).guard);
      const conn = storage.spec.connection;
      const dir = identityDir(primary, key);
      // The limit is applied on the sending machine (pv), before the stream reaches ssh or the local receive.
      const rate = { bytesPerSecond: limits.bytesPerSecond };
      const argv = sameMachine
        ? meteredTransferArgv(sendArgv, { kind: 'local', receiveArgv }, rate, inShell)
        : meteredTransferArgv(sendArgv, {
            kind: 'direct',
            receiveArgv,
            route: { host: conn.host ?? '', port: conn.port ?? 22, user: conn.user ?? 'root', identityFile: `${dir}/id`, knownHostsFile: `${dir}/known_hosts` },
          }, rate, inShell);
      stream = (o) => runMeteredTransfer(src.connection, argv, targetData, o);
    }
    // The stall watchdog: every byte reported re-arms it; when it fires the stream is ended on the machine.
    const { clock } = this.deps;
    const stop = new AbortController();
    let stalled = false;
    const fire = () => {
      stalled = true;
      stop.abort();
    };
    let timer = clock.setTimeout(fire, limits.stallMs);
    const passOn = () => stop.abort();
    signal.addEventListener('abort', passOn, { once: true });
    try {
      const { bytes } = await stream({
        signal: stop.signal,
        onProgress: (b) => {
          clock.clearTimeout(timer);
          timer = clock.setTimeout(fire, limits.stallMs);
          onProgress(b);
        },
      });
      return bytes;
    } catch (err) {
      if (stalled) throw new Error(`${describeStep(step)}: no byte moved for ${formatDuration(limits.stallMs)} (spec.transport.stallTimeout); the stream was ended`);
      if (err instanceof ThrottleUnavailableError) {
        const relayHint = sameMachine ? '' : ', or set transport.mode: Relay (limited in bdr)';
        throw new Refusal('BandwidthLimitUnavailable', `spec.transport.bandwidthLimit (${describeRate(limits.bytesPerSecond ?? 0)}) is applied with pv on ${primary.metadata.name}, which lacks it; nothing was sent unthrottled. Install pv there (Debian, Ubuntu: apt install pv), remove the limit${relayHint}`);
      }
      throw err;
    } finally {
      clock.clearTimeout(timer);
      signal.removeEventListener('abort', passOn);
    }
  }
}

/**
 * A run's deadline on the injected clock: aborts its signal `arm`'s milliseconds after being armed, and passes
 * on an abort of the operator's signal (then `fired` stays false: the run was stopped, not late).
 */
export class Deadline {
  private readonly controller = new AbortController();
  private timer: Timer | undefined;
  fired = false;

  constructor(
    private readonly clock: Clock,
    private readonly outer: AbortSignal,
  ) {
    if (outer.aborted) this.controller.abort(outer.reason);
    else outer.addEventListener('abort', this.passOn, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  arm(ms: number): void {
    this.timer ??= this.clock.setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error('the sync run passed its syncTimeout'));
    }, ms);
  }

  /** `work`'s result, or the abort reason as soon as the signal aborts (for work that takes no signal). */
  race<T>(work: Promise<T>): Promise<T> {
    const signal = this.controller.signal;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  dispose(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.outer.removeEventListener('abort', this.passOn);
  }

  private readonly passOn = (): void => this.controller.abort(this.outer.reason);
}

/**
 * Runs `run` holding a transfer slot on every machine in `machines`, taken one after the other in name order:
 * two runs between the same machines in opposite directions (A → B, B → A) then queue on the same first slot
 * instead of each holding one and waiting for the other's. `sourceMachine`'s slot is a `send` (the failed-send
 * boost applies to it), the others `receive`.
 */
export function withTransferSlots<T>(tasks: TaskRunner, machines: readonly string[], sourceMachine: string, subject: string, priority: number, run: () => Promise<T>): Promise<T> {
  const order = [...new Set(machines)].sort();
  const take = (i: number): Promise<T> => {
    const machine = order[i];
    if (machine === undefined) return run();
    return tasks.submit({ machine, kind: 'transfer', action: machine === sourceMachine ? 'send' : 'receive', priority, subject, run: () => take(i + 1) });
  };
  return take(0);
}

/**
 * ZFS refused a receive because the replica moved on since its newest snapshot (zfs-fuse has no `written`, so
 * the planner cannot see a write; the receive, never run with -F, is what notices). A refusal, not a failure:
 * retrying cannot help until someone decides what happens to the change, and the message says how.
 */
function divergedOnReceive(err: ZfsError, targetData: string, storage: string, newest: string | undefined): Refusal {
  const rollback = `zfs rollback -r ${targetData}@${newest ?? '<its newest snapshot>'}`;
  return new Refusal(
    'TargetDiverged',
    `the receive into ${targetData} on ${storage} was refused because the replica changed since its newest snapshot (${err.message}); ` +
      `bdr destroys nothing and does not receive with -F. Copy off anything needed from the replica, then on ${storage} run \`${rollback}\` ` +
      `(it discards the changes) and the next sync continues incrementally; or destroy the replica (zfs destroy -r ${targetData}) for a full resend`,
  );
}

/** A hold that is already there, or a release of one that is gone, is what was wanted: done. */
async function applyHold(zfs: ZfsMachine, h: HoldAction, signal?: AbortSignal): Promise<void> {
  try {
    const options = signal ? { signal } : {};
    if (h.op === 'hold') await zfs.hold(h.tag, [h.snapshot], options);
    else await zfs.release(h.tag, [h.snapshot], options);
  } catch (err) {
    if (err instanceof ZfsError && ((h.op === 'hold' && err.kind === 'exists') || (h.op === 'release' && err.kind === 'notFound'))) return;
    throw err;
  }
}

/** A plan with what its run needs besides it: the replica's listing, the source's snapshots. */
interface Planned {
  plan: ReplicationPlan;
  targetInventory: Inventory;
  sourceSnapshots: readonly ReplicaSnapshot[];
}

/**
 * A plan whose run changes nothing on either machine (its listings already said so). The inert properties are
 * judged over the whole vector dataset, the replica's parent (`targetData` is `<vector dataset>/<leaf>`).
 */
function nothingToDo({ plan, targetInventory }: Planned, targetData: string): boolean {
  if (plan.kind === 'refuse' || plan.kind === 'wait') return true;
  const vectorDataset = targetData.slice(0, targetData.lastIndexOf('/'));
  return plan.kind === 'upToDate' && plan.holds.length === 0 && plan.prunes.length === 0 && replicaPropertiesSettled(targetInventory, vectorDataset);
}

/**
 * What a re-check repaired, for the ReplicaRepaired event: every value it set, and every foreign clone. After a
 * stream that bypassed the guard (`unguardedStream`), setting the values of a file system that stream created is
 * the protection itself, not a repair (it was not in the listing taken before the run).
 */
function replicaRepairs(check: ReplicaCheck, before: Inventory, unguardedStream: boolean): string[] {
  const existed = new Set(before.datasets.map((d) => d.name));
  const set = check.fixed
    .filter((f) => !unguardedStream || existed.has(f.dataset))
    .map((f) => `set ${f.dataset} ${f.property}: ${f.was || '""'} (${f.source || '?'}) → ${f.now}`);
  const clones = check.foreignClones.map((c) =>
    c.destroyed ? `destroyed ${c.dataset} (a clone of ${c.origin})` : `could not destroy ${c.dataset} (a clone of ${c.origin}): ${c.error ?? '?'}`,
  );
  return [...set, ...clones];
}

/**
 * One machine's hold moves of one batch, in order. A hold of one snapshot followed by the release of another
 * (the base moving forward) is one command (`moveHold`, which holds before it releases); anything else goes
 * one action at a time.
 */
async function applyHolds(zfs: ZfsMachine, actions: readonly HoldAction[], signal?: AbortSignal): Promise<void> {
  const [first, second] = actions;
  if (actions.length === 2 && first?.op === 'hold' && second?.op === 'release' && first.tag === second.tag) {
    await zfs.moveHold(first.tag, first.snapshot, second.snapshot, signal ? { signal } : {});
    return;
  }
  for (const h of actions) await applyHold(zfs, h, signal);
}

/**
 * The planner's input for one vector from both ends' inventories: shared by the sync and by `bdr plan`, so the
 * printed plan is the acted one.
 */
export function replicationInput(a: {
  now: number;
  vector: Vector;
  sourceDataset: string;
  sourceInventory: Inventory;
  targetDataset: string;
  targetInventory: Inventory;
  policy: RetentionPolicy;
  capabilities: ReplicationInput['capabilities'];
  resumeToken?: string;
  /** The token's decoded guids (`zfs send -nvt`); without them the planner discards the partial receive. */
  resumeContents?: { toGuid: string; fromGuid?: string };
}): ReplicationInput {
  const targetData = a.targetDataset;
  const targetExists = a.targetInventory.datasets.some((d) => d.name === targetData);
  const pool = a.targetInventory.pools.find((p) => p.name === poolOf(targetData));
  const transport = a.vector.spec.transport;
  const token = a.resumeToken;
  return {
    now: a.now,
    source: { dataset: a.sourceDataset, snapshots: snapshotsOf(a.sourceInventory, a.sourceDataset) },
    target: {
      dataset: targetData,
      exists: targetExists,
      snapshots: snapshotsOf(a.targetInventory, targetData),
      ...(token !== undefined
        ? {
            partialReceive: {
              token,
              ...(a.resumeContents ? { toGuid: a.resumeContents.toGuid } : {}),
              ...(a.resumeContents?.fromGuid !== undefined ? { fromGuid: a.resumeContents.fromGuid } : {}),
            },
          }
        : {}),
      ...(pool ? { pool: { sizeBytes: pool.size, allocatedBytes: pool.allocated } } : {}),
    },
    remotePolicy: policyRules(a.policy),
    capabilities: a.capabilities,
    ...(transport
      ? {
          transport: {
            ...(transport.compressed !== undefined ? { compressed: transport.compressed } : {}),
            ...(transport.raw !== undefined ? { raw: transport.raw } : {}),
            ...(transport.largeBlocks !== undefined ? { largeBlocks: transport.largeBlocks } : {}),
            ...(transport.resumable !== undefined ? { resumable: transport.resumable } : {}),
          },
        }
      : {}),
    holdTag: vectorHoldTag(ownerTags(objectKey(a.vector)).current),
  };
}

/** One dataset's snapshots from an inventory, as the planner takes them; a bdr name's instant is the point's time. */
export function snapshotsOf(inventory: Inventory, dataset: string): ReplicaSnapshot[] {
  const prefix = `${dataset}@`;
  return inventory.snapshots
    .filter((s) => s.name.startsWith(prefix))
    .map((s) => ({
      name: s.name,
      guid: s.guid,
      createdAt: instantOfSnapshotName(s.name.slice(prefix.length)) ?? s.creation * 1000,
      ...(s.createtxg !== undefined ? { createTxg: s.createtxg } : {}),
      usedBytes: s.used,
      // No hold at all is known without `zfs holds` (which zfs-fuse lacks); which tags hold it is not.
      ...(s.userrefs === 0 ? { held: [] } : {}),
    }));
}
