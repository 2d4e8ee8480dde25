/**
 * Which datasets on a Machine a namespace may name: the boundary between tenants that share a host bdr runs
 * commands on as root. One pure function, `datasetAccess`, decides it for every path a resource brings (a
 * Dataset's name, a Vector's replica, a chained vector's source, `bdr restore --to`), in the controllers,
 * `bdr validate` and `bdr plan` alike.
 *
 * A Machine grants roots (`spec.datasetRoots`):
 * - a template ending in `{namespace}` gives each allowed namespace its own root (`tank/{namespace}` gives
 *   namespace `web` the root `tank/web`); `{pool}` as the first component stands for every pool the Machine
 *   uses (spec.pools, or any pool when that is empty). Omitted, the Machine grants `{pool}/{namespace}`.
 * - a fixed root names its one namespace (`{root: tank/vms, namespace: home}`).
 * A StorageTarget listing the machine gives each namespace `PARENT/<namespace>/` there.
 *
 * A path is granted when it lies at or below one of the namespace's roots (strictly below PARENT/<namespace>
 * on a StorageTarget), and refused whenever it overlaps what belongs to someone else, whichever grant would
 * allow it: another namespace's fixed root (either one inside the other), a StorageTarget's parent or another
 * namespace's part of it, or a template's area of another namespace (unless the path lies in a fixed root of
 * its own, which takes precedence over templates), or the place where a template's roots sit side by side
 * (`tank` for `tank/{namespace}`: it holds every namespace's root). A misconfigured Machine (two namespaces'
 * fixed roots nested) therefore fails closed for both; `datasetRootProblems` names the mistake.
 */
import type { MachineRules, Verdict } from './tenancy.ts';

export interface DatasetRoot {
  readonly root: string;
  readonly namespace?: string;
}

/** A StorageTarget's parent dataset on one of its machines. */
export interface StorageArea {
  readonly storageTarget: string;
  readonly parentDataset: string;
}

/** The parts of a Machine this module reads, besides MachineRules' name. */
export interface GrantRules extends MachineRules {
  readonly spec: MachineRules['spec'] & {
    readonly datasetRoots?: readonly DatasetRoot[];
    readonly pools?: readonly string[];
  };
}

export const POOL_PLACEHOLDER = '{pool}';
export const NAMESPACE_PLACEHOLDER = '{namespace}';
export const DEFAULT_DATASET_ROOTS: readonly DatasetRoot[] = [{ root: `${POOL_PLACEHOLDER}/${NAMESPACE_PLACEHOLDER}` }];

const OK: Verdict = { ok: true };
export const NOT_GRANTED = 'DatasetNotGranted';

interface Parsed {
  readonly text: string;
  /** Components; `{pool}` may be the first, `{namespace}` the last. */
  readonly parts: readonly string[];
  readonly template: boolean;
  readonly namespace: string | undefined;
}

function parse(root: DatasetRoot): Parsed {
  const parts = root.root.split('/');
  return { text: root.root, parts, template: parts.at(-1) === NAMESPACE_PLACEHOLDER, namespace: root.namespace };
}

export function rootsOf(machine: GrantRules): readonly DatasetRoot[] {
  const roots = machine.spec.datasetRoots;
  return roots && roots.length > 0 ? roots : DEFAULT_DATASET_ROOTS;
}

/** Does one root component match one path component? `ns` undefined: `{namespace}` matches any name. */
function matches(pattern: string, value: string, index: number, pools: readonly string[], ns: string | undefined): boolean {
  if (index === 0 && pattern === POOL_PLACEHOLDER) return pools.length === 0 || pools.includes(value);
  if (pattern === NAMESPACE_PLACEHOLDER) return ns === undefined || value === ns;
  return pattern === value;
}

/** `path` at or below the pattern (every pattern component matched). */
function atOrBelow(path: readonly string[], pattern: readonly string[], pools: readonly string[], ns?: string): boolean {
  return path.length >= pattern.length && pattern.every((p, i) => matches(p, path[i] ?? '', i, pools, ns));
}

