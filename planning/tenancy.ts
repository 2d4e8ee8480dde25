/**
 * Who may use a Machine, and with what: the tenancy boundary between namespaces and the hosts bdr runs commands
 * on as root. Pure decisions, shared by the controllers (Dataset, Vector, StorageTarget) and `bdr validate`, so
 * that what CI reports is what the operator enforces.
 *
 * - `namespaceAllowed`: a Machine lists the namespaces (by name, or by a label selector on the Namespace) whose
 *   Datasets and Vectors may use it. Nothing listed means nobody: bdr acts as root there, so access is granted
 *   explicitly, like a Gateway's allowedRoutes, never assumed. `selector: {}` is the explicit "every namespace".
 * - `datasetPropertiesVerdict`: Dataset properties are an allowlist of properties whose effect stays inside the
 *   dataset; mountpoint only strictly below the Machine's mountpointRoot; the rest is refused, with a reason.
 * - `datasetVerdict`: both of the above for one Dataset, in the controller's order.
 * - `machineSuspendedVerdict`: a suspended Machine pauses everything on it.
 * - Roles: a StorageTarget lists Storage machines only; a Vector never receives into a Source machine.
 */

import { datasetAccess, type GrantRules, type StorageArea } from './dataset-grants.ts';

export interface LabelSelectorRequirement {
  readonly key: string;
  readonly operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  readonly values?: readonly string[];
}

export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

export interface AllowedNamespaces {
  readonly names?: readonly string[];
  readonly selector?: LabelSelector;
}

/** The parts of a Machine these decisions read (structurally: api/types.ts Machine fits). */
export interface MachineRules {
  readonly metadata: { readonly name: string };
  readonly spec: {
    readonly allowedNamespaces?: AllowedNamespaces;
    readonly mountpointRoot?: string;
    readonly suspend?: boolean;
    readonly role?: string;
  };
}

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly reason: string; readonly message: string };

const OK: Verdict = { ok: true };

/** Kubernetes (1.21+) sets this label on every Namespace to its name; bdr assumes it even where it is missing. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const req of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, req.key);
    const value = labels[req.key];
    const values = req.values ?? [];
    switch (req.operator) {
      case 'In':
        if (!has || !values.includes(value ?? '')) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value ?? '')) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** What Kubernetes refuses in a LabelSelector that a schema cannot say. */
export function selectorProblems(selector: LabelSelector): Array<{ index: number; message: string }> {
  const out: Array<{ index: number; message: string }> = [];
  (selector.matchExpressions ?? []).forEach((req, index) => {
    const n = req.values?.length ?? 0;
    if ((req.operator === 'In' || req.operator === 'NotIn') && n === 0) out.push({ index, message: `operator ${req.operator} needs at least one value` });
    if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && n > 0) out.push({ index, message: `operator ${req.operator} takes no values` });
  });
  return out;
}

export function describeSelector(selector: LabelSelector): string {
  const parts = [
    ...Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(selector.matchExpressions ?? []).map((r) =>
      r.operator === 'Exists' ? r.key : r.operator === 'DoesNotExist' ? `!${r.key}` : `${r.key} ${r.operator.toLowerCase()} (${(r.values ?? []).join(',')})`,
    ),
  ];
  return parts.length === 0 ? 'every namespace' : parts.join(', ');
}

/** The rule in words, for conditions and `bdr validate`. */
export function describeAllowedNamespaces(rule: AllowedNamespaces | undefined): string {
  const names = rule?.names ?? [];
  const parts: string[] = [];
  if (names.length > 0) parts.push(`names [${names.join(', ')}]`);
  if (rule?.selector) parts.push(`selector {${describeSelector(rule.selector)}}`);
  return parts.length === 0 ? 'no spec.allowedNamespaces, so no namespace may use it' : `spec.allowedNamespaces allows ${parts.join(' or ')}`;
}

/**
 * May a Dataset or Vector in `namespace` use this Machine? `namespaceLabels` are the Namespace object's labels
 * (only needed when the rule has a selector); the name label is added as Kubernetes does.
 */
export function namespaceAllowed(machine: MachineRules, namespace: string, namespaceLabels: Readonly<Record<string, string>> = {}): Verdict {
  const rule = machine.spec.allowedNamespaces;
  if (rule?.names?.includes(namespace)) return OK;
  if (rule?.selector && selectorMatches(rule.selector, { ...namespaceLabels, [NAMESPACE_NAME_LABEL]: namespace })) return OK;
  return {
    ok: false,
    reason: 'NamespaceNotAllowed',
    message: `Machine ${machine.metadata.name} does not allow namespace ${namespace}: ${describeAllowedNamespaces(rule)}; its administrator adds the namespace to spec.allowedNamespaces`,
  };
}

