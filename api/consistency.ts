/**
 * Rules across objects, which no per-object schema can check: references resolve, nothing is declared twice,
 * no two vectors write into one dataset, no vector receives into a dataset bdr also snapshots, no
 * replication cycle; and the Machines' rules (planning/tenancy.ts): allowed namespaces, mountpoint root, roles. Pure: objects in, issues out; the caller decides how to show where an object came from.
 */
import {
  mountpointProblem,
  namespaceAllowed,
  pathProblem,
  storageTargetMachineProblem,
  vectorTargetMachineProblem,
  type MachineRules,
} from '../planning/tenancy.ts';
import { datasetAccess, storageAreasOf, type GrantRules } from '../planning/dataset-grants.ts';
import { replicaQuota, type QuotaCeiling } from '../planning/quota.ts';
import { nameProblem } from './names.ts';
import type { FieldPath } from './validation.ts';

type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export interface Declared<Ref> {
  obj: Obj;
  ref: Ref;
}

export interface CrossIssue<Ref> {
  ref: Ref;
  path: FieldPath;
  message: string;
}

const CLUSTER_SCOPED = new Set(['Machine', 'StorageTarget']);

export function objectKey(obj: Obj, defaultNamespace = 'default'): string {
  const meta = asObj(obj.metadata);
  const kind = String(obj.kind);
  const ns = CLUSTER_SCOPED.has(kind) ? '' : (str(meta?.namespace) ?? defaultNamespace);
  return `${kind}/${ns}/${str(meta?.name) ?? ''}`;
}

/** Human form of an object's identity: Kind/name or Kind/namespace/name. */
export function displayName(obj: Obj, defaultNamespace = 'default'): string {
  const meta = asObj(obj.metadata);
  const kind = String(obj.kind);
  const name = str(meta?.name) ?? '(unnamed)';
  return CLUSTER_SCOPED.has(kind) ? `${kind}/${name}` : `${kind}/${str(meta?.namespace) ?? defaultNamespace}/${name}`;
}

/**
 * Where a vector's replica lands. A StorageTarget's machine is chosen at pairing time, so its replicas are
 * identified by target and dataset; the default dataset is PARENT/NAMESPACE/VECTOR.
 */
function vectorTarget(v: Obj, ns: string, targets: Map<string, Obj>): string | undefined {
  const target = asObj(asObj(v.spec)?.target);
  const machine = str(asObj(target?.machineRef)?.name);
  const dataset = str(target?.dataset);
  if (machine && dataset) return `machine:${machine}:${dataset}`;
  const st = str(asObj(target?.storageTargetRef)?.name);
  if (!st) return undefined;
  if (dataset) return `storage:${st}:${dataset}`;
  const parent = str(asObj(targets.get(`StorageTarget//${st}`)?.spec)?.parentDataset);
  const name = str(asObj(v.metadata)?.name);
  return parent && name ? `storage:${st}:${parent}/${ns}/${name}` : undefined;
}

