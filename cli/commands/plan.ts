/**
 * `bdr plan`: what the Dataset controller would do next, for every Dataset (or those selected), without
 * changing anything. It computes exactly what the controller computes: the same machine inventory (one
 * `zfs get` per machine, over its spec.pools or every pool), the same mapping to planning input
 * (controllers/dataset-snapshots.ts `datasetPlanInput`) and the same pure function (planning/dataset-plan.ts
 * `planDataset`), evaluated at `--at` instead of the wall clock. It only reads: the sole commands it runs on a
 * machine are `zfs get` and `zpool list` (and the read-only capability probe).
 */
import { Command, Option } from 'commander';
import type { Dataset, Machine, RetentionPolicy, Vector } from '../../api/types.ts';
import { datasetPlanInput, policyRules, poolOf } from '../../controllers/dataset-snapshots.ts';
import { isTrue } from '../../controllers/runtime/conditions.ts';
import { replicationInput } from '../../controllers/vector-sync.ts';
import { planReplication, shortNameOf, stepLabel, type ReplicationPlan, type SendMode } from '../../planning/replication.ts';
import { planDataset, snapshotShortName, type DatasetPlan, type DatasetPlanInput } from '../../planning/dataset-plan.ts';
import { validateRetentionPolicy, type RetentionDecision } from '../../planning/retention.ts';
import { describeSchedule, parseSchedule, type Schedule } from '../../planning/schedule.ts';
import { datasetAccess, storageAreasOf } from '../../planning/dataset-grants.ts';
import { datasetVerdict, machineSuspendedVerdict } from '../../planning/tenancy.ts';
import { ZfsError } from '../../zfs/errors.ts';
import type { Inventory } from '../../zfs/inventory.ts';
import type { ZfsMachine } from '../../zfs/machine.ts';
import { EXIT, UserError } from '../errors.ts';
import { connectionError, DEFAULT_NAMESPACE, notDeclared, openObjectSource, type ObjectSource } from '../object-source.ts';
import { isoSeconds, parseTimeArg, relative } from '../time-arg.ts';
import { formatBytes } from './status.ts';

export interface PlannedSnapshot {
  /** Full name, POOL/DATASET@bdr-…. */
  snapshot: string;
  createdAt: string;
  reasons: string[];
}

/** One Dataset's plan, as printed by `-o json`. */
export interface DatasetPlanReport {
  namespace: string;
  name: string;
  machine: string;
  /** The ZFS dataset. */
  dataset: string;
  schedule?: string;
  policy?: string;
  suspended?: boolean;
  /** False when the dataset does not exist yet and the controller would create it first (managementPolicy: Create). */
  exists?: boolean;
  /** The snapshot the controller takes now (it is due at `at`). */
  take?: { snapshot: string; at: string };
  /** The next snapshot after that (or the next one at all when none is due now). */
  next?: { snapshot: string; at: string };
  missed?: number;
  /** bdr's restore points of this dataset now, and snapshots it did not take (never pruned). */
  restorePoints?: number;
  otherSnapshots?: number;
  destroy: PlannedSnapshot[];
  keep: PlannedSnapshot[];
  unmetCaps: string[];
  /**
   * The Machine refuses this Dataset (its allowedNamespaces, or a property or mountpoint it does not allow): the
   * controller runs nothing for it and reports Stalled with this reason. Nothing is planned.
   */
  refused?: { reason: string; message: string };
  /** The Machine is suspended: the controller runs nothing for this Dataset until it is resumed. Nothing is planned. */
  machineSuspended?: { reason: string; message: string };
  /** Why no plan could be made (the rest of the entry is then mostly empty). */
  error?: string;
}

/** One step of a Vector's next sync: `zfs send [-i|-I from] to`, as the Vector controller would run it. */
export interface PlannedStep {
  mode: SendMode;
  /** Incremental base (full source name); absent for a full send. */
  from?: string;
  to: string;
  /** Snapshots the step brings to the target. */
  points: number;
  why: string;
  /** ZFS's estimate of the stream (`zfs send -n -P` with the step's own flags); null where ZFS cannot estimate (zfs-fuse), printed "?". */
  estimatedBytes: number | null;
}