/** Condition reason and message for everything on a suspended Machine; the Vector controller uses it too. */
export function machineSuspendedVerdict(machine: MachineRules): Verdict {
  if (!machine.spec.suspend) return OK;
  return { ok: false, reason: 'MachineSuspended', message: `Machine ${machine.metadata.name} is suspended (spec.suspend): nothing runs on it until it is resumed` };
}

/**
 * Native properties a Dataset may set: their effect stays inside the dataset (how it stores, caches, checks and
 * limits its own data, and how its own files' permissions behave). A tenant can already fill the pool by
 * writing data, so quota and reservation give it no new power.
 */
export const ALLOWED_PROPERTIES: ReadonlySet<string> = new Set([
  'aclinherit',
  'aclmode',
  'acltype',
  'atime',
  'canmount',
  'casesensitivity',
  'checksum',
  'compression',
  'copies',
  'dnodesize',
  'filesystem_limit',
  'logbias',
  'normalization',
  'primarycache',
  'quota',
  'readonly',
  'recordsize',
  'redundant_metadata',
  'refquota',
  'refreservation',
  'relatime',
  'reservation',
  'secondarycache',
  'snapdir',
  'snapshot_limit',
  'sync',
  'utf8only',
  'xattr',
]);

/** Properties refused by name, with the reason a user reads. Anything else not allowed gets a generic reason. */
export const REFUSED_PROPERTIES: Readonly<Record<string, string>> = {
  sharenfs: 'would export the dataset to the network',
  sharesmb: 'would export the dataset to the network',
  setuid: "decides whether set-uid files in it run as root on the host: the administrator's choice, inherited from the parent",
  devices: "decides whether device nodes in it open host devices: the administrator's choice, inherited from the parent",
  exec: "decides whether files in it may run on the host: the administrator's choice, inherited from the parent",
  zoned: 'would hand the dataset to a container or zone',
  overlay: 'would mount it over a non-empty directory',
  dedup: "costs memory and I/O of the whole pool and cannot be undone for data written: the administrator's choice, set on a parent",
  encryption: "is the administrator's choice, set on a parent (children inherit it)",
  keyformat: "is the administrator's choice, set on a parent (children inherit it)",
  keylocation: 'would make bdr read a file on the host as root',
  pbkdf2iters: "is the administrator's choice, set on a parent (children inherit it)",
  context: 'sets SELinux labels of the host',
  fscontext: 'sets SELinux labels of the host',
  defcontext: 'sets SELinux labels of the host',
  rootcontext: 'sets SELinux labels of the host',
  volsize: 'bdr creates file systems, not volumes',
  volblocksize: 'bdr creates file systems, not volumes',
};

/** bdr marks its own snapshots with user properties in this module; a Dataset must not forge them. */
const BDR_MODULE = 'dev.bdr:';
const USER_PROPERTY = /^[a-z0-9_.+-]+:[a-z0-9_.:+-]+$/;

/** Why a path is not an absolute, normalised directory, or undefined when it is one. */
export function pathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'must be an absolute path';
  if (path === '/') return 'must not be /';
  if (path.endsWith('/')) return 'must not end with "/"';
  const parts = path.slice(1).split('/');
  if (parts.some((p) => p === '')) return 'must not contain "//"';
  if (parts.some((p) => p === '.' || p === '..')) return 'must not contain "." or ".." components';
  return undefined;
}

/** Why `value` may not be this dataset's mountpoint on a machine with this root, or undefined. */
export function mountpointProblem(value: string, root: string | undefined, machine: string): string | undefined {
  if (value === 'none' || value === 'legacy') return undefined;
  const shape = pathProblem(value);
  if (shape) return `mountpoint ${JSON.stringify(value)} ${shape}`;
  if (root === undefined) {
    return `mountpoint ${JSON.stringify(value)} is refused: Machine ${machine} declares no spec.mountpointRoot, so a Dataset may only set mountpoint none or legacy`;
  }
  if (!value.startsWith(`${root}/`)) {
    return `mountpoint ${JSON.stringify(value)} is not below Machine ${machine}'s spec.mountpointRoot ${root}`;
  }
  return undefined;
}

/** Why a Dataset may not set this property, whatever the machine (mountpoint aside), or undefined. */
export function propertyProblem(name: string, value: string): string | undefined {
  if (name.includes(':')) {
    if (name.startsWith(BDR_MODULE)) return `${name}: user properties in ${BDR_MODULE} are bdr's own marks`;
    if (!USER_PROPERTY.test(name)) return `${name}: is not a user property name (module:name, lowercase)`;
    return undefined;
  }
  if (name === 'mountpoint') return undefined;
  if (ALLOWED_PROPERTIES.has(name)) return undefined;
  const why = REFUSED_PROPERTIES[name];
  if (why) return `${name}: refused, it ${why}`;
  return `${name}: not a property a Dataset may set (allowed: ${[...ALLOWED_PROPERTIES].join(', ')}, mountpoint below the Machine's mountpointRoot, and user properties module:name); value ${JSON.stringify(value)}`;
}

