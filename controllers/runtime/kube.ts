/**
 * The few API calls the controllers make, typed, over @kubernetes/client-node. Everything the operator does to
 * the cluster passes through here, which keeps the RBAC in manifests/ checkable against one list of calls.
 */
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
  type V1Lease,
  type V1Secret,
} from '@kubernetes/client-node';
import { statusCodeOf } from '../../api/api-errors.ts';
import { GROUP, VERSION, type KindDefinition } from '../../api/kinds/index.ts';
import type { ObjectMeta } from '../../api/types.ts';
import type { Json } from './merge-patch.ts';

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: unknown;
  status?: unknown;
}

export const resourceOf = (kind: KindDefinition): ResourceType => ({
  group: GROUP,
  version: VERSION,
  plural: kind.plural,
  kind: kind.kind,
  namespaced: kind.scope === 'Namespaced',
});

/** The core group ("") lives under /api, every other group under /apis. */
export const apiPath = (r: ResourceType): string => (r.group === '' ? `/api/${r.version}/${r.plural}` : `/apis/${r.group}/${r.version}/${r.plural}`);

/** Namespaces, for the Machines' allowedNamespaces selectors (only their labels are read). */
export const NAMESPACES: ResourceType = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };

export const statusCode = statusCodeOf;

export const isNotFound = (err: unknown): boolean => statusCode(err) === 404;
export const isConflict = (err: unknown): boolean => statusCode(err) === 409;

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const JSON_PATCH = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);

export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: Json }
  | { op: 'remove'; path: string };

export class KubeClient {
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;

  constructor(readonly config: KubeConfig) {
    this.custom = config.makeApiClient(CustomObjectsApi);
    this.core = config.makeApiClient(CoreV1Api);
    this.coordination = config.makeApiClient(CoordinationV1Api);
  }

  async list<T extends KubeObject>(r: ResourceType): Promise<{ items: T[]; metadata: { resourceVersion?: string } }> {
    if (r === NAMESPACES) return (await this.core.listNamespace()) as unknown as { items: T[]; metadata: { resourceVersion?: string } };
    const base = { group: r.group, version: r.version, plural: r.plural };
    return (await this.custom.listClusterCustomObject(base)) as { items: T[]; metadata: { resourceVersion?: string } };
  }

  async get<T extends KubeObject>(r: ResourceType, name: string, namespace?: string): Promise<T | undefined> {
    try {
      const base = { group: r.group, version: r.version, plural: r.plural, name };
      const obj = r.namespaced
        ? await this.custom.getNamespacedCustomObject({ ...base, namespace: namespace ?? 'default' })
        : await this.custom.getClusterCustomObject(base);
      return obj as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Merge patch of the status subresource: never touches spec, never bumps generation. */
  async patchStatus<T extends KubeObject>(r: ResourceType, obj: KubeObject, patch: Json): Promise<T> {
    const base = { group: r.group, version: r.version, plural: r.plural, name: obj.metadata.name, body: { status: patch } };
    const out = r.namespaced
      ? await this.custom.patchNamespacedCustomObjectStatus({ ...base, namespace: obj.metadata.namespace ?? 'default' }, MERGE)
      : await this.custom.patchClusterCustomObjectStatus(base, MERGE);
    return out as T;
  }

  /**
   * Merge patch of the main resource. A patch that carries `metadata.resourceVersion` applies only to that
   * version of the object: otherwise 409 Conflict (isConflict), as for an update.
   */
  async mergePatch<T extends KubeObject>(r: ResourceType, obj: KubeObject, patch: Json): Promise<T> {
    const base = { group: r.group, version: r.version, plural: r.plural, name: obj.metadata.name, body: patch };
    const out = r.namespaced
      ? await this.custom.patchNamespacedCustomObject({ ...base, namespace: obj.metadata.namespace ?? 'default' }, MERGE)
      : await this.custom.patchClusterCustomObject(base, MERGE);
    return out as T;
  }

  /** JSON patch of the main resource. */
  async jsonPatch<T extends KubeObject>(r: ResourceType, obj: KubeObject, ops: JsonPatchOp[]): Promise<T> {
    const base = { group: r.group, version: r.version, plural: r.plural, name: obj.metadata.name, body: ops };
    const out = r.namespaced
      ? await this.custom.patchNamespacedCustomObject({ ...base, namespace: obj.metadata.namespace ?? 'default' }, JSON_PATCH)
      : await this.custom.patchClusterCustomObject(base, JSON_PATCH);
    return out as T;
  }

  async readSecret(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    return (await this.getSecret(namespace, name))?.data ?? undefined;
  }

  async getSecret(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      const secret = await this.core.readNamespacedSecret({ namespace, name });
      return { ...secret, data: secret.data ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Secrets bdr creates itself (vector keys), in the operator's namespace only. */
  createSecret(namespace: string, secret: V1Secret): Promise<V1Secret> {
    return this.core.createNamespacedSecret({ namespace, body: secret });
  }

  async listSecrets(namespace: string, labelSelector: string): Promise<V1Secret[]> {
    return (await this.core.listNamespacedSecret({ namespace, labelSelector })).items;
  }

  patchSecret(namespace: string, name: string, patch: Json): Promise<V1Secret> {
    return this.core.patchNamespacedSecret({ namespace, name, body: patch }, MERGE);
  }

  /** Deletes; a Secret that is already gone counts as deleted. */
  async deleteSecret(namespace: string, name: string): Promise<void> {
    try {
      await this.core.deleteNamespacedSecret({ namespace, name });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  createEvent(namespace: string, event: CoreV1Event): Promise<CoreV1Event> {
    return this.core.createNamespacedEvent({ namespace, body: event });
  }

  patchEvent(namespace: string, name: string, patch: Json): Promise<CoreV1Event> {
    return this.core.patchNamespacedEvent({ namespace, name, body: patch }, MERGE);
  }

  async readLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    try {
      return await this.coordination.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  createLease(namespace: string, lease: V1Lease): Promise<V1Lease> {
    return this.coordination.createNamespacedLease({ namespace, body: lease });
  }

  replaceLease(namespace: string, lease: V1Lease): Promise<V1Lease> {
    return this.coordination.replaceNamespacedLease({ namespace, name: lease.metadata?.name ?? '', body: lease });
  }
}