/** One Vector's next sync, computed with the Vector controller's own input and planner (planReplication). */
export interface VectorPlanReport {
  namespace: string;
  name: string;
  /**
   * POOL/DATASET on its Machine, and the replica on the paired storage machine. A chained Vector's source is its
   * source Vector's replica on that Vector's storage machine; `vector` names the source Vector then.
   */
  source?: { machine: string; dataset: string; vector?: string };
  target?: { machine: string; dataset: string };
  /**
   * upToDate, send, wait (no restore point on the source yet; for a chained Vector also: its source Vector is not
   * paired yet) or refuse (the controller sets Stalled).
   */
  kind?: 'upToDate' | 'send' | 'wait' | 'refuse';
  /** The common snapshot both ends hold (matched by guid), the base of the first incremental step. */
  base?: string;
  steps: PlannedStep[];
  /** Target snapshots destroyed after the sends, with the remote policy's reasons. */
  prunes: { snapshot: string; reasons: string[] }[];
  unmetCaps: string[];
  /** Why the controller would not send (wait / refuse): its reason and message. */
  blocked?: { reason: string; message: string };
  /** The Vector is not paired yet (no status.pairing: a repository's Vectors never are); nothing can be planned. */
  notPaired?: string;
  /** The stream running now, as the controller last wrote it (status.transfer, at most every 10 s). */
  transfer?: { step?: string; snapshot?: string; bytes?: number; startedAt?: string };
  suspended?: boolean;
  error?: string;
}

export interface PlanReport {
  /** The instant the plan is evaluated at. */
  at: string;
  source: string;
  datasets: DatasetPlanReport[];
  /** Each Vector's next sync (only when no Dataset is selected by name). */
  vectors: VectorPlanReport[];
  /** Invalid manifests that were skipped (repository mode), `file:line: …`. */
  problems: string[];
}

interface PlanOptions {
  repo?: string;
  kubeconfig?: string;
  at?: string;
  namespace?: string;
  output: 'text' | 'json';
  verbose?: boolean;
}

interface Pending {
  report: DatasetPlanReport;
  ds: Dataset;
  schedule: Schedule;
  policy: RetentionPolicy;
  machine: Machine;
}

/** A failure that belongs to one entry: `runtime` when a machine could not be reached (exit 3). */
const failures = new WeakMap<DatasetPlanReport, 'invalid' | 'runtime'>();
function fail(report: DatasetPlanReport, message: string, kind: 'invalid' | 'runtime' = 'invalid'): DatasetPlanReport {
  report.error = message;
  failures.set(report, kind);
  return report;
}

function describePolicy(ns: string, p: RetentionPolicy): string {
  const s = p.spec;
  const parts: string[] = [];
  for (const k of ['keepLast', 'hourly', 'daily', 'weekly', 'monthly', 'yearly', 'maxSnapshots'] as const) {
    if (s[k] !== undefined) parts.push(`${k} ${s[k]}`);
  }
  if (s.maxRolling) parts.push(`maxRolling ${s.maxRolling.capacityPercent}%`);
  if (s.timeZone && s.timeZone !== 'UTC') parts.push(s.timeZone);
  return `${ns}/${p.metadata.name}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}

const planned = (d: RetentionDecision): PlannedSnapshot => ({ snapshot: d.name, createdAt: isoSeconds(d.createdAt), reasons: [...d.reasons] });

/** Fills a report from planDataset's result; the only place a plan becomes output. */
function fillFromPlan(report: DatasetPlanReport, input: DatasetPlanInput, plan: DatasetPlan): void {
  const prefix = `${input.dataset}@`;
  const owned = input.snapshots.filter((s) => s.owned).length;
  report.restorePoints = owned;
  report.otherSnapshots = input.snapshots.length - owned;
  report.missed = plan.missed;
  if (plan.take) report.take = { snapshot: plan.take.name, at: isoSeconds(plan.take.at) };
  if (!input.suspended) report.next = { snapshot: `${prefix}${snapshotShortName(plan.nextSnapshotAt)}`, at: isoSeconds(plan.nextSnapshotAt) };
  report.destroy = plan.decisions.filter((d) => !d.keep).map(planned);
  report.keep = plan.decisions.filter((d) => d.keep).map(planned);
  report.unmetCaps = [...plan.unmetCaps];
}

type Hold = { kind: 'refused' | 'suspended'; verdict: { reason: string; message: string } };

/**
 * Whether the Dataset controller would leave this Dataset alone because of its Machine: the same tenancy
 * decisions (planning/tenancy.ts), with the Namespace's labels read only when the rule selects by label.
 */
async function machineHold(source: ObjectSource, machine: Machine, ds: Dataset, labelCache: Map<string, Promise<Record<string, string> | undefined>>): Promise<Hold | undefined> {
  const ns = ds.metadata.namespace ?? DEFAULT_NAMESPACE;
  const rule = machine.spec.allowedNamespaces;
  let labels: Record<string, string> | undefined = {};
  if (rule?.selector && !rule.names?.includes(ns)) {
    if (!labelCache.has(ns)) labelCache.set(ns, source.namespaceLabels(ns));
    labels = await labelCache.get(ns);
  }
  const areas = storageAreasOf(await source.storageTargets(), machine.metadata.name);
  const verdict = datasetVerdict(machine, { namespace: ns, name: ds.spec.name, properties: ds.spec.properties }, labels ?? {}, areas);
  if (!verdict.ok) {
    const unknown =
      labels === undefined && verdict.reason === 'NamespaceNotAllowed'
        ? ` (the labels of Namespace ${ns} are not known to the ${source.description}, so only its name was matched; the operator matches the live Namespace's labels)`
        : '';
    return { kind: 'refused', verdict: { reason: verdict.reason, message: `${verdict.message}${unknown}` } };
  }
  const paused = machineSuspendedVerdict(machine);
  return paused.ok ? undefined : { kind: 'suspended', verdict: { reason: paused.reason, message: paused.message } };
}