/** Every problem with a Dataset's properties on this machine (empty when it may be created with them). */
export function datasetPropertyProblems(properties: Readonly<Record<string, string>> | undefined, machine: MachineRules | undefined): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(properties ?? {})) {
    const problem = propertyProblem(name, value);
    if (problem) out.push(problem);
    else if (name === 'mountpoint' && machine) {
      const mp = mountpointProblem(value, machine.spec.mountpointRoot, machine.metadata.name);
      if (mp) out.push(mp);
    }
  }
  return out;
}

export function datasetPropertiesVerdict(properties: Readonly<Record<string, string>> | undefined, machine: MachineRules): Verdict {
  const problems = datasetPropertyProblems(properties, machine);
  if (problems.length === 0) return OK;
  const reason = problems.every((p) => p.startsWith('mountpoint ')) ? 'MountpointNotAllowed' : 'PropertyNotAllowed';
  return { ok: false, reason, message: `spec.properties: ${problems.join('; ')}` };
}

/**
 * The Machine's verdict on a Dataset, in the order the Dataset controller applies it (and `bdr plan` shows it):
 * its namespace, its name (below a root the Machine grants the namespace, planning/dataset-grants.ts), then its
 * properties. A refused Dataset gets no command on the machine. `areas` are the parents of the StorageTargets
 * that list the machine.
 */
export function datasetVerdict(
  machine: GrantRules,
  dataset: { readonly namespace: string; readonly name?: string; readonly properties?: Readonly<Record<string, string>> | undefined },
  namespaceLabels: Readonly<Record<string, string>> = {},
  areas: readonly StorageArea[] = [],
): Verdict {
  const allowed = namespaceAllowed(machine, dataset.namespace, namespaceLabels);
  if (!allowed.ok) return allowed;
  if (dataset.name !== undefined) {
    const access = datasetAccess(machine, dataset.namespace, dataset.name, areas);
    // A pool outside spec.pools is reported by the controller's own check (PoolNotManaged, after these rules).
    if (!access.ok && access.reason !== 'PoolNotManaged') return { ...access, message: `spec.name: ${access.message}` };
  }
  return datasetPropertiesVerdict(dataset.properties, machine);
}

const roleOf = (machine: MachineRules): string => machine.spec.role ?? 'Source';

/** A StorageTarget's machines receive replicas: only role Storage. */
export function storageTargetMachineProblem(machine: MachineRules): string | undefined {
  const role = roleOf(machine);
  return role === 'Storage' ? undefined : `Machine ${machine.metadata.name} has role ${role}; a StorageTarget lists only machines with role Storage`;
}

/** A Vector's target machine receives a replica: an Aggregator or a Storage machine, never a Source. */
export function vectorTargetMachineProblem(machine: MachineRules): string | undefined {
  const role = roleOf(machine);
  return role === 'Source' ? `Machine ${machine.metadata.name} has role Source, which never receives replicas; target an Aggregator or Storage machine` : undefined;
}

/**
 * Where a file system bdr creates would mount by inheritance, and whether that may stand. A Dataset that sets no
 * mountpoint inherits its nearest existing ancestor's, plus its own path below it: on root-on-ZFS a name below
 * `rpool/ROOT/debian` would mount over `/etc` or `/usr`. bdr lets it inherit only a mountpoint strictly below
 * the Machine's spec.mountpointRoot (or none/legacy, which mount nothing); otherwise it is created with
 * mountpoint=none and the reason is returned for the event. Pure: the ancestor's mountpoint is an input.
 */
export function inheritedMountpoint(
  machine: MachineRules,
  dataset: { readonly name: string; readonly properties?: Readonly<Record<string, string>> | undefined },
  ancestor: { readonly name: string; readonly mountpoint: string },
): { readonly properties: Readonly<Record<string, string>>; readonly note?: string } {
  if (dataset.properties?.mountpoint !== undefined) return { properties: {} };
  const { mountpoint } = ancestor;
  if (mountpoint === 'none' || mountpoint === 'legacy' || mountpoint === '-') return { properties: {} };
  const rest = dataset.name.slice(ancestor.name.length).replace(/^\//, '');
  const would = rest === '' ? mountpoint : `${mountpoint === '/' ? '' : mountpoint}/${rest}`;
  if (mountpointProblem(would, machine.spec.mountpointRoot, machine.metadata.name) === undefined) return { properties: {} };
  const root = machine.spec.mountpointRoot;
  return {
    properties: { mountpoint: 'none' },
    note: `not mounted: it would have inherited mountpoint ${would} from ${ancestor.name}, ${root === undefined ? `and Machine ${machine.metadata.name} declares no spec.mountpointRoot` : `outside Machine ${machine.metadata.name}'s spec.mountpointRoot ${root}`}; set spec.properties.mountpoint below it to mount it`,
  };
}
