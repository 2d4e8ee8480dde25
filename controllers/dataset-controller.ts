/**
 * The Dataset controller: takes restore points on schedule and prunes bdr's own by the RetentionPolicy.
 * Observe (one inventory per machine, shared), ask planning (planDataset), act through the machine's task
 * slots (snapshot, destroy), write status. Datasets of one machine that are due at the same instant are
 * snapshotted in one command. Nothing but bdr's own, unheld, unprotected snapshots is ever destroyed.
 */
import { datasetKind } from '../api/kinds/index.ts';
import type { Dataset, DatasetStatus, Machine, RetentionPolicy, StorageTarget } from '../api/types.ts';
import { datasetLabels, type DatasetCounters } from '../metrics/dataset-metrics.ts';
import { dueSnapshot, planDataset, type DatasetPlan, type DatasetSnapshot } from '../planning/dataset-plan.ts';
import { parseSchedule, type Schedule } from '../planning/schedule.ts';
import { validateRetentionPolicy } from '../planning/retention.ts';
import { storageAreasOf } from '../planning/dataset-grants.ts';
import { datasetVerdict, inheritedMountpoint, machineSuspendedVerdict, type Verdict } from '../planning/tenancy.ts';
import { ZfsError, type ZfsErrorKind } from '../zfs/errors.ts';
import type { Inventory } from '../zfs/inventory.ts';
import type { ZfsMachine } from '../zfs/machine.ts';
import { datasetPlanInput, datasetSnapshots, OWNER_PROPERTY, OWNER_VALUE, policyRules, poolOf } from './dataset-snapshots.ts';
import type { InventoryCache } from './inventory-cache.ts';
import type { MachineConnections, MachineHandle } from './machine-connections.ts';
import type { Clock } from './runtime/clock.ts';
import { findCondition, removeCondition, setCondition, summarize, type Outcome } from './runtime/conditions.ts';
import { addFinalizer, hasFinalizer, removeFinalizer } from './runtime/finalizers.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/controller.ts';
import type { EventRecorder } from './runtime/events.ts';
import type { Informer } from './runtime/informer.ts';
import { objectKey } from './runtime/informer.ts';
import { resourceOf, type KubeClient } from './runtime/kube.ts';
import { writeStatus } from './runtime/status.ts';
import type { TaskRunner } from './task-runner.ts';

const DATASET = resourceOf(datasetKind);
/** Calendar buckets roll over even when no snapshot is taken; look again at least this often. */
const MAX_REQUEUE_MS = 60 * 60_000;
const DEPENDENCY_RETRY_MS = 30_000;
const TRANSPORT_KINDS = new Set<ZfsErrorKind>(['hostKeyMismatch', 'authenticationFailed', 'connectFailed', 'connectionLost', 'timeout']);

export interface DatasetControllerDeps {
  client: KubeClient;
  datasets: Informer<Dataset>;
  policies: Informer<RetentionPolicy>;
  machines: Informer<Machine>;
  /** StorageTargets: their parents on a machine are no Dataset's to name but their namespaces' replicas'. */
  storageTargets?: Informer<StorageTarget>;
  connections: MachineConnections;
  inventories: InventoryCache;
  tasks: TaskRunner;
  events: EventRecorder;
  clock: Clock;
  /** Re-queues another Dataset (those snapshotted in the same batch update their status). */
  enqueue?: (key: string) => void;
  /** Full snapshot names that vectors need as incremental bases, per machine, each with the vector(s) holding it. */
  protectedSnapshots?: (machine: string) => ReadonlyMap<string, string>;
  /** Labels of a Namespace, for Machines whose allowedNamespaces has a selector; none known without it. */
  namespaceLabels?: (namespace: string) => Readonly<Record<string, string>>;
  metrics?: DatasetCounters;
}