/** `path` at or above the pattern (the path is a prefix of what the pattern names). */
function atOrAbove(path: readonly string[], pattern: readonly string[], pools: readonly string[], ns?: string): boolean {
  return path.length <= pattern.length && path.every((c, i) => matches(pattern[i] ?? '', c, i, pools, ns));
}

const describeRoot = (r: DatasetRoot, ns: string) => (r.root.endsWith(NAMESPACE_PLACEHOLDER) ? r.root.replace(NAMESPACE_PLACEHOLDER, ns) : r.root);

/** The roots a namespace holds on a Machine, in words ("tank/web, backup/web"). */
export function describeRootsFor(machine: GrantRules, namespace: string): string {
  const own = rootsOf(machine).filter((r) => (r.namespace === undefined ? r.root.endsWith(NAMESPACE_PLACEHOLDER) : r.namespace === namespace));
  return own.length === 0 ? 'none' : own.map((r) => describeRoot(r, namespace)).join(', ');
}

/**
 * May `namespace` name `dataset` on this Machine? `areas` are the parents of the StorageTargets that list the
 * Machine. `storageArea` restricts the grant to one StorageTarget's part (a Vector targeting it): the path must
 * lie strictly below PARENT/<namespace>/ of that target.
 */
export function datasetAccess(
  machine: GrantRules,
  namespace: string,
  dataset: string,
  areas: readonly StorageArea[] = [],
  storageArea?: StorageArea,
): Verdict {
  const name = machine.metadata.name;
  const refuse = (why: string): Verdict => ({ ok: false, reason: NOT_GRANTED, message: `${dataset} on Machine ${name}: ${why}` });
  const path = dataset.split('/');
  const pools = machine.spec.pools ?? [];
  if (pools.length > 0 && !pools.includes(path[0] ?? '')) {
    return { ok: false, reason: 'PoolNotManaged', message: `${dataset} on Machine ${name}: pool ${path[0]} is not in the Machine's spec.pools (${pools.join(', ')})` };
  }

  const roots = rootsOf(machine).map(parse);
  // What belongs to someone else, whichever grant would allow the path.
  for (const r of roots) {
    if (r.template || r.namespace === namespace) continue;
    if (atOrBelow(path, r.parts, pools) || atOrAbove(path, r.parts, pools)) {
      return refuse(`it overlaps ${r.text}, the root Machine ${name} grants to namespace ${r.namespace}`);
    }
  }
  let inStorageArea = false;
  for (const a of [...areas, ...(storageArea ? [storageArea] : [])]) {
    const parent = a.parentDataset.split('/');
    if (atOrAbove(path, parent, [])) return refuse(`it holds StorageTarget ${a.storageTarget}'s parentDataset ${a.parentDataset}, where every namespace's replicas land`);
    if (!atOrBelow(path, parent, [])) continue;
    const owner = path[parent.length] ?? '';
    if (owner !== namespace) return refuse(`below StorageTarget ${a.storageTarget}'s parentDataset ${a.parentDataset}, namespace ${namespace} may use only ${a.parentDataset}/${namespace}/`);
    if (path.length === parent.length + 1) return refuse(`${a.parentDataset}/${namespace} holds the namespace's replicas of StorageTarget ${a.storageTarget}; name a dataset below it`);
    inStorageArea = true;
  }
  if (storageArea) {
    const parent = `${storageArea.parentDataset}/${namespace}/`;
    return dataset.startsWith(parent) ? OK : refuse(`a Vector targeting StorageTarget ${storageArea.storageTarget} lands below ${parent}`);
  }
  const ownFixed = roots.some((r) => !r.template && r.namespace === namespace && atOrBelow(path, r.parts, pools));
  for (const r of roots.filter((x) => x.template)) {
    const holder = r.parts.slice(0, -1);
    if (atOrAbove(path, holder, pools)) return refuse(`it holds the root of every namespace that ${r.text} grants`);
    if (!atOrBelow(path, holder, pools) || ownFixed || inStorageArea) continue;
    const owner = path[holder.length] ?? '';
    if (owner !== namespace) return refuse(`it is at or below ${path.slice(0, holder.length + 1).join('/')}, the root ${r.text} grants to namespace ${owner}`);
  }
  const granted = inStorageArea || ownFixed || roots.some((r) => r.template && atOrBelow(path, r.parts, pools, namespace));
  if (granted) return OK;
  return refuse(
    `namespace ${namespace} may use datasets at or below ${describeRootsFor(machine, namespace)} there (spec.datasetRoots${machine.spec.datasetRoots?.length ? '' : ', by default {pool}/{namespace}'})${areas.length > 0 ? ` and below ${areas.map((a) => `${a.parentDataset}/${namespace}/`).join(', ')}` : ''}; rename it, or the Machine's administrator grants a root containing it`,
  );
}

