/**
 * Untyped object access for the apply: any kind the cluster serves, as plain JSON.
 *
 * Kinds of an API group go through CustomObjectsApi, which sends bodies as they are. KubernetesObjectApi runs
 * bodies through client-node's typed models, which silently drop every field whose JSON name differs from the
 * model's (a CRD schema's `enum`, `default`, `x-kubernetes-*`), so it is used for the core group only, whose
 * served kinds here (Namespace, ConfigMap, Secret) have no such field.
 */
import {
  ApisApi,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1APIResource,
} from '@kubernetes/client-node';
import { groupOf, isJsonObject, type JsonObject, type ObjectRef } from './plan.ts';

export const FIELD_MANAGER = 'bdr-up';

export interface ServedResource {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  verbs: string[];
}

import { apiMessage, statusCodeOf } from '../api/api-errors.ts';

export { apiMessage, statusCodeOf };

/** client-node turns timestamps into Date objects; the planner compares plain JSON. */
export const plain = (o: unknown): JsonObject => JSON.parse(JSON.stringify(o)) as JsonObject;

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export const CRD_RESOURCE: ServedResource = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  plural: 'customresourcedefinitions',
  namespaced: false,
  verbs: ['create', 'get', 'list', 'update', 'patch', 'delete'],
};

/** The cluster's discovery: every served kind of every version; `listable` holds each group's preferred version. */
export async function discover(kc: KubeConfig): Promise<{ byKind: Map<string, ServedResource>; listable: ServedResource[] }> {
  const byKind = new Map<string, ServedResource>();
  const listable: ServedResource[] = [];
  const add = (apiVersion: string, resources: V1APIResource[], preferred: boolean) => {
    for (const r of resources) {
      if (r.name.includes('/')) continue;
      const s: ServedResource = { apiVersion, kind: r.kind, plural: r.name, namespaced: r.namespaced, verbs: r.verbs };
      byKind.set(resourceKey(apiVersion, r.kind), s);
      if (preferred && r.verbs.includes('list')) listable.push(s);
    }
  };
  add('v1', (await kc.makeApiClient(CoreV1Api).getAPIResources()).resources, true);
  const custom = kc.makeApiClient(CustomObjectsApi);
  for (const g of (await kc.makeApiClient(ApisApi).getAPIVersions()).groups) {
    for (const v of g.versions) {
      const list = await custom.getAPIResources({ group: g.name, version: v.version });
      add(v.groupVersion, list.resources, v.groupVersion === g.preferredVersion?.groupVersion);
    }
  }
  return { byKind, listable };
}

export const resourceKey = (apiVersion: string, kind: string): string => `${apiVersion}|${kind}`;

/** Reads and writes objects of the given served resources as plain JSON. */
export class ObjectClient {
  private readonly custom: CustomObjectsApi;
  private readonly core: KubernetesObjectApi;