export class DatasetReconciler implements Reconciler {
  private readonly rounds = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: DatasetControllerDeps) {}

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { datasets, policies, machines } = this.deps;
    const ds = datasets.get(key);
    if (!ds) return;
    const ns = ds.metadata.namespace ?? 'default';

    // deletionPolicy Delete: a finalizer lets bdr destroy its restore points before the object goes.
    const wantsCleanup = ds.spec.deletionPolicy === 'Delete';
    if (ds.metadata.deletionTimestamp) {
      if (hasFinalizer(ds)) await this.cleanUp(ds, machines.get(ds.spec.machineRef.name), ctx);
      return;
    }
    if (wantsCleanup !== hasFinalizer(ds)) {
      // The next reconcile, triggered by this very change, continues from the updated object.
      if (wantsCleanup) await addFinalizer(this.deps.client, DATASET, ds);
      else await removeFinalizer(this.deps.client, DATASET, ds);
      return;
    }

    // The Machine's rules come first: a Dataset it refuses gets no command, whatever else is wrong with it.
    const machineObj = machines.get(ds.spec.machineRef.name);
    if (machineObj) {
      const refused = this.refusal(ds, machineObj);
      if (refused) {
        await this.deps.events.record(ds, 'Warning', refused.reason, refused.message);
        return this.finish(ds, { state: 'stalled', reason: refused.reason, message: refused.message }, {});
      }
      const paused = machineSuspendedVerdict(machineObj);
      if (!paused.ok) {
        const conditions = setCondition(ds.status?.conditions, { type: 'Suspended', status: 'True', reason: paused.reason, message: paused.message }, ds.metadata.generation ?? 0, new Date(this.deps.clock.now()));
        // Nothing is due while paused; resuming the Machine re-queues every Dataset on it.
        return this.finish(ds, { state: 'ready', reason: paused.reason, message: paused.message }, { conditions }, undefined, ['nextSnapshotTime']);
      }
    }

    const schedule = parseSchedule(ds.spec.schedule);
    if (!schedule.ok) return this.finish(ds, { state: 'stalled', reason: 'InvalidSchedule', message: schedule.problem }, {});
    const policy = policies.get(`${ns}/${ds.spec.retentionPolicyRef.name}`);
    if (!policy) {
      return this.finish(
        ds,
        { state: 'failed', reason: 'DependencyNotReady', message: `RetentionPolicy ${ns}/${ds.spec.retentionPolicyRef.name} does not exist` },
        {},
        DEPENDENCY_RETRY_MS,
      );
    }
    const policyProblems = validateRetentionPolicy(policyRules(policy));
    if (policyProblems.length > 0) {
      return this.finish(ds, { state: 'stalled', reason: 'InvalidRetentionPolicy', message: policyProblems.join('; ') }, {});
    }
    const machine = machines.get(ds.spec.machineRef.name);
    const machineReady = machine && findCondition(machine.status?.conditions, 'Ready')?.status === 'True';
    if (!machine || !machineReady) {
      const why = machine ? `Machine ${machine.metadata.name} is not Ready` : `Machine ${ds.spec.machineRef.name} does not exist`;
      return this.finish(ds, { state: 'failed', reason: 'DependencyNotReady', message: why }, {}, DEPENDENCY_RETRY_MS);
    }

    const pools = machine.spec.pools ?? [];
    if (pools.length > 0 && !pools.includes(poolOf(ds.spec.name))) {
      return this.finish(ds, {
        state: 'stalled',
        reason: 'PoolNotManaged',
        message: `pool ${poolOf(ds.spec.name)} is not in Machine ${machine.metadata.name}'s spec.pools (${pools.join(', ')}); add it there or fix spec.name`,
      }, {});
    }
    try {
      return await this.act(ds, machine, schedule.value, policy, key, ctx);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      // A failure the user must see in `kubectl get` and `describe`, not only in the operator's log; the
      // work queue's backoff then decides when to try again.
      const message = (err as Error).message;
      const reason = err instanceof ZfsError ? (TRANSPORT_KINDS.has(err.kind) ? 'MachineUnreachable' : 'ZfsCommandFailed') : 'ReconcileFailed';
      await this.deps.events.record(ds, 'Warning', reason, message);
      await this.finish(ds, { state: 'failed', reason, message }, {});
      throw err;
    }
  }

  private async act(ds: Dataset, machine: Machine, scheduleValue: Schedule, policy: RetentionPolicy, key: string, ctx: ReconcileContext): Promise<ReconcileResult> {
    const { clock } = this.deps;
    const generation = ds.metadata.generation ?? 0;
    const now = clock.now();
    const schedule = { value: scheduleValue };
    const handle = await this.deps.connections.get(machine);
    let inventory = await this.inventory(machine, handle);
    if (!inventory.datasets.some((d) => d.name === ds.spec.name)) {
      if (ds.spec.managementPolicy !== 'Create') {
        return this.finish(
          ds,
          { state: 'failed', reason: 'DatasetNotFound', message: `${ds.spec.name} does not exist on ${machine.metadata.name}; create it or set managementPolicy: Create` },
          {},
          DEPENDENCY_RETRY_MS,
        );
      }
      const note = await this.deps.tasks.submit({
        machine: machine.metadata.name,
        kind: 'zfs',
        action: 'build',
        priority: ds.spec.priority,
        run: () => this.create(ds, machine, handle.zfs, ctx.signal),
      });
      this.deps.inventories.invalidate(machine.metadata.name);
      await this.deps.events.record(ds, 'Normal', 'DatasetCreated', `created ${ds.spec.name} on ${machine.metadata.name}${note ? `; ${note}` : ''}`);
      inventory = await this.inventory(machine, handle);
    }

    const protectedBy = this.deps.protectedSnapshots?.(machine.metadata.name) ?? new Map<string, string>();
    const protectedNames = new Set(protectedBy.keys());
    const planFor = (inv: Inventory, at: number): DatasetPlan => planDataset(datasetPlanInput(ds, schedule.value, policy, inv, at, protectedNames));
    let plan = planFor(inventory, now);
    if (plan.take) {
      await this.snapshotRound(machine, handle, now, ctx, key);
      inventory = await this.inventory(machine, handle);
      plan = planFor(inventory, now);
    }

    // A cap the floor prevents: name the vectors whose bases are part of that floor, so the user knows whom to ask.
    const bases = [...protectedBy].filter(([name]) => name.startsWith(`${ds.spec.name}@`)).map(([name, vectors]) => `${short(name)} is the base of vector ${vectors}`);
    let blocked: string[] = plan.unmetCaps.length > 0 ? [...plan.unmetCaps, ...bases] : [];
    if (plan.destroy.length > 0) {
      const results = await this.deps.tasks.submit({
        machine: machine.metadata.name,
        kind: 'zfs',
        action: 'prune',
        priority: ds.spec.priority,
        run: () => handle.zfs.destroySnapshots(plan.destroy, { signal: ctx.signal }),
      });
      this.deps.inventories.invalidate(machine.metadata.name);
      const destroyed = results.filter((r) => r.destroyed).map((r) => r.snapshot);
      this.deps.metrics?.snapshotsPruned.inc(datasetLabels(ds), destroyed.length);
      const failed = results.filter((r): r is Extract<typeof r, { destroyed: false }> => !r.destroyed);
      if (destroyed.length > 0) {
        const reasons = plan.decisions.filter((d) => destroyed.includes(d.name)).map((d) => `${short(d.name)} (${d.reasons.join(', ')})`);
        await this.deps.events.record(ds, 'Normal', 'SnapshotsPruned', `destroyed ${destroyed.length}: ${reasons.join('; ')}`);
      }
      blocked = [...blocked, ...failed.map((f) => `${short(f.snapshot)}: ${f.error.kind === 'busy' ? 'held or in use' : f.error.message}`)];
      // What is left is known without asking ZFS again.
      const gone = new Set(destroyed);
      inventory = { ...inventory, snapshots: inventory.snapshots.filter((s) => !gone.has(s.name)) };
    }
    if (blocked.length > 0) {
      await this.deps.events.record(ds, 'Warning', 'RetentionBlocked', blocked.join('; '));
    }

    const snapshots = datasetSnapshots(inventory, ds.spec.name);
    const status = statusFrom(ds, inventory, snapshots, plan);
    const outcome: Outcome = ds.spec.suspend
      ? { state: 'ready', reason: 'Suspended', message: 'suspended: no snapshots are taken or pruned' }
      : { state: 'ready', reason: 'Succeeded', message: `${status.restorePoints?.count ?? 0} restore point(s); next ${new Date(plan.nextSnapshotAt).toISOString()}` };
    const retentionCondition = blocked.length > 0
      ? { type: 'RetentionApplied', status: 'False' as const, reason: 'RetentionBlocked', message: blocked.join('; ') }
      : { type: 'RetentionApplied', status: 'True' as const, reason: 'Succeeded', message: 'retention policy applied' };
    status.conditions = setCondition(ds.status?.conditions, retentionCondition, generation, new Date(clock.now()));
    status.conditions = ds.spec.suspend
      ? setCondition(status.conditions, { type: 'Suspended', status: 'True', reason: 'DatasetSuspended', message: 'spec.suspend: no snapshots are taken or pruned' }, generation, new Date(clock.now()))
      : removeCondition(status.conditions, 'Suspended');
    const wait = Math.max(1_000, Math.min(MAX_REQUEUE_MS, plan.nextSnapshotAt - clock.now()));
    return this.finish(ds, outcome, status, wait);
  }

  /**
   * Takes every snapshot due on this machine now, in one command where ZFS allows, through one ZFS slot.
   * Serialised per machine: a second dataset arriving while the round runs finds its snapshot already taken.
   */
  private async snapshotRound(machine: Machine, handle: MachineHandle, now: number, ctx: ReconcileContext, requester: string): Promise<void> {
    const name = machine.metadata.name;
    const previous = this.rounds.get(name) ?? Promise.resolve();
    const round = previous.catch(() => undefined).then(async () => {
      // Our own writes invalidate the cache, so a cached inventory already shows snapshots earlier rounds took.
      const inventory = await this.inventory(machine, handle);
      const due: Array<{ key: string; snapshot: string; priority: number }> = [];
      for (const other of this.deps.datasets.list()) {
        if (other.spec.machineRef.name !== name || other.spec.suspend || other.metadata.deletionTimestamp) continue;
        // One command snapshots every due dataset of the machine: the Machine's rules hold for each of them.
        if (this.refusal(other, machine) || !machineSuspendedVerdict(machine).ok) continue;
        const schedule = parseSchedule(other.spec.schedule);
        if (!schedule.ok || !inventory.datasets.some((d) => d.name === other.spec.name)) continue;
        const take = dueSnapshot({ dataset: other.spec.name, schedule: schedule.value as Schedule, snapshots: datasetSnapshots(inventory, other.spec.name), now });
        if (take) due.push({ key: objectKey(other), snapshot: take.name, priority: other.spec.priority });
      }
      if (due.length === 0) return;
      const result = await this.deps.tasks.submit({
        machine: name,
        kind: 'zfs',
        action: 'snapshot',
        priority: Math.max(...due.map((d) => d.priority)),
        run: () => handle.zfs.snapshot(due.map((d) => d.snapshot), { properties: { [OWNER_PROPERTY]: OWNER_VALUE }, signal: ctx.signal }),
      });
      this.deps.inventories.invalidate(name);
      for (const d of due) {
        const obj = this.deps.datasets.get(d.key);
        if (!obj) continue;
        if (result.created.includes(d.snapshot)) {
          this.deps.metrics?.snapshotsCreated.inc(datasetLabels(obj));
          await this.deps.events.record(obj, 'Normal', 'SnapshotCreated', `took ${short(d.snapshot)}${result.atomic && due.length > 1 ? ` with ${due.length - 1} other dataset(s) in one command` : ''}`);
        }
        const failure = result.failed.find((f) => f.name === d.snapshot);
        if (failure) this.deps.metrics?.snapshotFailures.inc(datasetLabels(obj));
        if (failure) await this.deps.events.record(obj, 'Warning', 'SnapshotFailed', failure.error.message);
        // The others snapshotted in this round update their status and prune in their own reconcile.
        if (d.key !== requester) this.deps.enqueue?.(d.key);
      }
      const failedHere = result.failed[0];
      if (failedHere && result.created.length === 0) throw failedHere.error;
    });
    this.rounds.set(name, round);
    try {
      await round;
    } finally {
      if (this.rounds.get(name) === round) this.rounds.delete(name);
    }
  }

  /**
   * Destroys bdr's own restore points of a deleted Dataset (deletionPolicy Delete), then lets it go. Held
   * snapshots (a vector's incremental base) and other tools' snapshots stay; the dataset itself stays too.
   * While the machine cannot be reached the finalizer stays, so nothing is left behind unnoticed.
   */
  private async cleanUp(ds: Dataset, machine: Machine | undefined, ctx: ReconcileContext): Promise<void> {
    if (!machine) throw new Error(`Machine ${ds.spec.machineRef.name} does not exist: cannot destroy the restore points of ${ds.spec.name}`);
    const refused = this.refusal(ds, machine);
    if (refused) {
      // A Dataset the Machine refuses never owned anything there: destroy nothing, let the object go.
      await this.deps.events.record(ds, 'Warning', refused.reason, `${refused.message}; no restore point was destroyed`);
      await removeFinalizer(this.deps.client, DATASET, ds);
      return;
    }
    if (!machineSuspendedVerdict(machine).ok) {
      // Resuming the Machine re-queues this Dataset; the finalizer keeps it until then.
      return;
    }
    const handle = await this.deps.connections.get(machine);
    this.deps.inventories.invalidate(machine.metadata.name);
    const inventory = await this.inventory(machine, handle);
    const protectedNames = this.deps.protectedSnapshots?.(machine.metadata.name) ?? new Map<string, string>();
    const points = datasetSnapshots(inventory, ds.spec.name).filter((s) => s.owned);
    const doomed = points.filter((s) => !s.held && !protectedNames.has(s.name)).map((s) => s.name);
    const results =
      doomed.length === 0
        ? []
        : await this.deps.tasks.submit({
            machine: machine.metadata.name,
            kind: 'zfs',
            action: 'prune',
            priority: ds.spec.priority,
            run: () => handle.zfs.destroySnapshots(doomed, { signal: ctx.signal }),
          });
    this.deps.inventories.invalidate(machine.metadata.name);
    const failed = results.filter((r) => !r.destroyed);
    if (failed.length > 0) throw new Error(`could not destroy ${failed.map((f) => short(f.snapshot)).join(', ')}; will retry`);
    const kept = points.length - doomed.length;
    await this.deps.events.record(
      ds,
      'Normal',
      'SnapshotsPruned',
      `deletionPolicy Delete: destroyed ${doomed.length} restore point(s) of ${ds.spec.name}${kept > 0 ? `; kept ${kept} held as incremental bases` : ''}`,
    );
    await removeFinalizer(this.deps.client, DATASET, ds);
  }

  /**
   * Creates the dataset with its properties. Missing parents are made never-mounted containers (canmount=off), and
   * the dataset itself mounts by inheritance only below the Machine's mountpointRoot (planning/tenancy.ts
   * `inheritedMountpoint`); returns what the event should add about its mountpoint.
   */
  private async create(ds: Dataset, machine: Machine, zfs: ZfsMachine, signal: AbortSignal): Promise<string | undefined> {
    const parts = ds.spec.name.split('/');
    let depth = parts.length - 1;
    let mountpoint: string | undefined;
    // The nearest existing ancestor (the pool at worst): one `zfs get` per missing level.
    for (; depth >= 1; depth--) {
      mountpoint = await zfs.run(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', parts.slice(0, depth).join('/')], { signal }).then(
        (r) => r.stdout.trim(),
        (err: unknown) => {
          if (err instanceof ZfsError && err.kind === 'notFound') return undefined;
          throw err;
        },
      );
      if (mountpoint !== undefined) break;
    }
    const ancestor = parts.slice(0, depth).join('/');
    const inherit = inheritedMountpoint(machine, { name: ds.spec.name, properties: ds.spec.properties }, { name: ancestor, mountpoint: mountpoint ?? 'none' });
    for (let i = depth + 1; i < parts.length; i++) {
      await zfs.createDataset(parts.slice(0, i).join('/'), { properties: { canmount: 'off' }, signal });
    }
    await zfs.createDataset(ds.spec.name, { properties: { ...(ds.spec.properties ?? {}), ...inherit.properties }, signal });
    return inherit.note;
  }

  /** The Machine's tenancy rules for this Dataset: its namespace, then its properties. */
  private refusal(ds: Dataset, machine: Machine): Extract<Verdict, { ok: false }> | undefined {
    const ns = ds.metadata.namespace ?? 'default';
    const areas = storageAreasOf(this.deps.storageTargets?.list() ?? [], machine.metadata.name);
    const verdict = datasetVerdict(machine, { namespace: ns, name: ds.spec.name, properties: ds.spec.properties }, this.deps.namespaceLabels?.(ns) ?? {}, areas);
    return verdict.ok ? undefined : verdict;
  }

  private inventory(machine: Machine, handle: MachineHandle): Promise<Inventory> {
    return this.deps.inventories.get(machine.metadata.name, handle.zfs, machine.spec.pools ?? []);
  }

  private async finish(ds: Dataset, outcome: Outcome, status: DatasetStatus, requeueAfterMs?: number, omit: ReadonlyArray<keyof DatasetStatus> = []): Promise<ReconcileResult> {
    const generation = ds.metadata.generation ?? 0;
    const base: DatasetStatus = { ...(ds.status ?? {}), ...status };
    for (const field of omit) delete base[field];
    let conditions = status.conditions ?? ds.status?.conditions;
    // The Machine was resumed: whatever this reconcile found, it is no longer paused by it.
    if (outcome.reason !== 'MachineSuspended' && findCondition(conditions, 'Suspended')?.reason === 'MachineSuspended') conditions = removeCondition(conditions, 'Suspended');
    base.conditions = summarize(conditions, outcome, generation, new Date(this.deps.clock.now()));
    base.observedGeneration = generation;
    await writeStatus(this.deps.client, DATASET, ds, base);
    return requeueAfterMs !== undefined ? { requeueAfterMs } : {};
  }
}