/** Two root patterns of which one lies at or below the other (`{pool}` matches any pool). */
function patternsNest(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i] ?? '';
    const y = b[i] ?? '';
    if (x !== y && !(i === 0 && (x === POOL_PLACEHOLDER || y === POOL_PLACEHOLDER))) return false;
  }
  return true;
}

/** Mistakes in a Machine's spec.datasetRoots, each with the index of the entry; empty when it is sound. */
export function datasetRootProblems(machine: GrantRules): Array<{ index: number; message: string }> {
  const out: Array<{ index: number; message: string }> = [];
  const roots = machine.spec.datasetRoots ?? [];
  const pools = machine.spec.pools ?? [];
  roots.forEach((root, index) => {
    const r = parse(root);
    if (r.template && root.namespace !== undefined) out.push({ index, message: `a root ending in {namespace} is every allowed namespace's; remove namespace ${root.namespace}, or name a fixed root for it` });
    if (!r.template && root.namespace === undefined) out.push({ index, message: `${root.root} names no namespace: add namespace: NAME, or end the root in /{namespace} to give each namespace its own` });
    if (r.template && r.parts.length < 2) out.push({ index, message: 'a template root needs a pool before {namespace}' });
    const pool = r.parts[0] ?? '';
    if (pool !== POOL_PLACEHOLDER && pools.length > 0 && !pools.includes(pool)) out.push({ index, message: `pool ${pool} is not in spec.pools (${pools.join(', ')})` });
    for (let j = 0; j < index; j++) {
      const o = parse(roots[j] ?? { root: '' });
      if (!r.template && !o.template && r.namespace !== o.namespace && patternsNest(r.parts, o.parts)) {
        out.push({ index, message: `${root.root} (namespace ${root.namespace}) overlaps datasetRoots[${j}] ${o.text} (namespace ${o.namespace}): neither namespace may use the overlap` });
      }
      const holders = (a: Parsed) => a.parts.slice(0, -1);
      if (r.template && o.template && r.text !== o.text) {
        if (holders(r).length !== holders(o).length && patternsNest(holders(r), holders(o))) {
          out.push({ index, message: `${root.root} and datasetRoots[${j}] ${o.text} nest: one namespace's root would hold another's; give templates side-by-side parents` });
        }
      }
    }
  });
  return out;
}

/** The StorageTargets' parents on one machine: every StorageTarget that lists it. */
export function storageAreasOf(
  targets: ReadonlyArray<{ readonly metadata: { readonly name: string }; readonly spec: { readonly machines: ReadonlyArray<{ readonly name: string }>; readonly parentDataset: string } }>,
  machine: string,
): StorageArea[] {
  return targets.filter((t) => t.spec.machines.some((m) => m.name === machine)).map((t) => ({ storageTarget: t.metadata.name, parentDataset: t.spec.parentDataset }));
}