/**
 * The snapshots each machine's Vectors hold as their next incremental base, by machine: what the operator passes
 * the Dataset controller as `protectedSnapshots` after a restart (status.lastSyncedSnapshot of a Vector whose
 * source is a Dataset), so the plan never shows as "destroy" what the controller keeps. A repository's Vectors
 * have no status: there, as for the operator before a Vector's first sync, the holds on ZFS protect the base.
 */
async function vectorBases(source: ObjectSource, vectors: readonly Vector[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const v of vectors) {
    const synced = v.status?.lastSyncedSnapshot?.name;
    const ref = v.spec.source.datasetRef;
    if (!synced || !ref) continue;
    const ds = await source.dataset(v.metadata.namespace ?? DEFAULT_NAMESPACE, ref.name);
    if (!ds) continue;
    const machine = ds.spec.machineRef.name;
    out.set(machine, (out.get(machine) ?? new Set<string>()).add(`${ds.spec.name}@${synced}`));
  }
  return out;
}

/** Selectors are NAME (in -n's namespace, or default) or NAMESPACE/NAME. */
function selectorKey(sel: string, namespace: string | undefined): string {
  return sel.includes('/') ? sel : `${namespace ?? DEFAULT_NAMESPACE}/${sel}`;
}

export async function buildPlan(source: ObjectSource, at: number, selectors: readonly string[], namespace?: string): Promise<PlanReport> {
  let datasets = await source.datasets(namespace);
  if (selectors.length > 0) {
    const wanted = new Set(selectors.map((s) => selectorKey(s, namespace)));
    const found = new Set(datasets.map((d) => `${d.metadata.namespace ?? DEFAULT_NAMESPACE}/${d.metadata.name}`));
    const missing = [...wanted].filter((k) => !found.has(k));
    if (missing.length > 0) throw new UserError(notDeclared(source, `Dataset ${missing.join(', ')}`), EXIT.invalid);
    datasets = datasets.filter((d) => wanted.has(`${d.metadata.namespace ?? DEFAULT_NAMESPACE}/${d.metadata.name}`));
  }
  datasets.sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));

  const policyCache = new Map<string, Promise<RetentionPolicy | undefined>>();
  const machineCache = new Map<string, Promise<Machine | undefined>>();
  const labelCache = new Map<string, Promise<Record<string, string> | undefined>>();
  const reports: DatasetPlanReport[] = [];
  const pending: Pending[] = [];
  for (const ds of datasets) {
    const ns = ds.metadata.namespace ?? DEFAULT_NAMESPACE;
    const report: DatasetPlanReport = {
      namespace: ns,
      name: ds.metadata.name,
      machine: ds.spec.machineRef.name,
      dataset: ds.spec.name,
      destroy: [],
      keep: [],
      unmetCaps: [],
    };
    reports.push(report);
    if (ds.spec.suspend) report.suspended = true;
    const schedule = parseSchedule(ds.spec.schedule);
    if (schedule.ok) report.schedule = describeSchedule(schedule.value);
    const policyKey = `${ns}/${ds.spec.retentionPolicyRef.name}`;
    if (!policyCache.has(policyKey)) policyCache.set(policyKey, source.retentionPolicy(ns, ds.spec.retentionPolicyRef.name));
    const machineName = ds.spec.machineRef.name;
    if (!machineCache.has(machineName)) machineCache.set(machineName, source.machine(machineName));
    const [policy, machine] = await Promise.all([policyCache.get(policyKey), machineCache.get(machineName)]);
    if (policy) report.policy = describePolicy(ns, policy);
    // The controller's order: the Machine's rules come first, then its suspension, then the Dataset itself.
    if (machine) {
      const held = await machineHold(source, machine, ds, labelCache);
      if (held) {
        if (held.kind === 'refused') {
          report.refused = held.verdict;
          failures.set(report, 'invalid');
        } else {
          report.machineSuspended = held.verdict;
        }
        continue;
      }
    }
    if (!schedule.ok) {
      fail(report, `spec.schedule: ${schedule.problem}`);
      continue;
    }
    if (!policy) {
      fail(report, notDeclared(source, `RetentionPolicy ${policyKey}`));
      continue;
    }
    const problems = validateRetentionPolicy(policyRules(policy));
    if (problems.length > 0) {
      fail(report, `RetentionPolicy ${policyKey} is invalid: ${problems.join('; ')}`);
      continue;
    }
    if (!machine) {
      fail(report, notDeclared(source, `Machine ${machineName}`));
      continue;
    }
    const pools = machine.spec.pools ?? [];
    if (pools.length > 0 && !pools.includes(poolOf(ds.spec.name))) {
      fail(report, `pool ${poolOf(ds.spec.name)} is not in Machine ${machineName}'s spec.pools (${pools.join(', ')}); add it there, or the controller never sees ${ds.spec.name}`);
      continue;
    }
    pending.push({ report, ds, schedule: schedule.value, policy, machine });
  }

  // One connection and one inventory per machine: the controller's own (spec.pools, or every pool).
  const vectors = await source.vectors();
  const bases = await vectorBases(source, vectors);
  const byMachine = new Map<string, Pending[]>();
  for (const p of pending) byMachine.set(p.machine.metadata.name, [...(byMachine.get(p.machine.metadata.name) ?? []), p]);
  await Promise.all(
    [...byMachine.values()].map(async (group) => {
      const machine = (group[0] as Pending).machine;
      const roots = machine.spec.pools ?? [];
      let inventory: Inventory;
      try {
        const handle = await source.connect(machine);
        inventory = await handle.zfs.inventory({ roots });
      } catch (err) {
        if (err instanceof ZfsError && err.kind === 'notFound') {
          // A pool that is not there is a declaration to fix, not an outage.
          for (const p of group) fail(p.report, `cannot list the pools of Machine ${machine.metadata.name} (spec.pools ${roots.join(', ')}): ${err.message}`);
          return;
        }
        const e = connectionError(machine.metadata.name, err);
        for (const p of group) fail(p.report, e.message, e.exitCode === EXIT.runtime ? 'runtime' : 'invalid');
        return;
      }
      for (const p of group) {
        if (!inventory.pools.some((pool) => pool.name === poolOf(p.ds.spec.name))) {
          fail(p.report, `pool ${poolOf(p.ds.spec.name)} does not exist on Machine ${machine.metadata.name}; check the Dataset's spec.name`);
          continue;
        }
        const exists = inventory.datasets.some((d) => d.name === p.ds.spec.name);
        if (!exists && p.ds.spec.managementPolicy !== 'Create') {
          fail(p.report, `${p.ds.spec.name} does not exist on Machine ${machine.metadata.name}; create it or set managementPolicy: Create`);
          continue;
        }
        if (!exists) p.report.exists = false;
        const input = datasetPlanInput(p.ds, p.schedule, p.policy, inventory, at, bases.get(machine.metadata.name));
        fillFromPlan(p.report, input, planDataset(input));
      }
    }),
  );
  const vectorReports = selectors.length > 0 ? [] : await planVectors(source, at, vectors.filter((v) => namespace === undefined || (v.metadata.namespace ?? DEFAULT_NAMESPACE) === namespace), vectors);
  return { at: isoSeconds(at), source: source.description, datasets: reports, vectors: vectorReports, problems: [...source.problems] };
}

