/**
 * The imperative shell of `bdr up`'s apply: reads the repository, asks the cluster what exists, lets
 * `plan.ts` decide, and carries the plan out through @kubernetes/client-node. Every problem is reported with
 * the file and line of the document it concerns; one bad document never stops the others.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { crdFor } from '../api/crd.ts';
import { KINDS } from '../api/kinds/index.ts';
import type { Logger } from '../metrics/log.ts';
import { checkManifests, type Finding } from './check.ts';
import { desiredFromManifests, repoPath, type Scope } from './desired.ts';
import { loadManifests } from './manifests.ts';
import { apiMessage, CRD_RESOURCE, discover, ObjectClient, plain, resourceKey, statusCodeOf } from './client.ts';
import {
  COMMIT_ANNOTATION,
  describeRef,
  isJsonObject,
  liveObject,
  MANAGED_SELECTOR,
  planSync,
  uncoveredPaths,
  type DesiredObject,
  type JsonObject,
  type LiveObject,
  type ObjectRef,
  type SyncPlan,
} from './plan.ts';

/** What one apply did, for logs, `--once`'s exit code and tests. */
export interface SyncReport {
  commit?: string;
  files: number;
  /** Invalid documents, in `file:line: Kind/name: field: message` form (check.ts). */
  findings: Finding[];
  /** Documents the cluster refused or that could not be written, with their source. */
  errors: string[];
  created: string[];
  updated: string[];
  unchanged: number;
  pruned: string[];
  /** Objects left in place that were no longer declared, with the reason. */
  kept: string[];
  createdNamespaces: string[];
  /** Writes to the CustomResourceDefinitions. */
  crdWrites: number;
  /** Every write this apply made (CRDs, namespaces, objects, deletions). */
  writes: number;
}

export const isCleanReport = (r: SyncReport): boolean => r.findings.length === 0 && r.errors.length === 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Creates or refreshes bdr's CustomResourceDefinitions and waits until each is Established, so that the
 * objects applied next are served. Returns the number of writes (0 when they are current).
 */
