import { ApiError } from './errors.ts';
import { deepClone, isJsonObject, jsonEqual, nowTimestamp, setOwn, type Json, type JsonObject, type KubeObject } from './types.ts';

/**
 * Server-side apply, reduced to what users observe: every applier (fieldManager) owns the fields of
 * its last applied configuration, recorded in `metadata.managedFields` (operation Apply, FieldsV1);
 * fields it applied before and omits now are removed unless another applier owns them; applying a
 * different value to a field another applier owns is a 409 conflict unless `force=true`, which
 * transfers ownership. Simplifications: lists are atomic (owned whole), and fields set by plain
 * updates (merge patch, PUT) are not tracked as owned.
 */

export interface ManagedFieldsEntry {
  manager: string;
  operation: string;
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: JsonObject;
  subresource?: string;
}

type Path = string[];

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

function key(path: Path): string {
  return JSON.stringify(path);
}

/** Leaf paths of an applied configuration; lists and empty objects count as leaves. */
function leaves(value: Json | undefined, path: Path, out: Map<string, Path>): void {
  if (isJsonObject(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) leaves(v, [...path, k], out);
  } else {
    out.set(key(path), path);
  }
}

/** The fields an applied object sets: its content plus the metadata fields appliers may own. */
function appliedFields(config: KubeObject, subresource: 'main' | 'status', statusSubresource: boolean): Map<string, Path> {
  const out = new Map<string, Path>();
  for (const [k, v] of Object.entries(config)) {
    if (k === 'apiVersion' || k === 'kind' || k === 'metadata' || v === undefined) continue;
    if (statusSubresource && (k === 'status') !== (subresource === 'status')) continue;
    leaves(v as Json, [k], out);
  }
  if (subresource === 'main') {
    for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences'] as const) {
      const v = config.metadata[k];
      if (v !== undefined) leaves(v as unknown as Json, ['metadata', k], out);
    }
  }
  return out;
}

function toFieldsV1(paths: Iterable<Path>): JsonObject {
  const root: JsonObject = {};
  for (const path of paths) {
    let node = root;
    for (const segment of path) {
      const k = `f:${segment}`;
      if (!isJsonObject(node[k])) setOwn(node, k, {});
      node = node[k] as JsonObject;
    }
  }
  return root;
}

function fromFieldsV1(fields: Json | undefined, prefix: Path = [], out = new Map<string, Path>()): Map<string, Path> {
  if (!isJsonObject(fields)) return out;
  for (const [k, v] of Object.entries(fields)) {
    if (!k.startsWith('f:')) continue;
    const path = [...prefix, k.slice(2)];
    if (isJsonObject(v) && Object.keys(v).length > 0) fromFieldsV1(v, path, out);
    else out.set(key(path), path);
  }
  return out;
}

function valueAt(object: Json, path: Path): Json | undefined {
  let node: Json | undefined = object;
  for (const segment of path) node = isJsonObject(node) && Object.prototype.hasOwnProperty.call(node, segment) ? node[segment] : undefined;
  return node;
}

/** Deletes a field, and the maps it leaves empty below the top level. */
function removeAt(object: JsonObject, path: Path): void {
  const parents: JsonObject[] = [];
  let node: JsonObject = object;
  for (const segment of path.slice(0, -1)) {
    const next = node[segment];
    if (!isJsonObject(next)) return;
    parents.push(node);
    node = next;
  }
  delete node[path[path.length - 1]!];
  for (let i = path.length - 2; i >= 1; i--) {
    const parent = parents[i]!;
    const child = parent[path[i]!];
    if (isJsonObject(child) && Object.keys(child).length === 0) delete parent[path[i]!];
    else break;
  }
}

/** Maps merge recursively; lists and scalars from the configuration replace; null deletes. */
function merge(target: Json | undefined, config: Json): Json {
  if (!isJsonObject(config)) return deepClone(config);
  const out: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(config)) {
    if (v === null) delete out[k];
    else setOwn(out, k, merge(Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined, v));
  }
  return out;
}

function overlaps(a: Path, b: Path): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function dotted(path: Path): string {
  return `.${path.join('.')}`;
}

export interface ApplyInput {
  existing: KubeObject | undefined;
  config: KubeObject;
  manager: string;
  force: boolean;
  apiVersion: string;
  subresource: 'main' | 'status';
  statusSubresource: boolean;
  subject: { group: string; plural: string };
}