export function checkConsistency<Ref>(
  declared: ReadonlyArray<Declared<Ref>>,
  locate: (ref: Ref) => string,
  defaultNamespace = 'default',
): Array<CrossIssue<Ref>> {
  const issues: Array<CrossIssue<Ref>> = [];
  const byKey = new Map<string, Declared<Ref>>();
  const storageTargets = new Map<string, Obj>();

  for (const d of declared) {
    const key = objectKey(d.obj, defaultNamespace);
    const first = byKey.get(key);
    if (first) {
      issues.push({ ref: d.ref, path: ['metadata', 'name'], message: `declared twice; first at ${locate(first.ref)}` });
      continue;
    }
    byKey.set(key, d);
    if (d.obj.kind === 'StorageTarget') storageTargets.set(key, d.obj);
  }
  const unique = [...byKey.values()];
  const nsOf = (o: Obj) => str(asObj(o.metadata)?.namespace) ?? defaultNamespace;
  const machineOf = (name: unknown): GrantRules | undefined => {
    const m = typeof name === 'string' ? byKey.get(`Machine//${name}`)?.obj : undefined;
    return m ? { metadata: { name: name as string }, spec: (asObj(m.spec) ?? {}) as GrantRules['spec'] } : undefined;
  };
  // StorageTargets as declared, for the areas their parents reserve on each machine.
  const targetList = [...storageTargets.values()].map((t) => ({
    metadata: { name: str(asObj(t.metadata)?.name) ?? '' },
    spec: {
      parentDataset: str(asObj(t.spec)?.parentDataset) ?? '',
      machines: (Array.isArray(asObj(t.spec)?.machines) ? (asObj(t.spec)?.machines as unknown[]) : []).map((m) => ({ name: str(asObj(m)?.name) ?? '' })),
    },
  })).filter((t) => t.spec.parentDataset !== '');
  /** A path the namespace names on a machine, checked against the Machine's grants (planning/dataset-grants.ts). */
  const requireGranted = (d: Declared<Ref>, path: FieldPath, machine: GrantRules | undefined, dataset: unknown) => {
    if (!machine || typeof dataset !== 'string' || nameProblem('dataset', dataset) !== undefined) return;
    const ns = nsOf(d.obj);
    const labels = namespaceLabels(ns);
    // A namespace the Machine does not allow is reported as that already, and one it may allow by labels not
    // known here is left to the operator, paths included.
    if (!namespaceAllowed(machine, ns, labels ?? {}).ok) return;
    const verdict = datasetAccess(machine, ns, dataset, storageAreasOf(targetList, machine.metadata.name));
    // A pool outside spec.pools is the controller's to report (PoolNotManaged, with the pool's status), as before.
    if (!verdict.ok && verdict.reason !== 'PoolNotManaged') issues.push({ ref: d.ref, path, message: verdict.message });
  };
  // Namespace labels are known only for Namespaces declared beside; a selector rule on an undeclared
  // namespace is left to the operator, which reads the live Namespace.
  const namespaceLabels = (ns: string): Record<string, string> | undefined => {
    const n = declared.find((d) => d.obj.kind === 'Namespace' && str(asObj(d.obj.metadata)?.name) === ns)?.obj;
    return n ? ((asObj(asObj(n.metadata)?.labels) ?? {}) as Record<string, string>) : undefined;
  };
  const requireAllowed = (d: Declared<Ref>, path: FieldPath, machine: MachineRules | undefined) => {
    if (!machine) return;
    const ns = nsOf(d.obj);
    const labels = namespaceLabels(ns);
    if (machine.spec.allowedNamespaces?.selector && labels === undefined) return;
    const verdict = namespaceAllowed(machine, ns, labels ?? {});
    if (!verdict.ok) issues.push({ ref: d.ref, path, message: verdict.message });
  };

  const requireRef = (d: Declared<Ref>, path: FieldPath, kind: string, name: unknown, namespaced: boolean) => {
    if (typeof name !== 'string') return;
    const key = `${kind}/${namespaced ? nsOf(d.obj) : ''}/${name}`;
    if (!byKey.has(key)) {
      const where = namespaced ? ` in namespace ${nsOf(d.obj)}` : '';
      issues.push({ ref: d.ref, path, message: `${kind} ${JSON.stringify(name)} is not declared${where}; declare it or fix the name` });
    }
  };

  // Where each declared Dataset lives, to find duplicates and vectors writing over a managed dataset.
  const datasetAt = new Map<string, Declared<Ref>>();
  for (const d of unique.filter((x) => x.obj.kind === 'Dataset')) {
    const spec = asObj(d.obj.spec);
    requireRef(d, ['spec', 'machineRef', 'name'], 'Machine', asObj(spec?.machineRef)?.name, false);
    requireRef(d, ['spec', 'retentionPolicyRef', 'name'], 'RetentionPolicy', asObj(spec?.retentionPolicyRef)?.name, true);
    const machine = machineOf(asObj(spec?.machineRef)?.name);
    requireAllowed(d, ['spec', 'machineRef', 'name'], machine);
    requireGranted(d, ['spec', 'name'], machine, spec?.name);
    const mountpoint = str(asObj(spec?.properties)?.mountpoint);
    // A malformed path is the object's own problem, reported by api/semantics.ts.
    if (machine && mountpoint !== undefined && (mountpoint === 'none' || mountpoint === 'legacy' || pathProblem(mountpoint) === undefined)) {
      const problem = mountpointProblem(mountpoint, machine.spec.mountpointRoot, machine.metadata.name);
      if (problem) issues.push({ ref: d.ref, path: ['spec', 'properties', 'mountpoint'], message: problem });
    }
    const loc = `machine:${str(asObj(spec?.machineRef)?.name)}:${str(spec?.name)}`;
    const other = datasetAt.get(loc);
    if (other) {
      issues.push({
        ref: d.ref,
        path: ['spec', 'name'],
        message: `the same ZFS dataset on the same machine is already declared by ${displayName(other.obj, defaultNamespace)} at ${locate(other.ref)}`,
      });
    } else datasetAt.set(loc, d);
  }

  for (const d of unique.filter((x) => x.obj.kind === 'StorageTarget')) {
    const machines = asObj(d.obj.spec)?.machines;
    (Array.isArray(machines) ? machines : []).forEach((m, i) => {
      requireRef(d, ['spec', 'machines', i, 'name'], 'Machine', asObj(m)?.name, false);
      const machine = machineOf(asObj(m)?.name);
      const problem = machine && storageTargetMachineProblem(machine);
      if (problem) issues.push({ ref: d.ref, path: ['spec', 'machines', i, 'name'], message: problem });
    });
  }

  const vectors = unique.filter((x) => x.obj.kind === 'Vector');
  const targetOf = new Map<string, string>();
  const writerAt = new Map<string, Declared<Ref>>();
  for (const d of vectors) {
    const spec = asObj(d.obj.spec);
    const source = asObj(spec?.source);
    const target = asObj(spec?.target);
    requireRef(d, ['spec', 'source', 'datasetRef', 'name'], 'Dataset', asObj(source?.datasetRef)?.name, true);
    requireRef(d, ['spec', 'source', 'vectorRef', 'name'], 'Vector', asObj(source?.vectorRef)?.name, true);
    requireRef(d, ['spec', 'target', 'storageTargetRef', 'name'], 'StorageTarget', asObj(target?.storageTargetRef)?.name, false);
    requireRef(d, ['spec', 'target', 'machineRef', 'name'], 'Machine', asObj(target?.machineRef)?.name, false);
    requireRef(d, ['spec', 'retentionPolicyRef', 'name'], 'RetentionPolicy', asObj(spec?.retentionPolicyRef)?.name, true);
    const targetMachine = machineOf(asObj(target?.machineRef)?.name);
    const roleProblem = targetMachine && vectorTargetMachineProblem(targetMachine);
    if (roleProblem) issues.push({ ref: d.ref, path: ['spec', 'target', 'machineRef', 'name'], message: roleProblem });
    else requireAllowed(d, ['spec', 'target', 'machineRef', 'name'], targetMachine);

    // A replica outside its StorageTarget's parentDataset would land where no capacity figure or cleanup looks.
    const stName = str(asObj(target?.storageTargetRef)?.name);
    const parent = str(asObj(storageTargets.get(`StorageTarget//${stName ?? ''}`)?.spec)?.parentDataset);
    const explicit = str(target?.dataset);
    const ns = nsOf(d.obj);
    if (stName && parent && explicit && !explicit.startsWith(`${parent}/${ns}/`)) {
      issues.push({ ref: d.ref, path: ['spec', 'target', 'dataset'], message: `${explicit} is outside ${parent}/${ns}/, the part of the StorageTarget's parentDataset namespace ${ns} may use; name a dataset below it, or omit it for ${parent}/${ns}/${str(asObj(d.obj.metadata)?.name) ?? 'VECTOR'}` });
    }
    if (targetMachine && !roleProblem) requireGranted(d, ['spec', 'target', 'dataset'], targetMachine, target?.dataset);
    // The administrators' quota ceiling (the StorageTarget's, else the target Machine's): a Vector may ask for less only.
    if (typeof target?.quota === 'string') {
      const st = storageTargets.get(`StorageTarget//${stName ?? ''}`);
      const ceilings: QuotaCeiling[] = [
        ...(st ? [{ text: str(asObj(st.spec)?.replicaQuota), from: 'StorageTarget' as const, name: stName ?? '' }] : []),
        ...(targetMachine ? [{ text: str(asObj(targetMachine.spec)?.replicaQuota), from: 'Machine' as const, name: targetMachine.metadata.name }] : []),
      ];
      const quota = replicaQuota(ceilings, target.quota);
      if (!quota.ok && quota.reason) issues.push({ ref: d.ref, path: ['spec', 'target', 'quota'], message: quota.problem.replace(/^spec\.target\.quota /, '') });
    }

    const loc = vectorTarget(d.obj, nsOf(d.obj), storageTargets);
    if (!loc) continue;
    targetOf.set(objectKey(d.obj, defaultNamespace), loc);
    const targetPath: FieldPath = ['spec', 'target', target?.dataset !== undefined ? 'dataset' : 'storageTargetRef'];
    const other = writerAt.get(loc);
    if (other) {
      issues.push({
        ref: d.ref,
        path: targetPath,
        message: `${displayName(other.obj, defaultNamespace)} at ${locate(other.ref)} already replicates into this dataset; give each vector its own target dataset`,
      });
    } else writerAt.set(loc, d);
    const managed = datasetAt.get(loc);
    if (managed) {
      issues.push({
        ref: d.ref,
        path: targetPath,
        message: `the target is also declared as ${displayName(managed.obj, defaultNamespace)} at ${locate(managed.ref)}, whose snapshots would break every incremental receive; to replicate a replica further use source.vectorRef`,
      });
    }
  }

  for (const cycle of vectorCycles(vectors.map((v) => v.obj), defaultNamespace)) {
    const d = byKey.get(cycle[0] ?? '');
    if (!d) continue;
    const names = cycle.map((k) => displayName(byKey.get(k)?.obj ?? {}, defaultNamespace));
    issues.push({
      ref: d.ref,
      path: ['spec', 'source', 'vectorRef', 'name'],
      message: `replication cycle: ${[...names, names[0]].join(' → ')}; a chain must start at a Dataset`,
    });
  }
  return issues;
}