function short(snapshot: string): string {
  return snapshot.slice(snapshot.indexOf('@') + 1);
}


function statusFrom(ds: Dataset, inventory: Inventory, snapshots: DatasetSnapshot[], plan: DatasetPlan): DatasetStatus {
  const entry = inventory.datasets.find((d) => d.name === ds.spec.name);
  const owned = snapshots.filter((s) => s.owned).sort((a, b) => a.createdAt - b.createdAt);
  const guidOf = (name: string) => inventory.snapshots.find((s) => s.name === name)?.guid;
  const ref = (s: DatasetSnapshot | undefined) =>
    s ? { name: short(s.name), createdAt: iso(s.createdAt), ...(guidOf(s.name) ? { guid: guidOf(s.name) } : {}) } : undefined;
  const newest = owned.at(-1);
  const oldest = owned[0];
  return {
    restorePoints: {
      count: owned.length,
      ...(newest ? { newest: ref(newest) } : {}),
      ...(oldest ? { oldest: ref(oldest) } : {}),
    },
    ...(entry ? { usedBytes: entry.used } : {}),
    usedBySnapshotsBytes: snapshots.reduce((sum, s) => sum + s.usedBytes, 0),
    ...(newest ? { lastSnapshotTime: iso(newest.createdAt) } : {}),
    ...(ds.spec.suspend ? {} : { nextSnapshotTime: iso(plan.nextSnapshotAt) }),
  } as DatasetStatus;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

