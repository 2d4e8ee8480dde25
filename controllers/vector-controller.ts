/**
 * The Vector controller, part 1: pairing and the SSH key lifecycle (replication streams come later).
 *
 * A Vector is paired with a storage machine (its StorageTarget's choice, sticky, or its machineRef), gets one
 * ed25519 key pair of its own (a Secret in the operator's namespace), and that key is authorized on the storage
 * machine behind the forced-command guard, limited to the replica dataset, while the primary (the source
 * Dataset's machine, or for a chained vector the source vector's storage machine) gets the private key and a
 * known_hosts pinning the storage machine. Keys rotate every keyRotation.interval with an overlap (the incoming
 * key is authorized before the primary switches, the old one revoked after), the finalizer revokes and removes
 * everything, and re-pairing moves the authorization.
 *
 * A settled Vector costs nothing: the reconcile compares status with what it wants and, when they agree, runs
 * no command and writes nothing. Drift on the machines (entries removed, edited, or left behind) is the
 * sweep's job (vector-sweep.ts), once per machine per probe interval.
 */
import { storageTargetKind, vectorKind } from '../api/kinds/index.ts';
import type { Dataset, Machine, StorageTarget, Vector, VectorStatus } from '../api/types.ts';
import { assertFromPatterns, authorizeKey, editAuthorizedKeys, removeEntries, revokeKey, upsertEntry } from '../nodes/authorized-keys.ts';
import { NodeError } from '../nodes/errors.ts';
import type { NodeConnection } from '../nodes/connection.ts';
import { vectorHoldTag } from '../nodes/guard.ts';
import { sourceAddressFor } from '../nodes/source-address.ts';
import { installVectorIdentity, removeVectorIdentity } from '../nodes/identity.ts';
import { datasetAccess, NOT_GRANTED, storageAreasOf, type StorageArea } from '../planning/dataset-grants.ts';
import { keyRotationInterval } from '../planning/key-rotation.ts';
import { replicaQuota, type QuotaCeiling } from '../planning/quota.ts';
import { ADOPT_ANNOTATION, OWNER_MARK, replicaDestroyPlan } from '../planning/replica-ownership.ts';
import { machineSuspendedVerdict, namespaceAllowed, vectorTargetMachineProblem } from '../planning/tenancy.ts';
import { ZfsError } from '../zfs/errors.ts';
import type { ZfsMachine } from '../zfs/machine.ts';
import { ensureReplicaQuota } from '../zfs/replica.ts';
import { MachineSecretError } from './machine-errors.ts';
import { installGuardOn } from './guard-currency.ts';
import type { MachineConnections } from './machine-connections.ts';
import type { Clock } from './runtime/clock.ts';
import { findCondition, isTrue, removeCondition, setCondition, summarize, type ConditionInput, type Outcome } from './runtime/conditions.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/controller.ts';
import type { EventRecorder } from './runtime/events.ts';
import { addFinalizer, hasFinalizer, removeFinalizer } from './runtime/finalizers.ts';
import { objectKey, type Informer } from './runtime/informer.ts';
import { resourceOf, type KubeClient } from './runtime/kube.ts';
import { writeStatus } from './runtime/status.ts';
import type { TaskRunner } from './task-runner.ts';
import {
  ensureOwnedContainer,
  identityDir,
  identityInput,
  listOwnership,
  machinePaths,
  NotOwnedError,
  outboundOf,
  ownerTags,
  StorageAddressError,
  vectorEntry,
  vectorSourcePath,
  type VectorSourcePath,
} from './vector-layout.ts';
import type { VectorKeys, VectorKeyStore } from './vector-keys.ts';
import { PairingLedger } from './vector-pairing.ts';
import { SYNC_READY_REASONS, type VectorSync } from './vector-sync.ts';

export const VECTOR_FINALIZER = 'bdr.dev/vector';
const VECTOR = resourceOf(vectorKind);
const STORAGE_TARGET = resourceOf(storageTargetKind);
const DEPENDENCY_RETRY_MS = 30_000;
/** KeyAuthorized's reason when source and replica share a machine: no key exists (see localPipe). */
export const LOCAL_PIPE = 'LocalPipe';
/** A settled vector is looked at again at least this often (rotation deadlines further out are re-checked then). */
const MAX_REQUEUE_MS = 6 * 3_600_000;
/** How long a primary's source address towards a storage host is trusted before it is asked again. */
const SOURCE_ADDRESS_TTL_MS = 3_600_000;

export interface VectorControllerDeps {
  client: KubeClient;
  vectors: Informer<Vector>;
  datasets: Informer<Dataset>;
  machines: Informer<Machine>;
  storageTargets: Informer<StorageTarget>;
  connections: MachineConnections;
  keys: VectorKeyStore;
  events: EventRecorder;
  clock: Clock;
  tasks?: TaskRunner;
  ledger?: PairingLedger;
  /** Replication runs (vector-sync.ts), once the vector is paired and its key authorized. */
  sync?: VectorSync;
  /** Labels of a Namespace, for Machines whose allowedNamespaces selects by label. */
  namespaceLabels?: (namespace: string) => Readonly<Record<string, string>>;
}

/** What a Vector resolves to when its references hold. */
interface Resolved {
  primary: Machine;
  storage: Machine;
  replica: string;
  /** The one file system below `replica` the vector receives into (the source dataset's last component). */
  leaf: string;
  /** Why no stream may be sent now although the pairing stands (a ReadOnly StorageTarget). */
  readOnly?: string;
  /** The replica dataset's quota (StorageTarget replicaQuota, or the Vector's target.quota); undefined: none. */
  quotaBytes: number | undefined;
  /** The pairing decision's explanation, for the Paired event. */
  why?: string;
}

