import { randomUUID } from 'node:crypto';
import { admit } from './admission.ts';
import { CRD_STORAGE_KEY, Registry } from './crd-registry.ts';
import { alreadyExists, badRequest, conflict, forbidden, internal, invalid, notFound } from './errors.ts';
import { GarbageCollector, NS_STORAGE_KEY, refKey } from './gc.ts';
import type { DiskPersistence, LogRecord } from './persistence.ts';
import { apiVersionOf, type ResourceType } from './resources.ts';
import { deepClone, isJsonObject, jsonEqual, nowTimestamp, type JsonObject, type KubeObject, type ObjectMeta } from './types.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  rv: number;
  storageKey: string;
  object: KubeObject;
  /** The object before this write, so watchers can tell when it enters or leaves their selector. */
  previous?: KubeObject;
}

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  dryRun?: boolean;
  fieldValidation?: FieldValidation;
  /** Server-side apply computed metadata.managedFields itself; other writes cannot set them. */
  keepManagedFields?: boolean;
}

export interface WriteResult {
  object: KubeObject;
  warnings: string[];
}

export interface DeleteOptions {
  dryRun?: boolean;
  propagationPolicy?: string;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export type DeleteResult = { kind: 'removed'; object: KubeObject } | { kind: 'marked'; object: KubeObject };

function objKey(ns: string | undefined, name: string): string {
  return `${ns ?? ''}/${name}`;
}

/** Everything outside metadata (and status, when it is a subresource): what generation tracks. */
function specPart(object: KubeObject, rt: ResourceType): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(object)) {
    if (k === 'metadata' || k === 'apiVersion' || k === 'kind' || v === undefined) continue;
    if (k === 'status' && rt.statusSubresource) continue;
    out[k] = v as JsonObject;
  }
  return out;
}

function withoutRv(object: KubeObject): KubeObject {
  const metadata = { ...object.metadata };
  delete metadata.resourceVersion;
  return { ...object, metadata };
}

const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function generateSuffix(): string {
  let out = '';
  for (let i = 0; i < 5; i++) out += GENERATE_ALPHABET[Math.floor(Math.random() * GENERATE_ALPHABET.length)];
  return out;
}

export interface StoreOptions {
  persistence?: DiskPersistence;
  /** How many past events a watch can resume from; older resourceVersions get 410 Expired. */
  historySize?: number;
}

/**
 * The object store: one global resourceVersion, an event history for watch resumption, and the write
 * semantics of kube-apiserver's generic registry. Every method is synchronous, so each request is
 * atomic with respect to every other one without locks.
 */
export class Store {
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly dependents = new Map<string, Set<string>>();
  private readonly byUid = new Map<string, string>();
  private rv = 0;
  private readonly history: StoreEvent[] = [];
  private historyHead = 0;
  /** Every event with rv greater than this is still in the history. */
  private historyFloor = 0;
  private readonly historySize: number;
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private readonly persistence: DiskPersistence | undefined;
  private readonly gc = new GarbageCollector(this);
  private closed = false;

  constructor(
    readonly registry: Registry,
    options: StoreOptions = {},
  ) {
    this.persistence = options.persistence;
    this.historySize = options.historySize ?? 20_000;
    if (this.persistence) {
      const state = this.persistence.load();
      this.rv = state.resourceVersion;
      // CRDs first, so that their resource types exist before their objects are indexed.
      for (const { sk, object } of state.objects) if (sk === CRD_STORAGE_KEY) this.registerCrdSafely(object);
      for (const { sk, object } of state.objects) this.put(sk, object);
    }
    this.historyFloor = this.rv;
    if (!this.get(NS_STORAGE_KEY, undefined, 'default')) {
      for (const name of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) this.createNamespace(name);
    }
  }

  private registerCrdSafely(crd: KubeObject): void {
    try {
      this.registry.setCrd(crd);
    } catch (err) {
      process.stderr.write(`cluster: ignoring stored CRD ${crd.metadata.name ?? '?'}: ${String(err)}\n`);
    }
  }

