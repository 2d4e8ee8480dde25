/**
 * The StorageTarget controller: reports each listed machine's pool figures (from the Machine's own probe: no
 * extra command) and how many vectors it holds, warns when a pool passes warningPercent, and creates the
 * parentDataset (canmount=off, never mounted) on every usable storage machine that lacks it. A listed machine
 * that is not a Machine, not role Storage, or not Ready is named in the Ready condition and takes no vectors.
 *
 * Idle costs nothing: a parentDataset seen once (per Machine uid) is not looked for again, so a settled target
 * reconciles from the informer caches alone, and its status is written only when it changed.
 *
 * `pairingTargetOf` builds the pure pairing input from the same caches, so the Vector controller pairs against
 * exactly what this controller reports.
 */
import { storageTargetKind } from '../api/kinds/index.ts';
import type { Machine, StorageTarget, StorageTargetStatus, Vector } from '../api/types.ts';
import { roundRobinAfter, type PairingDecision, type PairingMachine, type PairingTarget } from '../planning/pairing.ts';
import { ZfsError, type ZfsErrorKind } from '../zfs/errors.ts';
import { poolOf } from './dataset-snapshots.ts';
import type { InventoryCache } from './inventory-cache.ts';
import type { MachineConnections } from './machine-connections.ts';
import type { Clock } from './runtime/clock.ts';
import { findCondition, isTrue, setCondition, summarize, type Outcome } from './runtime/conditions.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/controller.ts';
import type { EventRecorder } from './runtime/events.ts';
import type { Informer } from './runtime/informer.ts';
import { resourceOf, type KubeClient } from './runtime/kube.ts';
import { writeStatus } from './runtime/status.ts';
import type { TaskRunner } from './task-runner.ts';

const STORAGE_TARGET = resourceOf(storageTargetKind);
const RETRY_MS = 30_000;
const DEFAULT_WARNING_PERCENT = 80;
const DEFAULT_CRITICAL_PERCENT = 90;
const DEFAULT_WEIGHT = 100;
const TRANSPORT_KINDS = new Set<ZfsErrorKind>(['hostKeyMismatch', 'authenticationFailed', 'connectFailed', 'connectionLost', 'timeout']);
/** Creating a parent dataset is small, one-off work: it yields to any Dataset's snapshot or prune. */
const CREATE_PRIORITY = 0;

export interface StorageTargetControllerDeps {
  client: KubeClient;
  targets: Informer<StorageTarget>;
  machines: Informer<Machine>;
  vectors: Informer<Vector>;
  connections: MachineConnections;
  inventories: InventoryCache;
  tasks: TaskRunner;
  events: EventRecorder;
  clock: Clock;
}

type MachineFigures = NonNullable<StorageTargetStatus['machines']>[number];

/** The Machine's probe figures for the pool `parentDataset` lives in, if the Machine reports that pool. */
function poolFigures(machine: Machine | undefined, parentDataset: string): { size: number; used: number; free: number } | undefined {
  const pool = machine?.status?.pools?.find((p) => p.name === poolOf(parentDataset));
  if (pool?.sizeBytes === undefined || pool.allocatedBytes === undefined) return undefined;
  return { size: pool.sizeBytes, used: pool.allocatedBytes, free: pool.freeBytes ?? Math.max(0, pool.sizeBytes - pool.allocatedBytes) };
}

/** Vectors paired with each machine through this target (status.pairing is the record of the pairing). */
export function vectorCounts(target: StorageTarget, vectors: readonly Vector[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of vectors) {
    if (v.spec.target.storageTargetRef?.name !== target.metadata.name) continue;
    const machine = v.status?.pairing?.machine;
    if (machine !== undefined) counts.set(machine, (counts.get(machine) ?? 0) + 1);
  }
  return counts;
}

/**
 * The pairing input for a StorageTarget, from the informer caches: machines in spec order with their weight,
 * role, readiness, pool figures and vector counts, and the round-robin state recorded in status.
 */
