/**
 * The functional core of `bdr up`'s apply: from the repository's documents and what the cluster holds, decide
 * what to create, what to patch (and with which merge patch), what to prune and what to leave alone. No I/O here;
 * `apply.ts` observes the cluster and carries the plan out.
 *
 * Guarantees, each covered by a unit test:
 * - An object whose live state already says everything the repository says is left alone: re-applying an
 *   unchanged repository plans zero writes, whatever the server added (defaults, status, its own labels).
 * - A patch is a JSON merge patch that carries only what differs, plus `null` for fields the previous apply set
 *   and the repository no longer has (the previous apply's field shape is kept in an annotation, without values,
 *   so a Secret's data never ends up in an annotation).
 * - Only objects carrying both bdr-up's label and its source annotation are pruned, never anything else.
 * - An object whose document is invalid now (schema error, YAML syntax error in its file, unknown kind) is not
 *   pruned: a typo must not delete data. It stays as last applied until the document is fixed or removed.
 * - Namespaces are never pruned: deleting one deletes everything in it, including objects bdr did not apply.
 * - A repository without any document prunes nothing (a wrong path or a failed checkout, far more likely than
 *   an intent to delete everything).
 */

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'bdr-up';
export const SOURCE_ANNOTATION = 'bdr.dev/source';
export const COMMIT_ANNOTATION = 'bdr.dev/source-commit';
export const FIELDS_ANNOTATION = 'bdr.dev/applied-fields';
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

export const isJsonObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where a document came from: the path relative to the repository root, and its first line. */
export interface SourceRef {
  file: string;
  line: number;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  /** Set for namespaced kinds only. */
  namespace?: string;
}

/** An object the repository declares, with bdr-up's markers already added. */
export interface DesiredObject {
  key: string;
  ref: ObjectRef;
  object: JsonObject;
  source: SourceRef;
}

export const groupOf = (apiVersion: string): string => (apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '');

/** Identity across versions of a kind: group, kind, namespace, name (the version is only a representation). */
export const objectKey = (r: ObjectRef): string => `${groupOf(r.apiVersion)}/${r.kind}/${r.namespace ?? ''}/${r.name}`;

/** Identity without the namespace, for protecting invalid documents whose namespace is uncertain. */
export const looseKey = (r: { apiVersion: string; kind: string; name: string }): string => `${groupOf(r.apiVersion)}/${r.kind}/${r.name}`;

export const describeRef = (r: ObjectRef): string => `${r.kind}/${r.namespace ? `${r.namespace}/` : ''}${r.name}`;

export function refOf(object: JsonObject): ObjectRef {
  const meta = isJsonObject(object.metadata) ? object.metadata : {};
  const ref: ObjectRef = { apiVersion: String(object.apiVersion), kind: String(object.kind), name: String(meta.name) };
  if (typeof meta.namespace === 'string' && meta.namespace !== '') ref.namespace = meta.namespace;
  return ref;
}

/**
 * The shape of the fields an apply sets, without values: objects become objects of shapes, arrays arrays of
 * shapes, scalars 1. Stored on the object so that the next apply can tell which fields it must remove.
 */
export type Shape = 1 | Shape[] | { [key: string]: Shape };

export function shapeOf(value: Json): Shape {
  if (Array.isArray(value)) return value.map(shapeOf);
  if (isJsonObject(value)) {
    const out: { [key: string]: Shape } = {};
    for (const [k, v] of Object.entries(value)) out[k] = shapeOf(v);
    return out;
  }
  return 1;
}

function parseShape(text: string | undefined): Shape | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as Shape;
  } catch {
    // A hand-edited annotation only costs us the removal of fields, never a wrong write.
    return undefined;
  }
}

const shapeChild = (shape: Shape | undefined, key: string | number): Shape | undefined => {
  if (shape === undefined || shape === 1) return undefined;
  if (Array.isArray(shape)) return typeof key === 'number' ? shape[key] : undefined;
  return typeof key === 'string' && Object.prototype.hasOwnProperty.call(shape, key) ? shape[key] : undefined;
};

/**
 * True when `live` already says everything `desired` says, and none of the fields the previous apply set
 * (`last`) that `desired` dropped is still there. Fields only the server or other writers set are ignored.
 */
export function covers(desired: Json, last: Shape | undefined, live: Json | undefined): boolean {
  // `key: ~` in YAML means "no value"; the server drops it, so absence is what it looks like once applied.
  if (desired === null) return live === undefined || live === null;
  if (isJsonObject(desired)) {
    if (!isJsonObject(live)) return false;
    for (const [k, v] of Object.entries(desired)) if (!covers(v, shapeChild(last, k), live[k])) return false;
    if (last !== undefined && last !== 1 && !Array.isArray(last)) {
      for (const k of Object.keys(last)) if (!(k in desired) && live[k] !== undefined) return false;
    }
    return true;
  }
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return false;
    return desired.every((v, i) => covers(v, shapeChild(last, i), live[i]));
  }
  return desired === live;
}