export async function installCrds(kc: KubeConfig, log: Logger, timeoutMs = 30_000): Promise<number> {
  const api = new ObjectClient(kc, new Map());
  const crdRef = (name: string): ObjectRef => ({ apiVersion: CRD_RESOURCE.apiVersion, kind: CRD_RESOURCE.kind, name });
  let writes = 0;
  for (const kind of KINDS) {
    const desired = plain(crdFor(kind));
    const name = String((desired.metadata as JsonObject).name);
    const live = await api.read(crdRef(name));
    if (!live) {
      await api.create(desired, crdRef(name));
      writes++;
      log.info('created CustomResourceDefinition', { name });
      continue;
    }
    // Compared whole, not as a subset: a property removed from a schema must leave the CRD too.
    const liveSpec: JsonObject = isJsonObject(live.spec) ? { ...live.spec } : {};
    const desiredSpec = desired.spec as JsonObject;
    if (!('conversion' in desiredSpec)) delete liveSpec.conversion;
    if (JSON.stringify(sortKeys(liveSpec)) !== JSON.stringify(sortKeys(desiredSpec))) {
      const liveMeta = live.metadata as JsonObject;
      const replacement = { ...desired, metadata: { ...liveMeta, labels: (desired.metadata as JsonObject).labels ?? null } };
      await api.replace(replacement, crdRef(name));
      writes++;
      log.info('updated CustomResourceDefinition', { name });
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (const kind of KINDS) {
    const name = `${kind.plural}.${crdFor(kind).spec.group}`;
    for (;;) {
      const crd = await api.read(crdRef(name));
      const conditions = crd && isJsonObject(crd.status) && Array.isArray(crd.status.conditions) ? crd.status.conditions : [];
      if (conditions.some((c) => isJsonObject(c) && c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) throw new Error(`CustomResourceDefinition ${name} is not Established after ${timeoutMs} ms`);
      await sleep(100);
    }
  }
  return writes;
}

const NAMESPACE_RESOURCE = { apiVersion: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false, verbs: ['create', 'get', 'list'] };

/**
 * Creates a namespace unless it exists; returns whether it wrote. Unlabelled, so never pruned: bdr up uses it
 * for the operator's own namespace (events about cluster-scoped objects, the Lease of `bdr run`).
 */
export async function ensureNamespace(kc: KubeConfig, name: string): Promise<boolean> {
  const api = new ObjectClient(kc, new Map([[resourceKey('v1', 'Namespace'), NAMESPACE_RESOURCE]]));
  const ref: ObjectRef = { apiVersion: 'v1', kind: 'Namespace', name };
  if (await api.read(ref)) return false;
  try {
    await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, ref);
    return true;
  } catch (err) {
    if (statusCodeOf(err) === 409) return false;
    throw err;
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isJsonObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}

export interface ApplyOptions {
  /** Repository root: the directory whose YAML files are applied (recursively). */
  root: string;
  /** The commit being applied, recorded on each object bdr-up writes. */
  commit?: string;
  log: Logger;
  defaultNamespace?: string;
}

/**
 * Reads, checks and applies a repository, then prunes what left it. Problems with documents end up in the
 * report; it throws only when the repository cannot be read or the cluster cannot be reached, and then nothing
 * is pruned.
 */
export async function applyRepository(kc: KubeConfig, options: ApplyOptions): Promise<SyncReport> {
  const { log } = options;
  const defaultNamespace = options.defaultNamespace ?? 'default';
  const loaded = await loadManifests([options.root]);
  const checked = checkManifests(loaded.manifests, defaultNamespace);
  const parseFindings: Finding[] = loaded.problems.map((p) => ({ file: p.file, line: p.line, object: '', field: '', message: p.message }));

  const crdWrites = await installCrds(kc, log);
  const { byKind, listable } = await discover(kc);
  const scopeOf = (apiVersion: string, kind: string): Scope | undefined => {
    const r = byKind.get(resourceKey(apiVersion, kind));
    return r === undefined ? undefined : r.namespaced ? 'Namespaced' : 'Cluster';
  };
  const shaped = desiredFromManifests({
    root: options.root,
    manifests: loaded.manifests,
    accepted: new Set([...checked.valid, ...checked.foreign]),
    brokenFiles: [...new Set(loaded.problems.map((p) => p.file))],
    scopeOf,
    defaultNamespace,
  });
  // Findings name files relative to the repository root, as the source annotations do: the clone of a remote
  // lives in the state directory, whose path means nothing to whoever reads the finding.
  const findings = [...parseFindings, ...checked.findings, ...shaped.findings]
    .map((f) => ({ ...f, file: repoPath(options.root, f.file) }))
    .sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);

  // A fresh client per apply: its discovery cache must not outlive CRD changes.
  const api = new ObjectClient(kc, byKind);
  const managed: LiveObject[] = [];
  for (const r of listable) for (const item of await api.list(r, MANAGED_SELECTOR)) managed.push(liveObject(item));
  const live = new Map<string, LiveObject | null>(managed.map((m) => [m.key, m]));
  for (const d of shaped.desired) {
    if (live.has(d.key)) continue;
    const object = await api.read(d.ref);
    live.set(d.key, object === null ? null : liveObject(object));
  }
  const namespaceResource = byKind.get(resourceKey('v1', 'Namespace'));
  const namespaceList = namespaceResource ? await api.list(namespaceResource) : [];
  const namespaces = new Set(namespaceList.map((n) => liveObject(n).ref.name));

  const repositoryEmpty = loaded.manifests.length === 0 && loaded.problems.length === 0;
  const plan = planSync({ desired: shaped.desired, live, managed, namespaces, protection: shaped.protection, repositoryEmpty });
  if (repositoryEmpty && plan.kept.length > 0) log.warn('the repository has no documents; nothing is pruned', { root: options.root, kept: plan.kept.length });
  const report = await execute(api, plan, options);
  report.files = loaded.files.length;
  report.findings = findings;
  report.crdWrites = crdWrites;
  report.writes += crdWrites;
  return report;
}

/**
 * A field the server does not keep as written (unknown to its schema, or normalized) would be patched again at
 * every apply; say which, so the typo gets fixed. Names only: values may be secret.
 */
function notHeld(d: DesiredObject, stored: JsonObject, report: SyncReport): void {
  const paths = uncoveredPaths(d.object, stored);
  if (paths.length > 0) report.errors.push(`${at(d)}: the cluster did not keep ${paths.join(', ')} as written (unknown or misspelt fields?)`);
}

const at = (d: DesiredObject): string => `${d.source.file}:${d.source.line}: ${describeRef(d.ref)}`;

async function execute(api: ObjectClient, plan: SyncPlan, options: ApplyOptions): Promise<SyncReport> {
  const { log } = options;
  const report: SyncReport = {
    commit: options.commit,
    files: 0,
    findings: [],
    errors: [],
    created: [],
    updated: [],
    unchanged: plan.unchanged.length,
    pruned: [],
    kept: plan.kept.map((k) => `${describeRef(k.live.ref)}: ${k.reason}`),
    createdNamespaces: [],
    crdWrites: 0,
    writes: 0,
  };
  const stamp = (metadata: JsonObject): JsonObject => {
    if (options.commit === undefined) return metadata;
    const annotations = isJsonObject(metadata.annotations) ? metadata.annotations : {};
    return { ...metadata, annotations: { ...annotations, [COMMIT_ANNOTATION]: options.commit } };
  };

  for (const name of plan.createNamespaces) {
    try {
      // Not labelled: bdr-up never prunes a namespace it created only because an object needed it.
      await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, { apiVersion: 'v1', kind: 'Namespace', name });
      report.createdNamespaces.push(name);
      report.writes++;
      log.info('created namespace', { namespace: name });
    } catch (err) {
      if (statusCodeOf(err) !== 409) report.errors.push(`namespace ${name}: ${apiMessage(err)}`);
    }
  }
  for (const d of plan.create) {
    try {
      const object = { ...d.object, metadata: stamp(d.object.metadata as JsonObject) };
      const stored = await api.create(object, d.ref);
      report.created.push(describeRef(d.ref));
      report.writes++;
      log.info('created', { object: describeRef(d.ref), source: `${d.source.file}:${d.source.line}` });
      notHeld(d, stored, report);
    } catch (err) {
      report.errors.push(`${at(d)}: ${apiMessage(err)}`);
    }
  }
  for (const p of plan.patch) {
    try {
      const stored = await api.mergePatch(p.desired.ref, { ...p.patch, metadata: stamp(isJsonObject(p.patch.metadata) ? p.patch.metadata : {}) });
      report.updated.push(describeRef(p.desired.ref));
      report.writes++;
      // The patch itself is not logged: it may carry a Secret's data.
      log.info(p.adopt ? 'adopted' : 'updated', { object: describeRef(p.desired.ref), source: `${p.desired.source.file}:${p.desired.source.line}` });
      notHeld(p.desired, stored, report);
    } catch (err) {
      report.errors.push(`${at(p.desired)}: ${apiMessage(err)}`);
    }
  }
  for (const m of plan.prune) {
    try {
      const uid = (m.object.metadata as JsonObject).uid;
      // The uid precondition makes sure we delete the object we looked at, not a namesake created since.
      await api.delete(m.ref, typeof uid === 'string' ? uid : undefined);
      report.pruned.push(describeRef(m.ref));
      report.writes++;
      log.info('pruned', { object: describeRef(m.ref) });
    } catch (err) {
      const code = statusCodeOf(err);
      if (code !== 404) report.errors.push(`prune ${describeRef(m.ref)}: ${apiMessage(err)}`);
    }
  }
  for (const k of plan.kept) log.debug('kept', { object: describeRef(k.live.ref), reason: k.reason });
  return report;
}