const inRepository = (source: ObjectSource): boolean => source.description.startsWith('repository');

/** Where a Vector's stream comes from. */
type VectorSource =
  | {
      machine: string;
      /** The dataset sent from: the source Dataset, or the source Vector's replica. */
      dataset: string;
      /** What to list on `machine` to see `dataset` (it, or for a replica its parent, which exists once paired). */
      listRoot: string;
      /** The last component of the original Dataset's name: the replica's name below spec.target.dataset. */
      leaf: string;
      /** The RetentionPolicy inherited when the Vector names none: the nearest one up the chain, else the Dataset's. */
      policyName: string;
      /** The source Vector (NAMESPACE/NAME) when this one is chained. */
      vector?: string;
    }
  | { waiting: { reason: string; message: string } }
  | { error: string };

/** Chains are short (A → B → C); a longer one is refused as the controller refuses it. */
const MAX_CHAIN = 8;

/**
 * A Vector's source as the Vector controller resolves it (controllers/vector-sync.ts `sourceOf` and
 * vector-controller.ts `primaryOf`): a Dataset on its Machine, or, for `source.vectorRef`, that Vector's replica
 * (`status.pairing.dataset`/LEAF) on its storage machine, which then acts as the primary. Until the source Vector
 * is paired with its key authorized, the controller waits (DependencyNotReady), and so does the plan.
 */