export function pairingTargetOf(target: StorageTarget, machineOf: (name: string) => Machine | undefined, vectors: readonly Vector[]): PairingTarget {
  const counts = vectorCounts(target, vectors);
  const machines = target.spec.machines.map((entry): PairingMachine => {
    const machine = machineOf(entry.name);
    const figures = poolFigures(machine, target.spec.parentDataset);
    const role = machine?.spec.role;
    return {
      name: entry.name,
      weight: entry.weight ?? DEFAULT_WEIGHT,
      ...(role !== undefined ? { role } : {}),
      ready: machine !== undefined && isTrue(machine.status?.conditions, 'Ready'),
      exists: machine !== undefined,
      ...(figures ? { sizeBytes: figures.size, allocatedBytes: figures.used, freeBytes: figures.free } : {}),
      vectorCount: counts.get(entry.name) ?? 0,
      // Without the pool in the Machine's report the parent cannot be created there: no strategy may pick it.
      ...(machine && !figures ? { unavailable: `does not report pool ${poolOf(target.spec.parentDataset)}` } : {}),
    };
  });
  const rr = target.status?.roundRobin;
  return {
    strategy: target.spec.pairing?.strategy ?? 'MostFree',
    accessMode: target.spec.accessMode ?? 'ReadWrite',
    criticalPercent: target.spec.capacity?.criticalPercent ?? DEFAULT_CRITICAL_PERCENT,
    suspended: target.spec.suspend === true,
    machines,
    ...(rr?.lastMachine !== undefined ? { roundRobinCursor: rr.lastMachine, roundRobinStreak: rr.streak ?? 1 } : {}),
  };
}

/**
 * Records in status.roundRobin where a RoundRobin batch of pairings left the turn, so the next batch continues
 * after it (the Vector controller calls this after pairVectors). Other strategies keep no state. Only the
 * roundRobin field is patched, so it never races this controller's own status writes.
 */
export async function recordRoundRobin(client: KubeClient, target: StorageTarget, decisions: Iterable<PairingDecision>): Promise<void> {
  if (target.spec.pairing?.strategy !== 'RoundRobin') return;
  const rr = target.status?.roundRobin;
  const next = roundRobinAfter({ ...(rr?.lastMachine !== undefined ? { roundRobinCursor: rr.lastMachine } : {}), roundRobinStreak: rr?.streak ?? 1 }, decisions);
  if (next.cursor === undefined) return;
  await writeStatus(client, STORAGE_TARGET, target, { ...(target.status ?? {}), roundRobin: { lastMachine: next.cursor, streak: next.streak } });
}

/** Why a listed machine cannot hold replicas at all (capacity aside); undefined when it can. */
function unusable(machine: Machine | undefined, name: string, parentDataset: string): string | undefined {
  if (!machine) return `${name}: no such Machine`;
  if (machine.spec.role !== 'Storage') return `${name}: role ${machine.spec.role ?? 'Source'}, not Storage`;
  if (!isTrue(machine.status?.conditions, 'Ready')) {
    const ready = findCondition(machine.status?.conditions, 'Ready');
    return `${name}: not Ready${ready ? ` (${ready.reason}: ${ready.message})` : ''}`;
  }
  if (!poolFigures(machine, parentDataset)) {
    return `${name}: does not report pool ${poolOf(parentDataset)} of parentDataset ${parentDataset}${machine.spec.pools?.length ? ' (add it to the Machine\'s spec.pools)' : ''}`;
  }
  return undefined;
}

/** Allocated percent with one decimal, rounded down (so "90.0%" is never shown for 89.99%). */
function percent(used: number, size: number): string {
  return `${(Math.floor((used * 1000) / size) / 10).toFixed(1)}%`;
}

export class StorageTargetReconciler implements Reconciler {
  /** Machine uid + parentDataset known to exist: looked for once, then no command is spent on it. */
  private readonly parentsPresent = new Set<string>();

  constructor(private readonly deps: StorageTargetControllerDeps) {}

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { targets, machines, vectors, clock } = this.deps;
    const target = targets.get(key);
    if (!target) return;
    const parent = target.spec.parentDataset;
    const generation = target.metadata.generation ?? 0;
    const counts = vectorCounts(target, vectors.list());
    const warning = target.spec.capacity?.warningPercent ?? DEFAULT_WARNING_PERCENT;