/**
 * Paths of `desired` that `live` does not hold as written: after a write, the fields the server dropped (unknown
 * to its schema) or changed. Each would otherwise be patched again at every apply, so they are reported instead.
 */
export function uncoveredPaths(desired: Json, live: Json | undefined, path = ''): string[] {
  if (isJsonObject(desired) && isJsonObject(live)) {
    return Object.entries(desired).flatMap(([k, v]) => uncoveredPaths(v, live[k], path === '' ? k : `${path}.${k}`));
  }
  return covers(desired, undefined, live) ? [] : [path === '' ? '(root)' : path];
}

/**
 * The merge patch that makes `live` cover `desired`, or undefined when nothing differs. Arrays are replaced
 * whole (merge-patch semantics); removed fields are sent as null.
 */
export function mergePatchFor(desired: JsonObject, last: Shape | undefined, live: JsonObject): JsonObject | undefined {
  const patch: JsonObject = {};
  for (const [k, v] of Object.entries(desired)) {
    const l = live[k];
    const s = shapeChild(last, k);
    if (covers(v, s, l)) continue;
    if (isJsonObject(v) && isJsonObject(l)) {
      const sub = mergePatchFor(v, s, l);
      if (sub !== undefined) patch[k] = sub;
    } else patch[k] = v;
  }
  if (last !== undefined && last !== 1 && !Array.isArray(last)) {
    for (const k of Object.keys(last)) if (!(k in desired) && live[k] !== undefined) patch[k] = null;
  }
  return Object.keys(patch).length > 0 ? patch : undefined;
}

const SERVER_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink'];

/**
 * The object bdr-up sends for a document: server-owned fields dropped, the namespace settled, a Secret's
 * write-only stringData folded into data (as the API server stores it, so that comparing stays stable), and the
 * markers added: the label that makes it prunable, the source file, and the shape of what it sets.
 */