async function vectorSource(source: ObjectSource, v: Vector, byKey: ReadonlyMap<string, Vector>, depth = 0): Promise<VectorSource> {
  const ns = v.metadata.namespace ?? DEFAULT_NAMESPACE;
  const own = v.spec.retentionPolicyRef?.name;
  const dsRef = v.spec.source.datasetRef;
  if (dsRef) {
    const ds = await source.dataset(ns, dsRef.name);
    if (!ds) return { error: notDeclared(source, `Dataset ${ns}/${dsRef.name}`) };
    const leaf = ds.spec.name.split('/').at(-1) ?? ds.spec.name;
    return { machine: ds.spec.machineRef.name, dataset: ds.spec.name, listRoot: ds.spec.name, leaf, policyName: own ?? ds.spec.retentionPolicyRef.name };
  }
  const ref = v.spec.source.vectorRef;
  if (!ref || depth >= MAX_CHAIN) return { error: 'spec.source names neither a Dataset nor a Vector (or the chain is too long)' };
  const key = `${ns}/${ref.name}`;
  const upstream = byKey.get(key);
  if (!upstream) return { error: notDeclared(source, `Vector ${key}`) };
  const up = await vectorSource(source, upstream, byKey, depth + 1);
  if (!('machine' in up)) return up;
  const pairing = upstream.status?.pairing;
  if (!pairing?.machine || !pairing.dataset || !isTrue(upstream.status?.conditions, 'KeyAuthorized')) {
    const hint = inRepository(source) ? ' (a repository holds no status, use --kubeconfig)' : '';
    return { waiting: { reason: 'DependencyNotReady', message: `source Vector ${key} is not paired yet${hint}: this one replicates its replica once it is` } };
  }
  return { machine: pairing.machine, dataset: `${pairing.dataset}/${up.leaf}`, listRoot: pairing.dataset, leaf: up.leaf, policyName: own ?? up.policyName, vector: key };
}

/** As `failures`: `runtime` when a machine could not be reached or answered with an error (exit 3). */
const vectorFailures = new WeakMap<VectorPlanReport, 'invalid' | 'runtime'>();

/**
 * Each Vector's next sync as the Vector controller plans it: the same inventories (the source dataset on its
 * Machine, the replica on the paired storage machine; connections are shared with the Dataset plan), the same
 * input (controllers/vector-sync.ts `replicationInput`) and planReplication, at `at`.
 */