/** Cycles through source.vectorRef, each reported once, starting at its smallest key. */
function vectorCycles(vectors: Obj[], defaultNamespace: string): string[][] {
  const next = new Map<string, string>();
  for (const v of vectors) {
    const ref = str(asObj(asObj(asObj(v.spec)?.source)?.vectorRef)?.name);
    if (ref) next.set(objectKey(v, defaultNamespace), `Vector/${str(asObj(v.metadata)?.namespace) ?? defaultNamespace}/${ref}`);
  }
  const cycles: string[][] = [];
  const done = new Set<string>();
  for (const start of next.keys()) {
    const path: string[] = [];
    const onPath = new Set<string>();
    let cur: string | undefined = start;
    while (cur !== undefined && !done.has(cur) && !onPath.has(cur)) {
      path.push(cur);
      onPath.add(cur);
      cur = next.get(cur);
    }
    if (cur !== undefined && onPath.has(cur)) {
      const cycle = path.slice(path.indexOf(cur));
      const min = cycle.reduce((a, b) => (b < a ? b : a));
      const rotated = [...cycle.slice(cycle.indexOf(min)), ...cycle.slice(0, cycle.indexOf(min))];
      cycles.push(rotated);
    }
    for (const p of path) done.add(p);
  }
  return cycles;
}