export function desiredObject(document: JsonObject, ref: ObjectRef, source: SourceRef): DesiredObject {
  const object: JsonObject = structuredClone(document);
  delete object.status;
  const meta: JsonObject = isJsonObject(object.metadata) ? object.metadata : {};
  for (const k of SERVER_METADATA) delete meta[k];
  if (ref.namespace === undefined) delete meta.namespace;
  else meta.namespace = ref.namespace;
  if (ref.kind === 'Secret' && groupOf(ref.apiVersion) === '' && isJsonObject(object.stringData)) {
    const data: JsonObject = isJsonObject(object.data) ? object.data : {};
    for (const [k, v] of Object.entries(object.stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
    object.data = data;
    delete object.stringData;
  }
  const labels: JsonObject = isJsonObject(meta.labels) ? meta.labels : {};
  labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE;
  meta.labels = labels;
  const annotations: JsonObject = isJsonObject(meta.annotations) ? meta.annotations : {};
  delete annotations[COMMIT_ANNOTATION];
  delete annotations[FIELDS_ANNOTATION];
  annotations[SOURCE_ANNOTATION] = source.file;
  meta.annotations = annotations;
  object.metadata = meta;
  // name and namespace never change for a given key, so they are left out of the shape.
  const forShape: JsonObject = { ...object, metadata: { labels: meta.labels, annotations: meta.annotations } };
  delete forShape.apiVersion;
  delete forShape.kind;
  annotations[FIELDS_ANNOTATION] = JSON.stringify(shapeOf(forShape));
  return { key: objectKey(ref), ref, object, source };
}

export interface LiveObject {
  key: string;
  ref: ObjectRef;
  object: JsonObject;
}

export function liveObject(object: JsonObject): LiveObject {
  const ref = refOf(object);
  return { key: objectKey(ref), ref, object };
}

const annotationOf = (object: JsonObject, name: string): string | undefined => {
  const meta = isJsonObject(object.metadata) ? object.metadata : {};
  const a = isJsonObject(meta.annotations) ? meta.annotations[name] : undefined;
  return typeof a === 'string' ? a : undefined;
};

/** Applied by bdr-up: both markers present. A label alone (copied by hand) is not enough to be pruned. */
export function isManaged(object: JsonObject): boolean {
  const meta = isJsonObject(object.metadata) ? object.metadata : {};
  const labels = isJsonObject(meta.labels) ? meta.labels : {};
  return labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && annotationOf(object, SOURCE_ANNOTATION) !== undefined;
}

/** What protects previously applied objects from pruning in this round. */
export interface Protection {
  /** looseKey of documents that are in the repository but invalid now. */
  keys: ReadonlySet<string>;
  /** Repository-relative files that could not be read whole (YAML syntax, documents without identity). */
  files: ReadonlySet<string>;
}

export interface SyncPlanInput {
  desired: readonly DesiredObject[];
  /** Live state of each desired key; missing or null means it does not exist. */
  live: ReadonlyMap<string, LiveObject | null>;
  /** Every live object carrying bdr-up's label, of every kind. */
  managed: readonly LiveObject[];
  /** Names of the namespaces that exist. */
  namespaces: ReadonlySet<string>;
  protection: Protection;
  /**
   * The repository holds no document at all. Then nothing is pruned: an empty tree is far more often a wrong
   * --repo, a failed checkout or an unmounted disk than an intent to delete everything.
   */
  repositoryEmpty?: boolean;
}

export interface PatchAction {
  desired: DesiredObject;
  patch: JsonObject;
  /** The live object was not applied by bdr-up (created by hand with the same identity): it is taken over. */
  adopt: boolean;
}

export interface KeptAction {
  live: LiveObject;
  reason: string;
}

export interface SyncPlan {
  /** Namespaces some desired object needs that neither exist nor are declared. */
  createNamespaces: string[];
  create: DesiredObject[];
  patch: PatchAction[];
  unchanged: DesiredObject[];
  prune: LiveObject[];
  kept: KeptAction[];
}

/** Order of application: what others refer to first. Pruning runs in the reverse order. */
const KIND_ORDER = ['Namespace', 'ServiceAccount', 'Secret', 'ConfigMap', 'RetentionPolicy', 'StorageTarget', 'Machine', 'Dataset', 'Vector'];
const rank = (kind: string): number => {
  const i = KIND_ORDER.indexOf(kind);
  return i < 0 ? KIND_ORDER.length : i;
};
const byApplyOrder = (a: { ref: ObjectRef; key: string }, b: { ref: ObjectRef; key: string }): number =>
  rank(a.ref.kind) - rank(b.ref.kind) || a.key.localeCompare(b.key);

export function planSync(input: SyncPlanInput): SyncPlan {
  const plan: SyncPlan = { createNamespaces: [], create: [], patch: [], unchanged: [], prune: [], kept: [] };
  const desiredKeys = new Set(input.desired.map((d) => d.key));
  const declaredNamespaces = new Set(input.desired.filter((d) => d.ref.kind === 'Namespace' && groupOf(d.ref.apiVersion) === '').map((d) => d.ref.name));
  const needed = new Set<string>();
  for (const d of [...input.desired].sort(byApplyOrder)) {
    if (d.ref.namespace !== undefined) needed.add(d.ref.namespace);
    const live = input.live.get(d.key) ?? null;
    if (live === null) {
      plan.create.push(d);
      continue;
    }
    const adopt = !isManaged(live.object);
    // A foreign object's field annotation is not ours to trust; without it nothing is removed.
    const last = adopt ? undefined : parseShape(annotationOf(live.object, FIELDS_ANNOTATION));
    const patch = mergePatchFor(d.object, last, live.object);
    if (patch === undefined) plan.unchanged.push(d);
    else plan.patch.push({ desired: d, patch, adopt });
  }
  plan.createNamespaces = [...needed].filter((n) => !input.namespaces.has(n) && !declaredNamespaces.has(n)).sort();

  const prunable = input.managed.filter((m) => !desiredKeys.has(m.key) && isManaged(m.object)).sort(byApplyOrder).reverse();
  for (const m of prunable) {
    const meta = isJsonObject(m.object.metadata) ? m.object.metadata : {};
    const source = annotationOf(m.object, SOURCE_ANNOTATION) ?? '';
    if (meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null) continue;
    if (m.ref.kind === 'Namespace' && groupOf(m.ref.apiVersion) === '') {
      plan.kept.push({ live: m, reason: 'namespaces are never pruned: delete it with kubectl if it is no longer needed' });
    } else if (input.protection.keys.has(looseKey(m.ref))) {
      plan.kept.push({ live: m, reason: 'its document is invalid; it stays as last applied until the document is fixed or removed' });
    } else if (input.protection.files.has(source)) {
      plan.kept.push({ live: m, reason: `${source} could not be read whole; nothing it declared is pruned until it is fixed` });
    } else if (input.repositoryEmpty) {
      plan.kept.push({ live: m, reason: 'the repository has no documents at all; nothing is pruned (delete objects with kubectl if that is the intent)' });
    } else plan.prune.push(m);
  }
  return plan;
}

/** How many writes the plan makes. */
export const writesOf = (p: SyncPlan): number => p.createNamespaces.length + p.create.length + p.patch.length + p.prune.length;
