import type { Registry } from './crd-registry.ts';
import { ApiError } from './errors.ts';
import type { ResourceType } from './resources.ts';
import type { DeleteOptions, DeleteResult, WriteOptions, WriteResult } from './store.ts';
import { deepClone, type KubeObject } from './types.ts';

export const NS_STORAGE_KEY = '/namespaces';

/** Identifies one stored object: storage key, namespace ('' when cluster-scoped), name. */
export function refKey(sk: string, ns: string | undefined, name: string): string {
  return `${sk}|${ns ?? ''}|${name}`;
}

/** What the collector needs from the store: reads, and writes that go through the normal semantics. */
export interface GcHost {
  readonly registry: Registry;
  get(sk: string, ns: string | undefined, name: string): KubeObject | undefined;
  dependentsOf(uid: string): string[];
  hasUid(uid: string): boolean;
  namespacedContent(namespace: string): Array<{ rt: ResourceType; object: KubeObject }>;
  delete(rt: ResourceType, ns: string | undefined, name: string, options: DeleteOptions): DeleteResult;
  update(rt: ResourceType, ns: string | undefined, name: string, body: KubeObject, options: WriteOptions, sub: 'main' | 'status', internalWrite: boolean): WriteResult;
  /** Removes a terminating namespace whose content is gone. */
  removeNamespace(ns: KubeObject): void;
}

/**
 * The garbage collector and namespace controller of kube-controller-manager, reduced to their effect:
 * dependents of a removed owner are deleted (background), `orphan` releases them, `foregroundDeletion`
 * deletes them first, and a terminating namespace is emptied, then removed. Work runs after the request
 * that caused it has returned, as with the real controllers, and goes through the store's normal writes.
 */
export class GarbageCollector {
  private readonly queue = new Set<string>();
  private scheduled = false;
  private closed = false;

  constructor(private readonly host: GcHost) {}

  /** An object with this uid was removed: its dependents may have to go. */
  ownerGone(uid: string): void {
    this.enqueue(`owner-gone|${uid}`);
  }

  /** An object (or namespace) is being deleted and may be waiting for the collector. */
  deleting(ref: string): void {
    this.enqueue(`deleting|${ref}`);
  }

  close(): void {
    this.closed = true;
    this.queue.clear();
  }

  private enqueue(item: string): void {
    if (this.closed) return;
    this.queue.add(item);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    while (this.queue.size > 0 && !this.closed) {
      const [item] = this.queue;
      this.queue.delete(item!);
      try {
        this.process(item!);
      } catch (err) {
        // An ApiError means the object changed under us (gone, conflict): the next event re-queues it.
        if (!(err instanceof ApiError)) process.stderr.write(`cluster: garbage collection of ${item}: ${String(err)}\n`);
      }
    }
  }

  private lookup(ref: string): { sk: string; object: KubeObject; rt: ResourceType } | undefined {
    const [sk, ns, name] = ref.split('|') as [string, string, string];
    const object = this.host.get(sk, ns || undefined, name);
    const rt = this.host.registry.versionsOf(sk)[0];
    return object && rt ? { sk, object, rt } : undefined;
  }

  private process(item: string): void {
    const sep = item.indexOf('|');
    const what = item.slice(0, sep);
    const arg = item.slice(sep + 1);
    if (what === 'owner-gone') {
      for (const dep of this.host.dependentsOf(arg)) {
        const found = this.lookup(dep);
        if (!found) continue;
        const remaining = (found.object.metadata.ownerReferences ?? []).filter((r) => r.uid !== arg && this.host.hasUid(r.uid));
        if (remaining.length === 0) this.host.delete(found.rt, found.object.metadata.namespace, found.object.metadata.name ?? '', {});
      }
      return;
    }
    const found = this.lookup(arg);
    if (!found || !found.object.metadata.deletionTimestamp) return;
    const { object, rt } = found;
    const uid = object.metadata.uid ?? '';
    const finalizers = object.metadata.finalizers ?? [];
    if (finalizers.includes('orphan')) {
      for (const dep of this.host.dependentsOf(uid)) {
        const d = this.lookup(dep);
        if (!d) continue;
        const refs = (d.object.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
        const next = deepClone(d.object);
        if (refs.length) next.metadata.ownerReferences = refs;
        else delete next.metadata.ownerReferences;
        this.host.update(d.rt, d.object.metadata.namespace, d.object.metadata.name ?? '', next, {}, 'main', true);
      }
      this.dropFinalizer(rt, object, 'orphan');
    } else if (finalizers.includes('foregroundDeletion')) {
      for (const dep of this.host.dependentsOf(uid)) {
        const d = this.lookup(dep);
        if (d && !d.object.metadata.deletionTimestamp) {
          this.host.delete(d.rt, d.object.metadata.namespace, d.object.metadata.name ?? '', { propagationPolicy: 'Foreground' });
        }
      }
      if (this.host.dependentsOf(uid).length === 0) this.dropFinalizer(rt, object, 'foregroundDeletion');
    }
    if (found.sk === NS_STORAGE_KEY) this.finalizeNamespace(object);
  }

  private dropFinalizer(rt: ResourceType, object: KubeObject, finalizer: string): void {
    const current = this.host.get(rt.storageKey, object.metadata.namespace, object.metadata.name ?? '');
    if (!current) return;
    const next = deepClone(current);
    next.metadata.finalizers = (current.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    this.host.update(rt, current.metadata.namespace, current.metadata.name ?? '', next, {}, 'main', true);
  }

  /** Deletes a terminating namespace's content; content with finalizers of its own keeps it terminating. */
  private finalizeNamespace(ns: KubeObject): void {
    const name = ns.metadata.name ?? '';
    for (const { rt, object } of this.host.namespacedContent(name)) {
      if (!object.metadata.deletionTimestamp) this.host.delete(rt, name, object.metadata.name ?? '', {});
    }
    const current = this.host.get(NS_STORAGE_KEY, undefined, name);
    if (this.host.namespacedContent(name).length === 0 && current && (current.metadata.finalizers ?? []).length === 0) {
      this.host.removeNamespace(current);
    }
  }
}