async function planVectors(source: ObjectSource, at: number, vectors: readonly Vector[], all: readonly Vector[]): Promise<VectorPlanReport[]> {
  const byKey = new Map(all.map((v) => [`${v.metadata.namespace ?? DEFAULT_NAMESPACE}/${v.metadata.name}`, v]));
  const sorted = [...vectors].sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  return Promise.all(
    sorted.map(async (v) => {
      const ns = v.metadata.namespace ?? DEFAULT_NAMESPACE;
      const report: VectorPlanReport = { namespace: ns, name: v.metadata.name, steps: [], prunes: [], unmetCaps: [] };
      const failWith = (message: string, kind: 'invalid' | 'runtime' = 'invalid'): VectorPlanReport => {
        report.error = message;
        vectorFailures.set(report, kind);
        return report;
      };
      if (v.spec.suspend) report.suspended = true;
      const from = await vectorSource(source, v, byKey);
      if ('error' in from) return failWith(from.error);
      if ('waiting' in from) {
        report.kind = 'wait';
        report.blocked = from.waiting;
        return report;
      }
      report.source = { machine: from.machine, dataset: from.dataset, ...(from.vector ? { vector: from.vector } : {}) };
      const pairing = v.status?.pairing;
      if (!pairing?.machine || !pairing.dataset) {
        report.notPaired = `not paired yet (no status.pairing${inRepository(source) ? '; a repository holds no status, use --kubeconfig' : ''}): the operator pairs it with a storage machine first`;
        return report;
      }
      const targetData = `${pairing.dataset}/${from.leaf}`;
      report.target = { machine: pairing.machine, dataset: targetData };
      const policyName = from.policyName;
      const [policy, srcMachine, tgtMachine] = await Promise.all([source.retentionPolicy(ns, policyName), source.machine(from.machine), source.machine(pairing.machine)]);
      if (!policy) return failWith(notDeclared(source, `RetentionPolicy ${ns}/${policyName}`));
      if (!srcMachine) return failWith(notDeclared(source, `Machine ${from.machine}`));
      if (!tgtMachine) return failWith(notDeclared(source, `Machine ${pairing.machine}`));
      // What the Vector controller refuses before the sync runs: paths outside the namespace's grants, and no
      // stream into a ReadOnly StorageTarget (planning/dataset-grants.ts; vector-controller.ts `resolve`).
      const targets = await source.storageTargets();
      const st = v.spec.target.storageTargetRef ? targets.find((t) => t.metadata.name === v.spec.target.storageTargetRef?.name) : undefined;
      const granted = [
        datasetAccess(srcMachine, ns, from.dataset, storageAreasOf(targets, srcMachine.metadata.name)),
        datasetAccess(tgtMachine, ns, pairing.dataset, storageAreasOf(targets, tgtMachine.metadata.name), st ? { storageTarget: st.metadata.name, parentDataset: st.spec.parentDataset } : undefined),
      ].find((verdict) => !verdict.ok);
      if (granted && !granted.ok) return failWith(`refused, ${granted.reason}: ${granted.message}; the controller runs nothing for it (Stalled)`);
      if (st?.spec.accessMode === 'ReadOnly') {
        report.kind = 'wait';
        report.blocked = { reason: 'TargetReadOnly', message: `StorageTarget ${st.metadata.name} is ReadOnly (spec.accessMode): it keeps the replica but accepts no new stream` };
        return report;
      }
      let plan: ReplicationPlan;
      let sender: ZfsMachine;
      try {
        const [src, tgt] = await Promise.all([source.connect(srcMachine), source.connect(tgtMachine)]);
        sender = src.zfs;
        const [srcInv, tgtInv, srcCaps, tgtCaps] = await Promise.all([
          // A source Vector's replica exists only after its first sync: list the replica's parent, which its
          // pairing created, so that a missing replica reads as "nothing to send yet" rather than an error.
          src.zfs.inventory({ roots: [from.listRoot] }),
          tgt.zfs.inventory({ roots: [pairing.dataset] }),
          src.zfs.capabilities(),
          tgt.zfs.capabilities(),
        ]);
        const exists = tgtInv.datasets.some((d) => d.name === targetData);
        const token = exists && tgtCaps.resumeTokens ? await tgt.zfs.resumeToken(targetData) : undefined;
        const contents = token !== undefined && srcCaps.resumeTokens ? await src.zfs.describeResumeToken(token) : undefined;
        plan = planReplication(
          replicationInput({
            now: at,
            vector: v,
            sourceDataset: from.dataset,
            sourceInventory: srcInv,
            targetDataset: targetData,
            targetInventory: tgtInv,
            policy,
            capabilities: { source: srcCaps, target: tgtCaps },
            ...(token !== undefined ? { resumeToken: token, ...(contents ? { resumeContents: contents } : {}) } : {}),
          }),
        );
      } catch (err) {
        const unreachable = err instanceof UserError ? err.exitCode === EXIT.runtime : !(err instanceof ZfsError && err.kind === 'notFound');
        return failWith(err instanceof Error ? err.message : String(err), unreachable ? 'runtime' : 'invalid');
      }
      report.kind = plan.kind;
      if (plan.kind === 'wait' && from.vector) {
        report.blocked = { reason: plan.reason, message: `${from.dataset} on Machine ${from.machine} has no restore point yet: it is the replica of Vector ${from.vector}, whose first sync brings one` };
        return report;
      }
      if (plan.kind === 'wait' || plan.kind === 'refuse') {
        report.blocked = { reason: plan.reason, message: plan.message };
        return report;
      }
      if (plan.common) report.base = plan.common.source;
      if (plan.kind === 'send') {
        const { flags } = plan;
        const estimates = await Promise.all(
          plan.steps.map((s) =>
            sender
              .sendEstimate(
                s.resumeToken !== undefined
                  ? { resumeToken: s.resumeToken }
                  : { snapshot: s.to, ...(s.from !== undefined ? { from: s.from, intermediates: s.mode === 'I' } : {}), compressed: flags.compressed, raw: flags.raw, largeBlocks: flags.largeBlocks },
              )
              .catch(() => undefined),
          ),
        );
        report.steps = plan.steps.map((s, i) => ({ mode: s.mode, ...(s.from ? { from: s.from } : {}), to: s.to, points: s.points, why: s.why, estimatedBytes: estimates[i] ?? null }));
      }
      if (v.status?.transfer) report.transfer = { ...v.status.transfer };
      report.prunes = plan.prunes.map((p) => ({ snapshot: p.name, reasons: [...p.reasons] }));
      report.unmetCaps = [...plan.targetUnmetCaps];
      return report;
    }),
  );
}

function renderVector(v: VectorPlanReport, out: string[]): void {
  out.push('');
  const from = v.source ? `${v.source.dataset} on Machine ${v.source.machine}${v.source.vector ? ` (replica of Vector ${v.source.vector})` : ''}` : '?';
  const to = v.target ? `${v.target.dataset} on Machine ${v.target.machine}` : '?';
  out.push(`Vector ${v.namespace}/${v.name}  ${from} → ${to}`);
  if (v.error) {
    out.push(`  error     ${v.error}`);
    return;
  }
  if (v.notPaired) {
    out.push(`  pending   ${v.notPaired}`);
    return;
  }
  if (v.suspended) out.push('  suspended sends nothing (spec.suspend)');
  if (v.blocked) {
    out.push(`  ${v.kind === 'refuse' ? 'stalled  ' : 'waiting  '} ${v.blocked.reason}: ${v.blocked.message}`);
    return;
  }
  if (v.transfer) {
    const t = v.transfer;
    out.push(`  running   ${t.step ?? t.snapshot ?? '?'}: ${t.bytes !== undefined ? formatBytes(t.bytes) : '?'} so far${t.startedAt ? `, since ${t.startedAt}` : ''} (the plan below is for the next run)`);
  }
  out.push(`  base      ${v.base ? shortNameOf(v.base) : 'none: the first step is a full send'}`);
  if (v.kind === 'upToDate') out.push('  send      nothing: the replica is up to date');
  for (const [i, s] of v.steps.entries()) {
    const what = stepLabel(s);
    const size = s.estimatedBytes === null ? '? bytes' : `~${formatBytes(s.estimatedBytes)}`;
    out.push(`  ${i === 0 ? 'send     ' : '         '} ${what}  (${s.points} point(s), ${size})  ${s.why}`);
  }
  if (v.prunes.length === 0) out.push('  prune     nothing');
  for (const [i, p] of v.prunes.entries()) out.push(`  ${i === 0 ? 'prune    ' : '         '} ${shortNameOf(p.snapshot)}  ${p.reasons.join(', ')}`);
  for (const cap of v.unmetCaps) out.push(`  unmet     ${cap}`);
}