  constructor(
    kc: KubeConfig,
    private readonly resources: ReadonlyMap<string, ServedResource>,
  ) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = KubernetesObjectApi.makeApiClient(kc);
  }

  private resource(apiVersion: string, kind: string): ServedResource {
    const r = this.resources.get(resourceKey(apiVersion, kind)) ?? (kind === CRD_RESOURCE.kind && apiVersion === CRD_RESOURCE.apiVersion ? CRD_RESOURCE : undefined);
    if (!r) throw new Error(`the cluster does not serve kind ${kind} in ${apiVersion}`);
    return r;
  }

  private path(ref: ObjectRef) {
    const r = this.resource(ref.apiVersion, ref.kind);
    const group = groupOf(ref.apiVersion);
    const version = ref.apiVersion.slice(group.length + 1);
    return { r, group, version, plural: r.plural, name: ref.name, namespace: r.namespaced ? (ref.namespace ?? 'default') : undefined };
  }

  private static header(ref: ObjectRef) {
    return { apiVersion: ref.apiVersion, kind: ref.kind, metadata: ref.namespace === undefined ? { name: ref.name } : { name: ref.name, namespace: ref.namespace } };
  }

  /** The object, or null when it does not exist. */
  async read(ref: ObjectRef): Promise<JsonObject | null> {
    try {
      if (groupOf(ref.apiVersion) === '') return plain(await this.core.read(ObjectClient.header(ref)));
      const p = this.path(ref);
      const base = { group: p.group, version: p.version, plural: p.plural, name: p.name };
      const o: unknown = p.namespace === undefined ? await this.custom.getClusterCustomObject(base) : await this.custom.getNamespacedCustomObject({ ...base, namespace: p.namespace });
      return plain(o);
    } catch (err) {
      if (statusCodeOf(err) === 404) return null;
      throw err;
    }
  }

  /** Every object of a kind in every namespace that matches the label selector, with apiVersion and kind set. */
  async list(r: ServedResource, labelSelector?: string): Promise<JsonObject[]> {
    const group = groupOf(r.apiVersion);
    let items: unknown[];
    if (group === '') {
      items = (await this.core.list(r.apiVersion, r.kind, undefined, undefined, undefined, undefined, undefined, labelSelector)).items;
    } else {
      const version = r.apiVersion.slice(group.length + 1);
      const list: unknown = await this.custom.listClusterCustomObject({ group, version, plural: r.plural, labelSelector });
      items = isJsonObject(list) && Array.isArray(list.items) ? list.items : [];
    }
    return items.map((i) => ({ ...plain(i), apiVersion: r.apiVersion, kind: r.kind }));
  }

  /** Creates the object; returns it as the server stored it. */
  async create(object: JsonObject, ref: ObjectRef): Promise<JsonObject> {
    if (groupOf(ref.apiVersion) === '') return plain(await this.core.create(object as unknown as KubernetesObject, undefined, undefined, FIELD_MANAGER));
    const p = this.path(ref);
    const base = { group: p.group, version: p.version, plural: p.plural, body: object, fieldManager: FIELD_MANAGER };
    const created: unknown = p.namespace === undefined ? await this.custom.createClusterCustomObject(base) : await this.custom.createNamespacedCustomObject({ ...base, namespace: p.namespace });
    return plain(created);
  }

  /** A JSON merge patch (RFC 7386): `null` removes a field. Returns the object as the server stored it. */
  async mergePatch(ref: ObjectRef, patch: JsonObject): Promise<JsonObject> {
    if (groupOf(ref.apiVersion) === '') {
      const body = { ...patch, ...ObjectClient.header(ref), metadata: { ...(isJsonObject(patch.metadata) ? patch.metadata : {}), ...ObjectClient.header(ref).metadata } };
      return plain(await this.core.patch(body as unknown as KubernetesObject, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch));
    }
    const p = this.path(ref);
    const base = { group: p.group, version: p.version, plural: p.plural, name: p.name, body: patch, fieldManager: FIELD_MANAGER };
    const patched: unknown =
      p.namespace === undefined ? await this.custom.patchClusterCustomObject(base, MERGE_PATCH) : await this.custom.patchNamespacedCustomObject({ ...base, namespace: p.namespace }, MERGE_PATCH);
    return plain(patched);
  }

  /** PUT of a whole object of a grouped kind (carrying the resourceVersion it was read at). */
  async replace(object: JsonObject, ref: ObjectRef): Promise<void> {
    const p = this.path(ref);
    const base = { group: p.group, version: p.version, plural: p.plural, name: p.name, body: object, fieldManager: FIELD_MANAGER };
    if (p.namespace === undefined) await this.custom.replaceClusterCustomObject(base);
    else await this.custom.replaceNamespacedCustomObject({ ...base, namespace: p.namespace });
  }

  /** Deletes the object with this uid; a namesake created since is left alone (409). */
  async delete(ref: ObjectRef, uid: string | undefined): Promise<void> {
    const body = uid === undefined ? { propagationPolicy: 'Background' } : { propagationPolicy: 'Background', preconditions: { uid } };
    if (groupOf(ref.apiVersion) === '') {
      await this.core.delete(ObjectClient.header(ref), undefined, undefined, undefined, undefined, 'Background', uid === undefined ? undefined : { preconditions: { uid } });
      return;
    }
    const p = this.path(ref);
    const base = { group: p.group, version: p.version, plural: p.plural, name: p.name, body };
    if (p.namespace === undefined) await this.custom.deleteClusterCustomObject(base);
    else await this.custom.deleteNamespacedCustomObject({ ...base, namespace: p.namespace });
  }
}