    const figures: MachineFigures[] = [];
    const problems: string[] = [];
    const aboveWarning: string[] = [];
    const failures: { machine: string; error: Error }[] = [];
    const candidates: Machine[] = [];
    for (const entry of target.spec.machines) {
      const machine = machines.get(entry.name);
      const pool = poolFigures(machine, parent);
      figures.push({
        name: entry.name,
        ...(pool ? { sizeBytes: pool.size, usedBytes: pool.used, freeBytes: pool.free } : {}),
        vectorCount: counts.get(entry.name) ?? 0,
      });
      if (pool && (pool.size <= 0 || pool.used * 100 >= warning * pool.size)) {
        aboveWarning.push(`${entry.name} at ${pool.size > 0 ? percent(pool.used, pool.size) : 'a pool of size 0'} allocated (warningPercent ${warning}%)`);
      }
      const why = unusable(machine, entry.name, parent);
      if (why !== undefined || !machine) problems.push(why ?? `${entry.name}: no such Machine`);
      else candidates.push(machine);
    }
    // In parallel: one unreachable machine must not hold up the others by its connect timeout.
    const results = target.spec.suspend ? [] : await Promise.allSettled(candidates.map((m) => this.ensureParent(target, m, ctx)));
    if (ctx.signal.aborted) throw ctx.signal.reason;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const name = (candidates[i] as Machine).metadata.name;
      const error = r.reason instanceof Error ? r.reason : new Error(String(r.reason));
      failures.push({ machine: name, error });
      problems.push(`${name}: cannot create ${parent}: ${error.message}`);
    });
    const usable = candidates.length - failures.length;

    const now = new Date(clock.now());
    const previousCapacity = findCondition(target.status?.conditions, 'CapacityOK');
    let conditions = setCondition(
      target.status?.conditions,
      aboveWarning.length > 0
        ? { type: 'CapacityOK', status: 'False', reason: 'AboveWarning', message: aboveWarning.join('; ') }
        : { type: 'CapacityOK', status: 'True', reason: 'BelowWarning', message: `every reported pool is below ${warning}% allocated` },
      generation,
      now,
    );
    if (aboveWarning.length > 0 && previousCapacity?.status !== 'False') {
      await this.deps.events.record(target, 'Warning', 'CapacityWarning', aboveWarning.join('; '));
    }

    const listed = target.spec.machines.length;
    const detail = problems.length > 0 ? `; ${problems.join('; ')}` : '';
    let outcome: Outcome;
    if (failures.length > 0) {
      const transport = failures.some((f) => f.error instanceof ZfsError && TRANSPORT_KINDS.has(f.error.kind));
      outcome = { state: 'failed', reason: transport ? 'MachineUnreachable' : 'ParentDatasetFailed', message: `${usable} of ${listed} machine(s) usable${detail}` };
    } else if (usable === 0) {
      outcome = { state: 'failed', reason: 'NoStorageAvailable', message: `no listed machine can hold replicas${detail}` };
    } else {
      outcome = {
        state: 'ready',
        reason: target.spec.suspend ? 'Suspended' : 'Succeeded',
        message: `${usable} of ${listed} machine(s) usable${target.spec.suspend ? ', suspended: no datasets are created and no vectors paired' : ''}${detail}`,
      };
    }
    conditions = summarize(conditions, outcome, generation, now);
    const status: StorageTargetStatus = { ...(target.status ?? {}), machines: figures, conditions, observedGeneration: generation };
    await writeStatus(this.deps.client, STORAGE_TARGET, target, status);
    for (const f of failures) await this.deps.events.record(target, 'Warning', outcome.reason ?? 'ParentDatasetFailed', `${f.machine}: ${f.error.message}`);
    // A missing Machine, a Machine that is not Ready yet, or a full pool is retried when that Machine changes
    // (the operator watches Machines); a failed command is retried on a timer.
    return failures.length > 0 ? { requeueAfterMs: RETRY_MS } : {};
  }

  /** Creates parentDataset unmounted (canmount=off) when the machine lacks it; a no-op once seen there. */
  private async ensureParent(target: StorageTarget, machine: Machine, ctx: ReconcileContext): Promise<void> {
    const parent = target.spec.parentDataset;
    const name = machine.metadata.name;
    const known = `${machine.metadata.uid ?? name}\0${parent}`;
    if (this.parentsPresent.has(known)) return;
    const handle = await this.deps.connections.get(machine);
    const inventory = await this.deps.inventories.get(name, handle.zfs, machine.spec.pools ?? []);
    if (!inventory.datasets.some((d) => d.name === parent)) {
      try {
        await this.deps.tasks.submit({
          machine: name,
          kind: 'zfs',
          action: 'build',
          priority: CREATE_PRIORITY,
          run: () => handle.zfs.createDataset(parent, { parents: true, properties: { canmount: 'off' }, signal: ctx.signal }),
        });
        await this.deps.events.record(target, 'Normal', 'ParentDatasetCreated', `created ${parent} on ${name} (canmount=off)`);
      } catch (err) {
        // Another StorageTarget with the same parent may have created it a moment ago.
        if (!(err instanceof ZfsError && err.kind === 'exists')) throw err;
      } finally {
        this.deps.inventories.invalidate(name);
      }
    }
    this.parentsPresent.add(known);
  }
}