type Resolution = { ok: true; value: Resolved } | { ok: false; outcome: Outcome; paired: ConditionInput; retryMs?: number };

/** What the reconciler applied in this process, ahead of the cache (read by the sweep). */
export interface AppliedVector {
  machine: string;
  dataset: string;
  /** Unknown while the source cannot be resolved (its Dataset deleted, say): the storage side still stands. */
  primary?: string;
  /** The from= patterns the key was authorized with (the primary's outboundAddresses, comma-joined). */
  from?: string;
  /** The file system below `dataset` the key may receive into; unknown while the source cannot be resolved. */
  leaf?: string;
}

/** The failure of one step on one machine, classified for conditions. */
class MachineStepError extends Error {
  constructor(
    readonly reason: 'MachineUnreachable' | 'HostKeyMismatch' | 'AuthorizationFailed',
    message: string,
  ) {
    super(message);
  }
}

function classify(machine: string, what: string, err: unknown): MachineStepError {
  if (err instanceof MachineStepError) return err;
  const kind = err instanceof NodeError || err instanceof ZfsError ? err.kind : undefined;
  const message = `${what} on ${machine}: ${(err as Error).message}`;
  if (kind === 'hostKeyMismatch') return new MachineStepError('HostKeyMismatch', message);
  if (kind === 'connectFailed' || kind === 'connectionLost' || kind === 'timeout' || kind === 'authenticationFailed' || err instanceof MachineSecretError) {
    return new MachineStepError('MachineUnreachable', message);
  }
  return new MachineStepError('AuthorizationFailed', message);
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export class VectorReconciler implements Reconciler {
  readonly ledger: PairingLedger;
  private readonly busy = new Set<string>();
  private readonly applied = new Map<string, AppliedVector>();
  private readonly sourceAddresses = new Map<string, { at: number; found: { address: string } | { problem: string } }>();

  constructor(private readonly deps: VectorControllerDeps) {
    this.ledger = deps.ledger ?? new PairingLedger();
  }

  /** Being reconciled right now: the sweep leaves its entries and files alone. */
  isBusy(vectorKey: string): boolean {
    return this.busy.has(vectorKey);
  }

  /** Where the vector's key is authorized and installed, as far as this process knows, else from status. */
  appliedOf(vector: Vector): AppliedVector | undefined {
    const key = objectKey(vector);
    const known = this.applied.get(key);
    if (known) return known;
    const p = vector.status?.pairing;
    if (!p?.machine || !p.dataset || !isTrue(vector.status?.conditions, 'KeyAuthorized')) return undefined;
    // A local pipe has no key anywhere: the sweep wants no entry and no key files for it.
    if (findCondition(vector.status?.conditions, 'KeyAuthorized')?.reason === LOCAL_PIPE) return undefined;
    const primary = this.primaryOf(vector)?.name;
    const leaf = this.sourcePathOf(vector).leaf;
    return { machine: p.machine, dataset: p.dataset, ...(primary !== undefined ? { primary } : {}), ...(leaf !== undefined ? { leaf } : {}), ...(p.from !== undefined ? { from: p.from } : {}) };
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const vector = this.deps.vectors.get(key);
    if (!vector) {
      this.ledger.forget(key);
      this.applied.delete(key);
      this.deps.sync?.forget(key);
      return;
    }
    this.busy.add(key);
    try {
      return await this.reconcileVector(vector, key, ctx);
    } finally {
      this.busy.delete(key);
    }
  }

  private async reconcileVector(vector: Vector, key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    if (vector.metadata.deletionTimestamp) {
      if (hasFinalizer(vector, VECTOR_FINALIZER)) await this.finalize(vector, key, ctx);
      return;
    }
    if (!hasFinalizer(vector, VECTOR_FINALIZER)) {
      // The update this causes brings the Vector back with its finalizer; nothing is authorized before that.
      await addFinalizer(this.deps.client, VECTOR, vector, VECTOR_FINALIZER);
      return;
    }
    if (vector.spec.suspend) {
      return this.finish(vector, { state: 'ready', reason: 'Suspended', message: 'suspended: keys are left as they are' }, {});
    }
    const resolution = await this.resolve(vector, key);
    if (!resolution.ok) {
      const conditions = setCondition(vector.status?.conditions, resolution.paired, vector.metadata.generation ?? 0, new Date(this.deps.clock.now()));
      return this.finish(vector, resolution.outcome, { conditions }, resolution.retryMs);
    }
    const { primary, storage, replica, quotaBytes } = resolution.value;
    const paused = [primary, storage].map(machineSuspendedVerdict).find((v) => !v.ok);
    if (paused && !paused.ok) {
      // Nothing runs on a suspended Machine; resuming it re-queues the vector (the Machine watch).
      const conditions = setCondition(vector.status?.conditions, { type: 'Suspended', status: 'True', reason: paused.reason, message: paused.message }, vector.metadata.generation ?? 0, new Date(this.deps.clock.now()));
      return this.finish(vector, { state: 'ready', reason: paused.reason, message: paused.message }, { conditions });
    }
    if (primary.metadata.name === storage.metadata.name) return this.localPipe(vector, resolution.value, ctx);
    const rotation = keyRotationInterval(vector.spec.keyRotation?.interval);
    const intervalMs = rotation.ok ? rotation.ms : 30 * 86_400_000;

    const { keys } = await this.deps.keys.ensure(vector);
    const now = this.deps.clock.now();
    const due = keys.current.createdAt + intervalMs;
    const status = vector.status ?? {};
    const generation = vector.metadata.generation ?? 0;
    const known = this.applied.get(key);
    const settled =
      status.pairing?.machine === storage.metadata.name &&
      status.pairing.dataset === replica &&
      status.pairing.keyFingerprint === keys.current.fingerprint &&
      status.pairing.quotaBytes === quotaBytes &&
      isTrue(status.conditions, 'KeyAuthorized') &&
      // A Ready the sync wrote (a failed or refused run) is not a key problem: the sync looks again itself.
      (isTrue(status.conditions, 'Ready') || SYNC_READY_REASONS.has(findCondition(status.conditions, 'Ready')?.reason ?? '')) &&
      status.observedGeneration === generation &&
      !findCondition(status.conditions, 'Suspended') &&
      !keys.next &&
      now < due &&
      status.pairing.from !== undefined &&
      status.pairing.from === (await this.expectedFrom(primary, storage)) &&
      (known === undefined || known.from === status.pairing.from) &&
      (known === undefined || known.leaf === resolution.value.leaf) &&
      (known === undefined || (known.primary === primary.metadata.name && known.machine === storage.metadata.name));
    if (settled) {
      const keyRequeueMs = Math.max(1_000, Math.min(MAX_REQUEUE_MS, due - now));
      return this.deps.sync ? this.deps.sync.reconcile(vector, resolution.value, ctx, keyRequeueMs) : { requeueAfterMs: keyRequeueMs };
    }

    try {
      return await this.apply(vector, key, resolution.value, keys, now >= due || keys.next !== undefined, intervalMs);
    } catch (err) {
      if (err instanceof NotOwnedError) return this.notOwned(vector, err);
      if (ctx.signal.aborted) throw err;
      const failure = err instanceof MachineStepError ? err : err instanceof StorageAddressError ? new MachineStepError('AuthorizationFailed', err.message) : undefined;
      if (!failure) throw err;
      await this.deps.events.record(vector, 'Warning', failure.reason, failure.message);
      const at = new Date(this.deps.clock.now());
      // The pairing stands (sticky in this process); status.pairing follows once the key is authorized there.
      let conditions = setCondition(status.conditions, { type: 'Paired', status: 'True', reason: 'Paired', message: `replica ${replica} on ${storage.metadata.name}` }, generation, at);
      conditions = setCondition(conditions, { type: 'KeyAuthorized', status: 'False', reason: failure.reason, message: failure.message }, generation, at);
      const outcome: Outcome =
        failure.reason === 'HostKeyMismatch'
          ? { state: 'stalled', reason: failure.reason, message: `${failure.message}; pin the machine's current key in its spec.connection.hostKey` }
          : err instanceof StorageAddressError
            ? { state: 'stalled', reason: failure.reason, message: failure.message }
            : { state: 'failed', reason: failure.reason, message: failure.message };
      await this.finish(vector, outcome, { conditions });
      if (outcome.state === 'stalled') return;
      throw failure;
    }
  }

  /**
   * Source and replica on one machine: bdr runs both ends itself (`zfs send | zfs receive` there, vector-sync.ts),
   * so no key is made, authorized or installed; an SSH-less (local) machine needs none. KeyAuthorized=True with
   * reason LocalPipe says so. Entries and key files of an earlier keyed pairing are the sweep's to remove.
   */
  private async localPipe(vector: Vector, resolved: Resolved, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { storage, replica, quotaBytes } = resolved;
    const key = objectKey(vector);
    const status = vector.status ?? {};
    const generation = vector.metadata.generation ?? 0;
    const machine = storage.metadata.name;
    const settled =
      status.pairing?.machine === machine &&
      status.pairing.dataset === replica &&
      status.pairing.keyFingerprint === undefined &&
      status.pairing.quotaBytes === quotaBytes &&
      findCondition(status.conditions, 'KeyAuthorized')?.reason === LOCAL_PIPE &&
      (isTrue(status.conditions, 'Ready') || SYNC_READY_REASONS.has(findCondition(status.conditions, 'Ready')?.reason ?? '')) &&
      status.observedGeneration === generation &&
      !findCondition(status.conditions, 'Suspended');
    if (settled) return this.deps.sync ? this.deps.sync.reconcile(vector, resolved, ctx, MAX_REQUEUE_MS) : { requeueAfterMs: MAX_REQUEUE_MS };
    this.applied.delete(key);
    try {
      const { zfs } = await this.step(storage, 'connecting', () => this.deps.connections.get(storage));
      await this.claim(vector, storage, zfs, replica);
      await this.step(storage, `setting the quota of ${replica}`, () => ensureReplicaQuota(zfs, replica, quotaBytes));
    } catch (err) {
      if (err instanceof NotOwnedError) return this.notOwned(vector, err);
      if (ctx.signal.aborted || !(err instanceof MachineStepError)) throw err;
      await this.deps.events.record(vector, 'Warning', err.reason, err.message);
      await this.finish(vector, { state: 'failed', reason: err.reason, message: err.message }, {});
      throw err;
    }
    const at = new Date(this.deps.clock.now());
    if (status.pairing?.machine !== machine) {
      await this.deps.events.record(vector, 'Normal', 'Paired', `paired with ${machine}, replica ${replica}: source and replica on one machine, a local pipe, no key`);
    }
    let conditions = setCondition(status.conditions, { type: 'Paired', status: 'True', reason: 'Paired', message: `replica ${replica} on ${machine}` }, generation, at);
    conditions = setCondition(
      conditions,
      { type: 'KeyAuthorized', status: 'True', reason: LOCAL_PIPE, message: `source and replica are both on ${machine}: bdr pipes zfs send into zfs receive there, no key is needed` },
      generation,
      at,
    );
    const next: VectorStatus = { conditions, pairing: { machine, dataset: replica, ...(quotaBytes !== undefined ? { quotaBytes } : {}) } };
    // finish merges into the old status: pairing is replaced whole, so an old keyFingerprint goes.
    return this.finish(vector, { state: 'ready', reason: 'Succeeded', message: `local pipe on ${machine} into ${replica}` }, next, 1_000);
  }

  /** The dataset the vector sends from and its leaf (vector-layout.ts). */
  sourcePathOf(vector: Vector): VectorSourcePath {
    return vectorSourcePath(vector, (k) => this.deps.datasets.get(k), (k) => this.deps.vectors.get(k));
  }

  /** The machine the vector's primary side runs on: the source Dataset's, or a source vector's storage machine. */
  primaryOf(vector: Vector): { name: string; problem?: undefined } | { name?: undefined; problem: string } | undefined {
    const ns = vector.metadata.namespace ?? 'default';
    const src = vector.spec.source;
    if (src.datasetRef) {
      const ds = this.deps.datasets.get(`${ns}/${src.datasetRef.name}`);
      if (!ds) return { problem: `Dataset ${ns}/${src.datasetRef.name} does not exist` };
      return { name: ds.spec.machineRef.name };
    }
    if (src.vectorRef) {
      const source = this.deps.vectors.get(`${ns}/${src.vectorRef.name}`);
      if (!source) return { problem: `Vector ${ns}/${src.vectorRef.name} does not exist` };
      const machine = this.applied.get(objectKey(source))?.machine ?? (isTrue(source.status?.conditions, 'KeyAuthorized') ? source.status?.pairing?.machine : undefined);
      if (!machine) return { problem: `source Vector ${ns}/${src.vectorRef.name} is not paired yet` };
      return { name: machine };
    }
    return undefined;
  }

  private async resolve(vector: Vector, key: string): Promise<Resolution> {
    const { machines, storageTargets, vectors } = this.deps;
    const ns = vector.metadata.namespace ?? 'default';
    const notPaired = (reason: string, message: string): ConditionInput => ({ type: 'Paired', status: 'False', reason, message });
    const waiting = (message: string): Resolution => ({
      ok: false,
      outcome: { state: 'failed', reason: 'DependencyNotReady', message },
      paired: notPaired('DependencyNotReady', message),
      retryMs: DEPENDENCY_RETRY_MS,
    });
    const invalid = (reason: string, message: string): Resolution => ({ ok: false, outcome: { state: 'stalled', reason, message }, paired: notPaired(reason, message) });

    const primaryRef = this.primaryOf(vector);
    if (!primaryRef) return invalid('InvalidSpec', 'spec.source names neither a Dataset nor a Vector');
    if (primaryRef.problem !== undefined) return waiting(primaryRef.problem);
    const primary = machines.get(primaryRef.name);
    if (!primary) return waiting(`Machine ${primaryRef.name} (the primary) does not exist`);
    const source = this.sourcePathOf(vector);
    if (source.problem !== undefined) return waiting(source.problem);
    const rotation = keyRotationInterval(vector.spec.keyRotation?.interval);
    if (!rotation.ok) return invalid('InvalidSpec', rotation.problem);

    const target = vector.spec.target;
    let storage: Machine | undefined;
    let replica: string;
    let why: string | undefined;
    let storageArea: StorageArea | undefined;
    if (target.machineRef) {
      storage = machines.get(target.machineRef.name);
      if (!storage) return waiting(`Machine ${target.machineRef.name} does not exist`);
      const roleProblem = vectorTargetMachineProblem(storage);
      if (roleProblem) return invalid('InvalidSpec', roleProblem);
      replica = target.dataset ?? '';
      if (!replica) return invalid('InvalidSpec', 'spec.target.dataset is required with machineRef');
    } else if (target.storageTargetRef) {
      const st = storageTargets.get(target.storageTargetRef.name);
      if (!st) return waiting(`StorageTarget ${target.storageTargetRef.name} does not exist`);
      const parent = st.spec.parentDataset;
      replica = target.dataset ?? `${parent}/${ns}/${vector.metadata.name}`;
      if (!replica.startsWith(`${parent}/${ns}/`)) {
        return invalid(NOT_GRANTED, `spec.target.dataset ${replica} is outside ${parent}/${ns}/, the part of StorageTarget ${st.metadata.name}'s parentDataset that namespace ${ns} may use`);
      }
      storageArea = { storageTarget: st.metadata.name, parentDataset: parent };
      const conflict = this.conflictOf(vector, replica);
      if (conflict) return invalid('TargetConflict', conflict);
      const decision = await this.ledger.decide(st, vector, () => vectors.list(), (n) => machines.get(n));
      if (decision.kind === 'none') {
        return { ok: false, outcome: { state: 'failed', reason: 'NoStorageAvailable', message: decision.message }, paired: notPaired('NoStorageAvailable', decision.message) };
      }
      storage = machines.get(decision.machine);
      if (!storage) return waiting(`Machine ${decision.machine} does not exist`);
      if (decision.kind !== 'keep') why = decision.reason;
      const turn = this.ledger.turnOf(st.metadata.name);
      if (decision.kind !== 'keep' && st.spec.pairing?.strategy === 'RoundRobin' && turn) {
        // The turn is kept in the StorageTarget's status, so the next operator (or a restart) continues it.
        await writeStatus(this.deps.client, STORAGE_TARGET, st, { ...(st.status ?? {}), roundRobin: { lastMachine: turn.cursor, streak: turn.streak } });
      }
    } else {
      return invalid('InvalidSpec', 'spec.target names neither a StorageTarget nor a Machine');
    }
    // Both machines must admit the vector's namespace: bdr runs commands there as root on its behalf; and both
    // paths must lie in what the namespace was given there (planning/dataset-grants.ts). Checked before any
    // conflict with other vectors, whose names a refusal must not reveal across namespaces.
    for (const m of new Set([primary, storage])) {
      const verdict = namespaceAllowed(m, ns, this.deps.namespaceLabels?.(ns) ?? {});
      if (!verdict.ok) return invalid(verdict.reason, verdict.message);
    }
    const sourceAccess = datasetAccess(primary, ns, source.dataset, storageAreasOf(storageTargets.list(), primary.metadata.name));
    if (!sourceAccess.ok) return invalid(sourceAccess.reason, `spec.source: ${sourceAccess.message}`);
    const targetAccess = datasetAccess(storage, ns, replica, storageAreasOf(storageTargets.list(), storage.metadata.name), storageArea);
    if (!targetAccess.ok) return invalid(targetAccess.reason, `spec.target: ${targetAccess.message}`);
    if (target.machineRef) {
      const conflict = this.conflictOf(vector, replica);
      if (conflict) return invalid('TargetConflict', conflict);
      this.ledger.record(key, storage.metadata.name);
    }
    const st = target.storageTargetRef ? storageTargets.get(target.storageTargetRef.name) : undefined;
    const ceilings: QuotaCeiling[] = [
      ...(st ? [{ text: st.spec.replicaQuota, from: 'StorageTarget' as const, name: st.metadata.name }] : []),
      { text: storage.spec.replicaQuota, from: 'Machine' as const, name: storage.metadata.name },
    ];
    const quota = replicaQuota(ceilings, target.quota);
    if (!quota.ok) return invalid(quota.reason ?? 'InvalidSpec', quota.problem);
    // A ReadOnly StorageTarget keeps its replicas and pairing but takes no new stream (the sync says so).
    const readOnly = st?.spec.accessMode === 'ReadOnly'
      ? `StorageTarget ${st.metadata.name} is ReadOnly (spec.accessMode): it keeps the replica but accepts no new stream`
      : undefined;
    try {
      assertFromPatterns(outboundOf(primary));
    } catch (err) {
      return invalid('InvalidSpec', `Machine ${primary.metadata.name} spec.outboundAddresses: ${(err as Error).message}`);
    }
    return {
      ok: true,
      value: { primary, storage, replica, leaf: source.leaf, quotaBytes: quota.value.bytes, ...(why !== undefined ? { why } : {}), ...(readOnly !== undefined ? { readOnly } : {}) },
    };
  }

  /**
   * Another vector writing into the same replica, or into one nested in it (whose key could then reach this
   * one's): the older vector keeps it, the newer one is refused.
   */
  private conflictOf(vector: Vector, replica: string): string | undefined {
    const ns = vector.metadata.namespace ?? 'default';
    const where = (v: Vector) => v.spec.target.machineRef ? `machine:${v.spec.target.machineRef.name}` : `target:${v.spec.target.storageTargetRef?.name ?? ''}`;
    const mine = where(vector);
    const older = (a: Vector, b: Vector) => (a.metadata.creationTimestamp ?? '') < (b.metadata.creationTimestamp ?? '') || ((a.metadata.creationTimestamp ?? '') === (b.metadata.creationTimestamp ?? '') && objectKey(a) < objectKey(b));
    // Only the vector's own namespace: grants keep namespaces' datasets apart (a vector of another namespace that
    // overlaps is refused itself), so another namespace's vector, refused or not, can never block this one.
    for (const other of this.deps.vectors.list().filter((v) => (v.metadata.namespace ?? 'default') === ns)) {
      if (objectKey(other) === objectKey(vector) || other.metadata.deletionTimestamp || where(other) !== mine) continue;
      const otherReplica = other.spec.target.dataset ?? (other.spec.target.storageTargetRef
        ? `${this.deps.storageTargets.get(other.spec.target.storageTargetRef.name)?.spec.parentDataset ?? ''}/${other.metadata.namespace ?? 'default'}/${other.metadata.name}`
        : '');
      const overlaps = otherReplica === replica || otherReplica.startsWith(`${replica}/`) || replica.startsWith(`${otherReplica}/`);
      if (overlaps && older(other, vector) && this.targetGranted(other, otherReplica)) {
        return `Vector ${objectKey(other)} already replicates into ${otherReplica}${otherReplica === replica ? '' : `, which overlaps ${replica}`}; give each vector its own target dataset (${ns}/${vector.metadata.name} authorizes nothing until then)`;
      }
    }
    return undefined;
  }

  /**
   * The from= patterns of the vector's key: the primary's spec.outboundAddresses, or else the address the primary
   * reaches the storage machine from, as the primary itself says (nodes/source-address.ts): a stolen key is
   * then refused from anywhere else. Where the primary cannot say (not Linux, no route), the key goes without
   * from= and a Warning says how to set it.
   */
  private async fromFor(vector: Vector, primary: Machine, storage: Machine, primaryConn: NodeConnection): Promise<readonly string[]> {
    const { patterns, problem } = await this.step(primary, 'finding its source address', () => this.keyFrom(primary, storage, primaryConn));
    if (problem) await this.deps.events.record(vector, 'Warning', 'SourceAddressUnknown', `the key is authorized without from=: ${problem}; set spec.outboundAddresses on Machine ${primary.metadata.name}`);
    return patterns;
  }

  /** What fromFor would give, joined as in status.pairing.from; undefined when it cannot be known without failing. */
  private async expectedFrom(primary: Machine, storage: Machine): Promise<string | undefined> {
    try {
      return (await this.keyFrom(primary, storage, (await this.deps.connections.get(primary)).connection)).patterns.join(',');
    } catch {
      return undefined;
    }
  }

  /** Declared patterns, else the derived address (cached), else none with the reason. */
  private async keyFrom(primary: Machine, storage: Machine, conn: NodeConnection): Promise<{ patterns: readonly string[]; problem?: string }> {
    const declared = outboundOf(primary);
    if (declared.length > 0) return { patterns: declared };
    const host = storage.spec.connection.host;
    if (!host) return { patterns: [] };
    const found = await this.sourceAddress(primary, host, conn);
    return 'address' in found ? { patterns: [found.address] } : { patterns: [], problem: found.problem };
  }

  /** The primary's source address towards `host`, asked once per pair and hour (one command on the primary). */
  private async sourceAddress(primary: Machine, host: string, conn: NodeConnection): Promise<{ address: string } | { problem: string }> {
    const key = `${primary.metadata.name}\u0000${host}`;
    const now = this.deps.clock.now();
    const cached = this.sourceAddresses.get(key);
    if (cached && now - cached.at < SOURCE_ADDRESS_TTL_MS) return cached.found;
    const found = await sourceAddressFor(conn, host);
    this.sourceAddresses.set(key, { at: now, found });
    return found;
  }

  /** Whether another vector's target is one its namespace was given (a refused vector blocks nobody). */
  private targetGranted(other: Vector, replica: string): boolean {
    const ns = other.metadata.namespace ?? 'default';
    const { machineRef, storageTargetRef } = other.spec.target;
    if (storageTargetRef) {
      const st = this.deps.storageTargets.get(storageTargetRef.name);
      return st !== undefined && replica.startsWith(`${st.spec.parentDataset}/${ns}/`);
    }
    const machine = machineRef ? this.deps.machines.get(machineRef.name) : undefined;
    return machine !== undefined && datasetAccess(machine, ns, replica, storageAreasOf(this.deps.storageTargets.list(), machine.metadata.name)).ok;
  }

  private async step<T>(machine: Machine, what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (err instanceof NotOwnedError) throw err;
      throw classify(machine.metadata.name, what, err);
    }
  }

  /**
   * Makes the vector's dataset (marked with its uid) or checks that the one there is its own; an unmarked one only
   * by adoption (the bdr.dev/adopt-replica annotation, or a replica an earlier bdr made for it, as its status
   * records). Throws NotOwnedError otherwise: bdr receives into, sets quotas on and destroys only what it made.
   */
  private async claim(vector: Vector, storage: Machine, zfs: ZfsMachine, replica: string): Promise<void> {
    const pairing = vector.status?.pairing;
    const madeBefore = pairing?.dataset === replica && pairing.machine === storage.metadata.name;
    const owner = { uid: vector.metadata.uid ?? '', adoptAnnotation: vector.metadata.annotations?.[ADOPT_ANNOTATION], madeBefore };
    if (owner.uid === '') throw new NotOwnedError(`the Vector has no metadata.uid to mark ${replica} with`);
    const outcome = await this.step(storage, `creating ${replica}`, () => ensureOwnedContainer(zfs, replica, owner));
    if (outcome === 'adopted') {
      const why = owner.adoptAnnotation === replica ? `annotation ${ADOPT_ANNOTATION}` : 'its status records it as made by an earlier bdr';
      await this.deps.events.record(vector, 'Normal', 'ReplicaAdopted', `${replica} on ${storage.metadata.name} marked as this vector's (${OWNER_MARK}, ${why})`);
    }
  }

  /** The target exists and is not this vector's: nothing runs until the user picks another or adopts it. */
  private async notOwned(vector: Vector, err: NotOwnedError): Promise<ReconcileResult> {
    const generation = vector.metadata.generation ?? 0;
    const conditions = setCondition(vector.status?.conditions, { type: 'Paired', status: 'False', reason: 'TargetNotOwned', message: err.message }, generation, new Date(this.deps.clock.now()));
    await this.deps.events.record(vector, 'Warning', 'TargetNotOwned', err.message);
    return this.finish(vector, { state: 'stalled', reason: 'TargetNotOwned', message: err.message }, { conditions });
  }

  private async connection(machine: Machine) {
    return this.step(machine, 'connecting', async () => (await this.deps.connections.get(machine)).connection);
  }

  private async apply(
    vector: Vector,
    key: string,
    resolved: Resolved,
    initialKeys: VectorKeys,
    rotate: boolean,
    intervalMs: number,
  ): Promise<ReconcileResult> {
    const { keys: store, events, clock } = this.deps;
    const { primary, storage, replica, leaf, quotaBytes } = resolved;
    const storageName = storage.metadata.name;
    const paths = machinePaths(storage);
    const owners = ownerTags(key);
    const status = vector.status ?? {};
    const previousMachine = status.pairing?.machine;
    const storageConn = await this.connection(storage);
    const primaryConn = await this.connection(primary);
    const from = await this.fromFor(vector, primary, storage, primaryConn);
    let keys = initialKeys;

    const storageHandle = await this.deps.connections.get(storage);
    const storageZfs = storageHandle.zfs;
    await this.step(storage, 'installing the guard', () => installGuardOn(storageHandle, paths.guard));
    // The key receives below its dataset, never into it: the operator makes it (never mounted), and keeps it.
    await this.claim(vector, storage, storageZfs, replica);
    // The quota sits on the guard's prefix, which the key never receives into: no stream can change it.
    await this.step(storage, `setting the quota of ${replica}`, () => ensureReplicaQuota(storageZfs, replica, quotaBytes));
    // Without a rotation under way, an incoming key's line (left by one that stopped half way) goes in the same
    // edit; with one, the incoming key stays: the primary may already be using it.
    const current = keys.current;
    const staged = keys.next !== undefined;
    await this.step(storage, 'authorizing the key', () =>
      editAuthorizedKeys(
        storageConn,
        (c) => {
          const withCurrent = upsertEntry(c, vectorEntry(storage, key, current.publicKey, replica, leaf, false, from));
          return staged ? withCurrent : removeEntries(withCurrent, owners.next);
        },
        paths.authorizedKeys,
      ),
    );
    const install = (privateKey: string) => {
      const input = identityInput(primary, storage, key, privateKey);
      return this.step(primary, 'installing the key', () => installVectorIdentity(primaryConn, input));
    };

    let rotatedFrom: string | undefined;
    if (rotate) {
      // Overlap: the incoming key is authorized beside the current one, the primary switches to it, and only
      // then is the old one revoked. sshd checks keys when a session starts, so a transfer already running
      // with the old key finishes with it.
      keys = await store.stageNext(keys);
      const next = keys.next;
      if (next) {
        await this.step(storage, 'authorizing the incoming key', () =>
          authorizeKey(storageConn, vectorEntry(storage, key, next.publicKey, replica, leaf, true, from), paths.authorizedKeys),
        );
        await install(next.privateKey);
        rotatedFrom = keys.current.fingerprint;
        keys = await store.promote(keys);
        const promoted = keys.current;
        await this.step(storage, 'revoking the old key', () =>
          editAuthorizedKeys(storageConn, (c) => removeEntries(upsertEntry(c, vectorEntry(storage, key, promoted.publicKey, replica, leaf, false, from)), owners.next), paths.authorizedKeys),
        );
      }
    } else {
      await install(keys.current.privateKey);
    }
    const movedFrom = this.applied.get(key)?.primary;
    this.applied.set(key, { machine: storageName, dataset: replica, primary: primary.metadata.name, from: from.join(','), leaf });
    // The primary moved (a chained source re-paired, or the source Dataset changed): its old files go now; the
    // sweep catches what this misses (an unreachable machine, or a move noticed only after a restart).
    const oldPrimary = movedFrom && movedFrom !== primary.metadata.name ? this.deps.machines.get(movedFrom) : undefined;
    if (oldPrimary) {
      try {
        await removeVectorIdentity((await this.deps.connections.get(oldPrimary)).connection, identityDir(oldPrimary, key));
      } catch (err) {
        await events.record(vector, 'Warning', 'MachineUnreachable', `could not remove the key files on ${oldPrimary.metadata.name} yet: ${(err as Error).message}`);
      }
    }

    let repairedFrom: string | undefined;
    let revokedOld = false;
    if (previousMachine && previousMachine !== storageName) {
      repairedFrom = previousMachine;
      const old = this.deps.machines.get(previousMachine);
      if (old) {
        try {
          const conn = (await this.deps.connections.get(old)).connection;
          const path = machinePaths(old).authorizedKeys;
          await revokeKey(conn, owners.current, path);
          await revokeKey(conn, owners.next, path);
          revokedOld = true;
        } catch (err) {
          // The sweep removes it once the machine answers again; the new pairing does not wait for that.
          await events.record(vector, 'Warning', classify(previousMachine, 'revoking the key', err).reason, `could not revoke the key on ${previousMachine} yet: ${(err as Error).message}`);
        }
      }
    }

    const now = clock.now();
    const fingerprintChanged = status.pairing?.keyFingerprint !== keys.current.fingerprint || previousMachine !== storageName;
    const authorizedAt = fingerprintChanged || !status.pairing?.authorizedAt ? iso(now) : status.pairing.authorizedAt;
    if (!previousMachine) {
      await events.record(vector, 'Normal', 'Paired', `paired with ${storageName}, replica ${replica}${resolved.why ? ` (${resolved.why})` : ''}`);
    }
    if (repairedFrom) {
      const old = revokedOld
        ? `the key is revoked on ${repairedFrom}`
        : this.deps.machines.get(repairedFrom)
          ? `the key is still to be revoked on ${repairedFrom}`
          : `Machine ${repairedFrom} no longer exists`;
      await events.record(vector, 'Normal', 'Repaired', `re-paired from ${repairedFrom} to ${storageName}${resolved.why ? ` (${resolved.why})` : ''}; ${old}`);
    }
    if (rotatedFrom) {
      await events.record(vector, 'Normal', 'KeyRotated', `key ${rotatedFrom} replaced by ${keys.current.fingerprint} on ${storageName} and ${primary.metadata.name}`);
    } else if (fingerprintChanged) {
      await events.record(vector, 'Normal', 'KeyAuthorized', `key ${keys.current.fingerprint} authorized on ${storageName} for ${replica}; installed on ${primary.metadata.name}`);
    }

    const generation = vector.metadata.generation ?? 0;
    const at = new Date(now);
    let conditions = setCondition(status.conditions, { type: 'Paired', status: 'True', reason: 'Paired', message: `replica ${replica} on ${storageName}` }, generation, at);
    conditions = setCondition(
      conditions,
      { type: 'KeyAuthorized', status: 'True', reason: 'Authorized', message: `key ${keys.current.fingerprint} authorized on ${storageName}, installed on ${primary.metadata.name}` },
      generation,
      at,
    );
    const next: VectorStatus = {
      conditions,
      pairing: { machine: storageName, dataset: replica, keyFingerprint: keys.current.fingerprint, authorizedAt, from: from.join(','), ...(quotaBytes !== undefined ? { quotaBytes } : {}) },
    };
    const due = keys.current.createdAt + intervalMs;
    return this.finish(vector, { state: 'ready', reason: 'Succeeded', message: `key ${keys.current.fingerprint} authorized on ${storageName}` }, next, Math.max(1_000, Math.min(MAX_REQUEUE_MS, due - now)));
  }

  /**
   * Revokes the key on the storage machine, removes the key directory on the primary, deletes the Secret and
   * (deletionPolicy Delete) destroys the replica; only then does the Vector go. A machine that cannot be
   * reached keeps the finalizer, and the Vector says which and why.
   */
  private async finalize(vector: Vector, key: string, ctx: ReconcileContext): Promise<void> {
    const { machines, keys, events, client } = this.deps;
    const owners = ownerTags(key);
    const storageName = this.ledger.machineOf(vector);
    const storage = storageName ? machines.get(storageName) : undefined;
    const primaryName = this.applied.get(key)?.primary ?? this.primaryOf(vector)?.name;
    const primary = primaryName ? machines.get(primaryName) : undefined;
    const paused = [storage, primary].flatMap((m) => (m ? [machineSuspendedVerdict(m)] : [])).find((v) => !v.ok);
    if (paused && !paused.ok) {
      await this.finish(vector, { state: 'failed', reason: paused.reason, message: `cannot finish deleting: ${paused.message}` }, {});
      return;
    }
    try {
      // The vector's holds go first: once the key is revoked nothing else would ever release them.
      const sync = this.deps.sync;
      const either = storage ?? primary;
      if (sync && either) await this.step(either, 'releasing the holds', () => sync.releaseHolds(vector, { primary, storage }, ctx.signal));
      if (storage) {
        const conn = await this.connection(storage);
        // revokeKey also fails when a line bdr does not own still authorizes the key: the finalizer then
        // stays and the Vector names the line to remove by hand.
        await this.step(storage, 'revoking the key', async () => {
          await revokeKey(conn, owners.current, machinePaths(storage).authorizedKeys);
          await revokeKey(conn, owners.next, machinePaths(storage).authorizedKeys);
        });
      }
      if (primary) {
        const conn = await this.connection(primary);
        await this.step(primary, 'removing the key files', () => removeVectorIdentity(conn, identityDir(primary, key)));
      }
      const replica = vector.status?.pairing?.dataset;
      if (vector.spec.deletionPolicy === 'Delete' && storage && replica) {
        await this.destroyReplica(vector, storage, replica, vectorHoldTag(owners.current), ctx);
      }
    } catch (err) {
      if (ctx.signal.aborted || !(err instanceof MachineStepError)) throw err;
      await this.finish(vector, { state: 'failed', reason: err.reason, message: `cannot finish deleting: ${err.message}` }, {});
      throw err;
    }
    await keys.remove(vector.metadata.namespace ?? 'default', vector.metadata.name);
    const fingerprint = vector.status?.pairing?.keyFingerprint;
    const revoked = [
      `key${fingerprint ? ` ${fingerprint}` : ''} revoked${storage ? ` on ${storage.metadata.name}` : ''}`,
      ...(primary ? [`removed from ${primary.metadata.name}`] : []),
      'Secret deleted',
    ];
    await events.record(vector, 'Normal', 'KeyRevoked', revoked.join('; '));
    await removeFinalizer(client, VECTOR, vector, VECTOR_FINALIZER);
    this.ledger.forget(key);
    this.applied.delete(key);
  }

  /**
   * deletionPolicy Delete: destroys what this vector made below and at its dataset, nothing else. The dataset
   * must carry the vector's ownership mark; a file system below it that its key did not receive (made by hand,
   * by another object, or by a bdr without marks) is kept with its ancestors, and an event names them.
   */
  private async destroyReplica(vector: Vector, storage: Machine, replica: string, tag: string, ctx: ReconcileContext): Promise<void> {
    const { events, tasks } = this.deps;
    const name = storage.metadata.name;
    const handle = await this.step(storage, 'connecting', () => this.deps.connections.get(storage));
    const listing = await this.step(storage, `listing ${replica}`, () => listOwnership(handle.zfs, replica, ctx.signal));
    const plan = replicaDestroyPlan(replica, vector.metadata.uid ?? '', tag, listing);
    const destroyed: string[] = [];
    for (const dataset of plan.destroy) {
      const destroy = () => handle.zfs.destroyDataset(dataset, { recursive: true, signal: ctx.signal });
      const done = await this.step(storage, `destroying ${dataset}`, () =>
        tasks ? tasks.submit({ machine: name, kind: 'zfs', action: 'prune', priority: 0, run: destroy }) : destroy(),
      );
      if (done) destroyed.push(dataset);
    }
    if (destroyed.length > 0) await events.record(vector, 'Normal', 'ReplicaDestroyed', `deletionPolicy Delete: destroyed ${destroyed.join(', ')} on ${name}`);
    if (plan.kept.length > 0) {
      const why = plan.refused ?? `bdr did not receive ${plan.kept.filter((k) => k !== replica).join(', ')} for this vector, so they and the datasets above them are kept`;
      await events.record(vector, 'Warning', 'ReplicaKept', `deletionPolicy Delete on ${name}: ${why}; kept ${plan.kept.join(', ')}`);
    }
  }

  private async finish(vector: Vector, outcome: Outcome, status: VectorStatus, requeueAfterMs?: number): Promise<ReconcileResult> {
    const generation = vector.metadata.generation ?? 0;
    const base: VectorStatus = { ...(vector.status ?? {}), ...status };
    base.conditions = summarize(status.conditions ?? vector.status?.conditions, outcome, generation, new Date(this.deps.clock.now()));
    // Suspended lasts only while a machine of the vector is suspended.
    if (outcome.reason !== 'MachineSuspended') base.conditions = removeCondition(base.conditions, 'Suspended');
    base.observedGeneration = generation;
    await writeStatus(this.deps.client, VECTOR, vector, base);
    return requeueAfterMs !== undefined ? { requeueAfterMs } : {};
  }
}