const short = (snapshot: string): string => snapshot.slice(snapshot.indexOf('@') + 1);

export function renderPlan(report: PlanReport, at: number, verbose: boolean): string {
  const out: string[] = [];
  out.push(`Plan at ${report.at} from the ${report.source} (read only: nothing was changed)`);
  let takes = 0;
  let destroys = 0;
  for (const d of report.datasets) {
    out.push('');
    out.push(`${d.namespace}/${d.name}  ${d.dataset} on Machine ${d.machine}`);
    if (d.schedule || d.policy) out.push(`  schedule  ${d.schedule ?? '?'}; policy ${d.policy ?? '?'}`);
    if (d.error) {
      out.push(`  error     ${d.error}`);
      continue;
    }
    if (d.refused) {
      out.push(`  refused   ${d.refused.reason}: ${d.refused.message}; the controller runs nothing for it (Stalled)`);
      continue;
    }
    if (d.machineSuspended) {
      out.push(`  suspended ${d.machineSuspended.reason}: ${d.machineSuspended.message}`);
      continue;
    }
    if (d.exists === false) out.push(`  create    ${d.dataset} does not exist yet: the controller creates it first (managementPolicy: Create)`);
    if (d.suspended) out.push('  suspended takes no snapshots and destroys nothing (spec.suspend)');
    out.push(`  points    ${d.restorePoints ?? 0} restore point(s) by bdr${d.otherSnapshots ? `, ${d.otherSnapshots} other snapshot(s) (never pruned)` : ''}`);
    if (d.take) {
      takes++;
      out.push(`  take      ${short(d.take.snapshot)} at ${d.take.at} (due now${d.missed ? `; ${d.missed} scheduled run(s) missed` : ''})`);
    }
    if (d.next) out.push(`  next      ${short(d.next.snapshot)} at ${d.next.at} (${relative(Date.parse(d.next.at), at)})`);
    if (!d.take && d.missed) out.push(`  missed    ${d.missed} scheduled run(s)`);
    destroys += d.destroy.length;
    if (d.destroy.length === 0) out.push('  destroy   nothing');
    for (const [i, s] of d.destroy.entries()) out.push(`  ${i === 0 ? 'destroy  ' : '         '} ${short(s.snapshot)}  ${s.reasons.join(', ')}`);
    if (verbose) {
      for (const [i, s] of d.keep.entries()) out.push(`  ${i === 0 ? 'keep     ' : '         '} ${short(s.snapshot)}  ${s.reasons.join(', ')}`);
    } else if (d.keep.length > 0) {
      out.push(`  keep      ${d.keep.length} (-v lists them with their reasons)`);
    }
    for (const cap of d.unmetCaps) out.push(`  unmet     ${cap}`);
  }
  for (const v of report.vectors) renderVector(v, out);
  out.push('');
  const failed = report.datasets.filter((d) => d.error).length;
  const refused = report.datasets.filter((d) => d.refused).length;
  const paused = report.datasets.filter((d) => d.machineSuspended).length;
  out.push(
    `${report.datasets.length} dataset(s): ${takes} snapshot(s) to take, ${destroys} restore point(s) to destroy` +
      (failed > 0 ? `, ${failed} could not be planned` : '') +
      (refused > 0 ? `, ${refused} refused by their Machine` : '') +
      (paused > 0 ? `, ${paused} on a suspended Machine` : '') +
      (report.datasets.length === 0 ? ' (no Dataset selected)' : ''),
  );
  if (report.vectors.length > 0) {
    const steps = report.vectors.reduce((n, v) => n + v.steps.length, 0);
    const prunes = report.vectors.reduce((n, v) => n + v.prunes.length, 0);
    out.push(`${report.vectors.length} vector(s): ${steps} send step(s), ${prunes} replica snapshot(s) to prune`);
  }
  return `${out.join('\n')}\n`;
}