  private createNamespace(name: string): void {
    const rt = this.registry.get('', 'v1', 'namespaces')!;
    this.create(rt, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }

  get resourceVersion(): number {
    return this.rv;
  }

  /** The oldest resourceVersion a watch may start from without getting 410 Expired. */
  get oldestWatchableVersion(): number {
    return this.historyFloor;
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Events after `rv`, oldest first, or undefined when some of them are no longer retained. */
  eventsSince(rv: number): StoreEvent[] | undefined {
    if (rv < this.historyFloor) return undefined;
    const out: StoreEvent[] = [];
    const n = this.history.length;
    for (let i = 0; i < n; i++) {
      const e = this.history[(this.historyHead + i) % n]!;
      if (e.rv > rv) out.push(e);
    }
    return out;
  }

  list(storageKey: string, namespace?: string): KubeObject[] {
    const bucket = this.objects.get(storageKey);
    if (!bucket) return [];
    const all = [...bucket.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  get(storageKey: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(storageKey)?.get(objKey(namespace, name));
  }

  /** Every stored object with its storage key (for tests, snapshots and debugging). */
  dump(): Array<{ sk: string; object: KubeObject }> {
    const out: Array<{ sk: string; object: KubeObject }> = [];
    for (const [sk, bucket] of this.objects) for (const object of bucket.values()) out.push({ sk, object });
    return out;
  }

  close(): void {
    this.closed = true;
    this.gc.close();
    this.listeners.clear();
    this.persistence?.close();
  }

  // ---- indexes -------------------------------------------------------------------------------

  private put(sk: string, object: KubeObject): void {
    let bucket = this.objects.get(sk);
    if (!bucket) {
      bucket = new Map();
      this.objects.set(sk, bucket);
    }
    const key = objKey(object.metadata.namespace, object.metadata.name ?? '');
    const old = bucket.get(key);
    if (old) this.unindexOwners(sk, old);
    bucket.set(key, object);
    this.indexOwners(sk, object);
    if (object.metadata.uid) this.byUid.set(object.metadata.uid, refKey(sk, object.metadata.namespace, object.metadata.name ?? ''));
  }

  private remove(sk: string, object: KubeObject): void {
    const bucket = this.objects.get(sk);
    if (!bucket) return;
    bucket.delete(objKey(object.metadata.namespace, object.metadata.name ?? ''));
    this.unindexOwners(sk, object);
    if (object.metadata.uid) this.byUid.delete(object.metadata.uid);
  }

  private indexOwners(sk: string, object: KubeObject): void {
    for (const ref of object.metadata.ownerReferences ?? []) {
      let set = this.dependents.get(ref.uid);
      if (!set) {
        set = new Set();
        this.dependents.set(ref.uid, set);
      }
      set.add(refKey(sk, object.metadata.namespace, object.metadata.name ?? ''));
    }
  }

  private unindexOwners(sk: string, object: KubeObject): void {
    for (const ref of object.metadata.ownerReferences ?? []) {
      const set = this.dependents.get(ref.uid);
      set?.delete(refKey(sk, object.metadata.namespace, object.metadata.name ?? ''));
      if (set?.size === 0) this.dependents.delete(ref.uid);
    }
  }

  // ---- commit --------------------------------------------------------------------------------

  /** Assigns the next resourceVersion, makes the write durable, then publishes it. */
  private commit(type: EventType, sk: string, object: KubeObject, previous: KubeObject | undefined): KubeObject {
    if (this.closed) throw internal('the cluster is shutting down');
    if (type === 'DELETED' && sk === CRD_STORAGE_KEY) {
      // A CRD's objects go before the CRD itself, so watchers see their DELETED events before the end.
      const target = this.registry.storageKeyOfCrd(object.metadata.name ?? '');
      if (target) for (const o of this.list(target)) this.commit('DELETED', target, o, o);
    }
    const rv = this.rv + 1;
    const stored: KubeObject = { ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } };
    const record: LogRecord =
      type === 'DELETED'
        ? { rv, op: 'del', sk, ns: stored.metadata.namespace ?? '', name: stored.metadata.name ?? '' }
        : { rv, op: 'put', sk, object: stored };
    this.persistence?.append(record);
    this.rv = rv;
    if (type === 'DELETED') this.remove(sk, stored);
    else this.put(sk, stored);
    const event: StoreEvent = { type, rv, storageKey: sk, object: stored, previous };
    this.record(event);
    for (const listener of this.listeners) listener(event);
    this.afterCommit(event);
    if (this.persistence?.wantsCompaction()) this.persistence.compact({ resourceVersion: this.rv, objects: this.dump() });
    return stored;
  }

  private record(event: StoreEvent): void {
    if (this.history.length < this.historySize) {
      this.history.push(event);
      return;
    }
    const evicted = this.history[this.historyHead]!;
    this.history[this.historyHead] = event;
    this.historyHead = (this.historyHead + 1) % this.historySize;
    this.historyFloor = evicted.rv;
  }

  private afterCommit(event: StoreEvent): void {
    const { object } = event;
    if (event.storageKey === CRD_STORAGE_KEY) {
      if (event.type === 'DELETED') {
        this.registry.removeCrd(object.metadata.name ?? '');
      } else {
        this.registerCrdSafely(object);
      }
    }
    if (event.type === 'DELETED') {
      if (object.metadata.uid && this.dependents.has(object.metadata.uid)) this.gc.ownerGone(object.metadata.uid);
      // An owner in foreground deletion waits for its dependents: look at it again now that one is gone.
      for (const ref of object.metadata.ownerReferences ?? []) {
        const owner = this.byUid.get(ref.uid);
        if (owner) this.gc.deleting(owner);
      }
      // Likewise a terminating namespace waits for its content.
      const ns = object.metadata.namespace;
      if (ns && this.get(NS_STORAGE_KEY, undefined, ns)?.metadata.deletionTimestamp) {
        this.gc.deleting(refKey(NS_STORAGE_KEY, undefined, ns));
      }
    } else if (object.metadata.deletionTimestamp) {
      this.gc.deleting(refKey(event.storageKey, object.metadata.namespace, object.metadata.name ?? ''));
    }
  }

  // ---- what the garbage collector reads and writes (see gc.ts) -------------------------------

  dependentsOf(uid: string): string[] {
    return [...(this.dependents.get(uid) ?? [])];
  }

  hasUid(uid: string): boolean {
    return this.byUid.has(uid);
  }

  namespacedContent(namespace: string): Array<{ rt: ResourceType; object: KubeObject }> {
    const out: Array<{ rt: ResourceType; object: KubeObject }> = [];
    for (const [sk, bucket] of this.objects) {
      const rt = this.registry.versionsOf(sk)[0];
      if (!rt?.namespaced) continue;
      for (const object of bucket.values()) if (object.metadata.namespace === namespace) out.push({ rt, object });
    }
    return out;
  }

  removeNamespace(ns: KubeObject): void {
    this.commit('DELETED', NS_STORAGE_KEY, ns, ns);
  }

  // ---- writes --------------------------------------------------------------------------------

  private checkNamespace(rt: ResourceType, namespace: string | undefined, creating: boolean): void {
    if (!rt.namespaced) return;
    if (!namespace) throw badRequest('the server could not find the requested resource: a namespace is required');
    const ns = this.get(NS_STORAGE_KEY, undefined, namespace);
    if (!ns) throw notFound({ group: '', plural: 'namespaces' }, namespace);
    if (creating && ns.metadata.deletionTimestamp) {
      throw forbidden(`${rt.plural}${rt.group ? `.${rt.group}` : ''} "" is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`);
    }
  }

  /**
   * Like kube-apiserver's decoder, a body may omit apiVersion and kind (client-go's typed clients never send
   * them): they default to the request's. Only values that are present and different are refused.
   */
  private withTypeMeta(rt: ResourceType, body: KubeObject): KubeObject {
    const typed = { ...body, apiVersion: body.apiVersion || apiVersionOf(rt), kind: body.kind || rt.kind };
    this.checkTypeMeta(rt, typed);
    return typed;
  }

  private checkTypeMeta(rt: ResourceType, body: KubeObject): void {
    if (body.kind !== rt.kind || body.apiVersion !== apiVersionOf(rt)) {
      const gvk = `${String(body.apiVersion)}, Kind=${String(body.kind)}`;
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersionOf(rt)}) or kind (${gvk}) does not match ${rt.kind}`);
    }
  }

  create(rt: ResourceType, namespace: string | undefined, received: KubeObject, options: WriteOptions = {}): WriteResult {
    const body = this.withTypeMeta(rt, received);
    if (rt.namespaced && body.metadata?.namespace && body.metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    this.checkNamespace(rt, namespace, true);
    if (!isJsonObject(body.metadata)) throw invalid(rt.kind, rt.group, '', [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
    if (body.metadata.resourceVersion) throw internal('resourceVersion should not be set on objects to be created');
    const object = deepClone(body);
    const meta = object.metadata;
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${generateSuffix()}`;
    if (!meta.name) throw invalid(rt.kind, rt.group, '', [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
    meta.uid = randomUUID();
    meta.creationTimestamp = nowTimestamp();
    if (rt.namespaced) meta.namespace = namespace;
    else delete meta.namespace;
    if (rt.hasGeneration) meta.generation = 1;
    else delete meta.generation;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    if (!options.keepManagedFields) delete meta.managedFields;
    if (rt.statusSubresource) delete object.status;
    const { object: admitted, warnings } = admit(rt, object, undefined, options);
    if (this.get(rt.storageKey, namespace, meta.name)) throw alreadyExists(rt, meta.name);
    if (options.dryRun) return { object: admitted, warnings };
    return { object: this.commit('ADDED', rt.storageKey, admitted, undefined), warnings };
  }

  /**
   * PUT semantics for the main resource or its status subresource. `internalWrite` marks writes made by
   * the server itself (garbage collection), which skip resourceVersion preconditions.
   */
  update(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    received: KubeObject,
    options: WriteOptions = {},
    subresource: 'main' | 'status' = 'main',
    internalWrite = false,
  ): WriteResult {
    const existing = this.get(rt.storageKey, namespace, name);
    if (!existing) throw notFound(rt, name);
    const body = this.withTypeMeta(rt, received);
    if (!isJsonObject(body.metadata)) throw badRequest('metadata is required');
    if (body.metadata.name && body.metadata.name !== name) {
      throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (rt.namespaced && body.metadata.namespace && body.metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (!internalWrite && body.metadata.resourceVersion && body.metadata.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(rt, name);
    }
    if (body.metadata.uid && body.metadata.uid !== existing.metadata.uid) {
      throw conflict(rt, name, `Precondition failed: UID in precondition: ${body.metadata.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }
    let next: KubeObject;
    if (subresource === 'status') {
      next = deepClone(existing);
      if (body.status === undefined) delete next.status;
      else next.status = deepClone(body.status);
      if (options.keepManagedFields) next.metadata.managedFields = deepClone(body.metadata.managedFields as ObjectMeta['managedFields']);
    } else {
      next = deepClone(body);
      const m = next.metadata;
      const e = existing.metadata;
      m.name = name;
      m.uid = e.uid;
      m.creationTimestamp = e.creationTimestamp;
      if (rt.namespaced) m.namespace = namespace;
      else delete m.namespace;
      for (const k of ['generation', 'deletionTimestamp', 'deletionGracePeriodSeconds'] as const) {
        if (e[k] === undefined) delete m[k];
        else (m as Record<string, unknown>)[k] = e[k];
      }
      // Plain updates keep the appliers' field ownership; only apply rewrites it.
      if (!options.keepManagedFields) {
        if (e.managedFields === undefined) delete m.managedFields;
        else m.managedFields = deepClone(e.managedFields);
      }
      if (rt.statusSubresource) {
        if (existing.status === undefined) delete next.status;
        else next.status = deepClone(existing.status);
      }
    }
    next.apiVersion = existing.apiVersion;
    delete next.metadata.resourceVersion;
    const { object: admitted, warnings } = admit(rt, next, existing, options);
    if (rt.hasGeneration && subresource === 'main' && !jsonEqual(specPart(admitted, rt), specPart(existing, rt))) {
      admitted.metadata.generation = (existing.metadata.generation ?? 0) + 1;
    }
    if (jsonEqual(withoutRv(admitted), withoutRv(existing))) return { object: existing, warnings };
    if (options.dryRun) return { object: { ...admitted, metadata: { ...admitted.metadata, resourceVersion: existing.metadata.resourceVersion } }, warnings };
    const terminal = admitted.metadata.deletionTimestamp && (admitted.metadata.finalizers ?? []).length === 0 && rt.plural !== 'namespaces';
    if (terminal) delete admitted.metadata.finalizers;
    return { object: this.commit(terminal ? 'DELETED' : 'MODIFIED', rt.storageKey, admitted, existing), warnings };
  }

  delete(rt: ResourceType, namespace: string | undefined, name: string, options: DeleteOptions): DeleteResult {
    const existing = this.get(rt.storageKey, namespace, name);
    if (!existing) throw notFound(rt, name);
    const pre = options.preconditions;
    if (pre?.uid && pre.uid !== existing.metadata.uid) {
      throw conflict(rt, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion) {
      throw conflict(rt, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion ?? ''}`);
    }
    const finalizers = [...(existing.metadata.finalizers ?? [])];
    const policy = options.propagationPolicy;
    const hasDependents = (this.dependents.get(existing.metadata.uid ?? '')?.size ?? 0) > 0;
    if (policy === 'Foreground' && hasDependents && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion');
    if (policy === 'Orphan' && hasDependents && !finalizers.includes('orphan')) finalizers.push('orphan');
    const isNamespace = rt.storageKey === NS_STORAGE_KEY;
    if (existing.metadata.deletionTimestamp) return { kind: 'marked', object: existing };
    if (finalizers.length > 0 || isNamespace) {
      const next = deepClone(existing);
      next.metadata.deletionTimestamp = nowTimestamp();
      next.metadata.deletionGracePeriodSeconds = 0;
      if (finalizers.length > 0) next.metadata.finalizers = finalizers;
      if (rt.hasGeneration && (next.metadata.generation ?? 0) > 0) next.metadata.generation = (next.metadata.generation ?? 0) + 1;
      rt.normalize?.(next, existing);
      if (options.dryRun) return { kind: 'marked', object: next };
      return { kind: 'marked', object: this.commit('MODIFIED', rt.storageKey, next, existing) };
    }
    if (options.dryRun) return { kind: 'removed', object: existing };
    return { kind: 'removed', object: this.commit('DELETED', rt.storageKey, existing, existing) };
  }
}