/** The object to store for an apply request, with its managedFields; throws 409 on conflicts. */
export function serverSideApply(input: ApplyInput): KubeObject {
  const { existing, config, manager, force, subresource } = input;
  const applied = appliedFields(config, subresource, input.statusSubresource);
  const entries: ManagedFieldsEntry[] = deepClone((existing?.metadata.managedFields as ManagedFieldsEntry[] | undefined) ?? []);
  const mine = (e: ManagedFieldsEntry): boolean => e.manager === manager && e.operation === 'Apply' && (e.subresource ?? 'main') === subresource;
  let previous = fromFieldsV1(entries.find(mine)?.fieldsV1);
  const lastApplied = existing?.metadata.annotations?.[LAST_APPLIED];
  if (!entries.some(mine) && manager === 'kubectl' && subresource === 'main' && lastApplied) {
    // kubectl migrates a client-side-applied object to server-side apply by handing the fields of its
    // last-applied configuration to the "kubectl" applier (csaupgrade); this server does not record
    // client-side ownership, so it derives the same fields from the annotation.
    try {
      previous = appliedFields(JSON.parse(lastApplied) as KubeObject, 'main', input.statusSubresource);
    } catch {
      // an unreadable annotation hands over nothing, as an absent one would
    }
  }
  const others = entries.filter((e) => !mine(e) && e.operation === 'Apply').map((e) => ({ entry: e, fields: fromFieldsV1(e.fieldsV1) }));

  const fresh: JsonObject = { name: config.metadata.name ?? '' };
  if (config.metadata.namespace) fresh.namespace = config.metadata.namespace;
  const base = (existing ? deepClone(existing) : { apiVersion: config.apiVersion, kind: config.kind, metadata: fresh }) as unknown as JsonObject;
  const configBody = deepClone(config) as unknown as JsonObject;
  const configMeta = isJsonObject(configBody.metadata) ? configBody.metadata : {};
  delete configBody.metadata;
  delete configBody.apiVersion;
  delete configBody.kind;
  const result = merge(base, configBody) as JsonObject;
  const meta = { ...(base.metadata as JsonObject) };
  for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences']) {
    if (configMeta[k] !== undefined) meta[k] = merge(meta[k], configMeta[k]!);
  }
  if (typeof configMeta.resourceVersion === 'string') meta.resourceVersion = configMeta.resourceVersion;
  result.metadata = meta;

  // A field another applier owns conflicts only when this apply would change its value.
  const conflicts: Array<{ manager: string; path: Path }> = [];
  for (const path of applied.values()) {
    for (const other of others) {
      for (const owned of other.fields.values()) {
        if (!overlaps(owned, path)) continue;
        const deeper = owned.length >= path.length ? owned : path;
        if (jsonEqual(valueAt(base, deeper), valueAt(result, deeper))) continue;
        if (!conflicts.some((c) => c.manager === other.entry.manager && key(c.path) === key(deeper))) conflicts.push({ manager: other.entry.manager, path: deeper });
      }
    }
  }
  if (conflicts.length > 0 && !force) {
    const name = config.metadata.name ?? existing?.metadata.name ?? '';
    const lines = conflicts.map((c) => `conflict with "${c.manager}": ${dotted(c.path)}`);
    throw new ApiError(409, 'Conflict', `Apply failed with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}: ${lines.join('\n')}`, {
      name,
      group: input.subject.group,
      kind: input.subject.plural,
      causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}"`, field: dotted(c.path) })),
    });
  }

  const stillOwned = (path: Path): boolean => others.some((o) => [...o.fields.values()].some((p) => overlaps(p, path)) && !(force && conflicts.some((c) => c.manager === o.entry.manager && overlaps(c.path, path))));
  for (const [k, path] of previous) {
    if (!applied.has(k) && ![...applied.values()].some((p) => overlaps(p, path)) && !stillOwned(path)) removeAt(result, path);
  }

  // Forcing moves the conflicting fields to this manager.
  const next: ManagedFieldsEntry[] = [];
  for (const e of entries) {
    if (mine(e)) continue;
    if (force && conflicts.some((c) => c.manager === e.manager)) {
      const kept = [...fromFieldsV1(e.fieldsV1).values()].filter((p) => !conflicts.some((c) => c.manager === e.manager && overlaps(c.path, p)));
      if (kept.length === 0) continue;
      next.push({ ...e, fieldsV1: toFieldsV1(kept) });
    } else {
      next.push(e);
    }
  }
  const fieldsV1 = toFieldsV1(applied.values());
  const old = entries.find(mine);
  const entry: ManagedFieldsEntry = {
    manager,
    operation: 'Apply',
    apiVersion: input.apiVersion,
    time: old && jsonEqual(old.fieldsV1, fieldsV1) ? old.time : nowTimestamp(),
    fieldsType: 'FieldsV1',
    fieldsV1,
  };
  if (subresource === 'status') entry.subresource = 'status';
  next.push(entry);
  (result.metadata as JsonObject).managedFields = next as unknown as Json;
  return result as unknown as KubeObject;
}