function exitCodeOf(report: PlanReport): number {
  let code: number = EXIT.ok;
  if (report.problems.length > 0) code = EXIT.invalid;
  for (const v of report.vectors) {
    if (vectorFailures.get(v) === 'runtime') return EXIT.runtime;
    if (vectorFailures.has(v) || v.kind === 'refuse') code = EXIT.invalid;
  }
  for (const d of report.datasets) {
    const kind = failures.get(d);
    if (kind === 'runtime') return EXIT.runtime;
    if (kind === 'invalid') code = EXIT.invalid;
  }
  return code;
}

export function planCommand(): Command {
  return new Command('plan')
    .description('show what the controllers would do next for each Dataset (snapshots to take, restore points to destroy and why) and each Vector (steps to send, replica snapshots to prune); changes nothing')
    .argument('[dataset...]', 'only these Datasets: NAME (in --namespace, default "default") or NAMESPACE/NAME')
    .option('--repo <dir>', 'read the objects from the manifests in DIR (a GitOps repository) instead of a cluster')
    .option('--kubeconfig <file>', 'read the objects from this cluster (default: KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--at <time>', 'evaluate the plan at TIME: RFC 3339 (2026-11-26T10:00:00Z) or relative to now (+2h, -30m)', 'now')
    .option('-n, --namespace <ns>', 'only Datasets in this namespace')
    .addOption(new Option('-o, --output <format>', 'text for people, json for scripts').choices(['text', 'json']).default('text'))
    .option('-v, --verbose', 'also list the restore points that are kept, each with its reason')
    .addHelpText(
      'after',
      `
The plan is the Dataset controller's own: the same inventory of each machine (one zfs get per
machine, however many Datasets live on it), the same mapping and the same planning function
(planDataset), evaluated at --at instead of the clock. So "destroy" lists exactly what the
controller's next reconcile destroys, with the retention reason, and "take" the snapshot it takes.
A Dataset its Machine refuses (namespace not in spec.allowedNamespaces, a property or mountpoint
the Machine does not allow) is shown as refused with the controller's reason, and one on a
suspended Machine as suspended: the controller runs nothing for either, so nothing is planned.
Only snapshots bdr took (user property dev.bdr:owner=bdr, name bdr-<UTC>) are ever destroyed; held
ones, the newest, and each Vector's incremental base (its status.lastSyncedSnapshot, "protected")
are kept. Nothing is written: neither the machines nor the cluster.

Each Vector (when no Dataset is selected by name) is planned like its controller plans a sync:
the same input (replicationInput) from the source dataset's and the paired replica's listings,
the same planner (planReplication). "base" is the common snapshot (matched by guid), each "send"
line one zfs send step (-i BASE → POINT, -I for a run of points, or full), with the remote policy's
reason, and its size as ZFS estimates it (zfs send -n -P with the step's flags; "?" where ZFS
cannot estimate, as zfs-fuse); "prune" the replica's snapshots destroyed after the sends;
"running" a stream in progress (status.transfer). A Vector needs its
status.pairing (the storage machine and replica), so only --kubeconfig plans it; a repository's
Vectors are shown as pending. A Vector whose source is another Vector (a chain A → B → C) sends
from that Vector's replica on its storage machine, by its own remote policy (or the nearest one up
the chain); until that Vector is paired it waits (DependencyNotReady), as its controller does.

With --repo, the manifests are checked like bdr validate; invalid documents are reported as
FILE:LINE and skipped. An SSH Machine's private key comes from a Secret document in the repository.

Exit codes: 0 planned · 1 invalid manifests, a Dataset that cannot be planned or that its
Machine refuses, or a Vector that cannot be planned or whose sync would stall · 3 a machine or the
cluster could not be reached

Examples:
  bdr plan --repo ./gitops                      # every Dataset declared in the repository
  bdr plan --repo ./gitops --at +6h -v          # six hours from now, with what is kept and why
  bdr plan --kubeconfig ~/.kube/config -n prod web01
  bdr plan --at 2026-12-01T00:00:00Z -o json | jq '.datasets[].destroy[].snapshot'`,
    )
    .action(async (selectors: string[], opts: PlanOptions) => {
      const now = Date.now();
      const at = parseTimeArg(opts.at ?? 'now', now);
      const source = await openObjectSource(opts);
      let report: PlanReport;
      try {
        report = await buildPlan(source, at, selectors, opts.namespace);
      } finally {
        await source.close();
      }
      for (const p of report.problems) process.stderr.write(`${p}\n`);
      if (report.problems.length > 0) {
        process.stderr.write(`bdr: ${report.problems.length} problem(s) in the manifests; the objects concerned were skipped (bdr validate says more)\n`);
      }
      if (opts.output === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(renderPlan(report, at, opts.verbose === true));
      process.exitCode = exitCodeOf(report);
    });
}
