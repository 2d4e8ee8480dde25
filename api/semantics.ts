/**
 * Per-object rules a structural schema cannot express (conditional requirements, cron syntax, time zones,
 * bounds between fields). They run after the schema check passed, on the object as written (no defaults).
 */
import { assertFromPatterns } from '../nodes/authorized-keys.ts';
import { datasetRootProblems, type DatasetRoot } from '../planning/dataset-grants.ts';
import { keyRotationInterval } from '../planning/key-rotation.ts';
import { parseSize } from '../planning/quota.ts';
import { isValidTimeZone, validateScheduleSpec } from '../planning/schedule.ts';
import { transportLimits, type TransportLimitsSpec } from '../planning/transport.ts';
import { pathProblem, propertyProblem, selectorProblems, type LabelSelector } from '../planning/tenancy.ts';
import { kindByName } from './kinds/index.ts';
import { nameProblem, type NameKind } from './names.ts';
import type { FieldIssue, FieldPath } from './validation.ts';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const ZFS_PROPERTY = /^[a-z][a-z0-9_]*(:[a-z0-9_.:-]+)?$/;

type Obj = Record<string, unknown>;
const asObj = (v: unknown): Obj | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);

export function timeZoneProblem(tz: string): string | undefined {
  if (isValidTimeZone(tz)) return undefined;
  return `unknown time zone ${JSON.stringify(tz)}; use an IANA name such as UTC, Europe/Berlin or America/New_York`;
}

function checkSchedule(schedule: unknown, path: FieldPath, out: FieldIssue[]): void {
  const s = asObj(schedule);
  // Neither or both of interval and cron is the schema's finding already.
  if (!s || (s.interval === undefined) === (s.cron === undefined)) return;
  const result = validateScheduleSpec(s);
  // planning words its problems for a reader without a path ("schedule.cron …"); the path says that here.
  if (!result.ok) out.push({ path: [...path, result.field], message: result.problem.replace(/^schedule\.\w+:?\s*/, '') });
}

/** The schema pattern allows what ZFS's grammar allows; reserved pool names need a list, checked here. */
function checkZfsName(value: unknown, kind: NameKind, path: FieldPath, out: FieldIssue[]): void {
  if (typeof value !== 'string') return;
  const problem = nameProblem(kind, value);
  if (problem) out.push({ path, message: problem });
}

function checkMetadata(kind: string, meta: Obj | undefined, out: FieldIssue[]): void {
  const name = meta?.name;
  if (typeof name !== 'string' || name === '') {
    out.push({ path: ['metadata', 'name'], message: 'required field is missing' });
  } else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    out.push({
      path: ['metadata', 'name'],
      message: 'must be a lowercase RFC 1123 name (letters, digits, "-", "."; starting and ending alphanumeric)',
    });
  }
  const ns = meta?.namespace;
  const def = kindByName(kind);
  if (ns !== undefined && def?.scope === 'Cluster') {
    out.push({ path: ['metadata', 'namespace'], message: `${kind} is cluster-scoped: remove metadata.namespace` });
  } else if (ns !== undefined && (typeof ns !== 'string' || !DNS_LABEL.test(ns) || ns.length > 63)) {
    out.push({ path: ['metadata', 'namespace'], message: 'must be a lowercase RFC 1123 label of at most 63 characters' });
  }
}

/** The schema's pattern bounds the digits; the byte figure must also stay exact (at most 2^53). */
function checkSize(value: unknown, path: FieldPath, out: FieldIssue[]): void {
  if (typeof value !== 'string' || value === 'none') return;
  const parsed = parseSize(value);
  if (!parsed.ok) out.push({ path, message: parsed.problem });
}

function checkMachine(spec: Obj, out: FieldIssue[]): void {
  if (Array.isArray(spec.outboundAddresses)) {
    // The rule the Vector controller applies when it writes the from= option (nodes/authorized-keys.ts).
    try {
      assertFromPatterns(spec.outboundAddresses.map(String));
    } catch (err) {
      out.push({ path: ['spec', 'outboundAddresses'], message: (err as Error).message });
    }
  }
  const conn = asObj(spec.connection);
  if (!conn) return;
  const at = (field: string): FieldPath => ['spec', 'connection', field];
  const pools = Array.isArray(spec.pools) ? spec.pools : [];
  pools.forEach((p, i) => checkZfsName(p, 'pool', ['spec', 'pools', i], out));
  if (typeof spec.mountpointRoot === 'string') {
    const problem = pathProblem(spec.mountpointRoot);
    if (problem) out.push({ path: ['spec', 'mountpointRoot'], message: problem });
  }
  if (Array.isArray(spec.datasetRoots)) {
    const rules = { metadata: { name: '' }, spec: { datasetRoots: spec.datasetRoots as DatasetRoot[], pools: pools.map(String) } };
    for (const p of datasetRootProblems(rules)) out.push({ path: ['spec', 'datasetRoots', p.index], message: p.message });
  }
  checkSize(spec.replicaQuota, ['spec', 'replicaQuota'], out);
  const selector = asObj(asObj(spec.allowedNamespaces)?.selector);
  if (selector) {
    for (const p of selectorProblems(selector as LabelSelector)) {
      out.push({ path: ['spec', 'allowedNamespaces', 'selector', 'matchExpressions', p.index], message: p.message });
    }
  }
  if (conn.type === 'ssh') {
    if (conn.host === undefined) out.push({ path: at('host'), message: 'required for ssh connections' });
    if (conn.hostKey === undefined) {
      out.push({ path: at('hostKey'), message: 'required for ssh connections: pin the key printed by `ssh-keyscan -t ed25519 HOST`' });
    }
    if (conn.privateKeySecretRef === undefined) {
      out.push({ path: at('privateKeySecretRef'), message: 'required for ssh connections: name the Secret holding the private key' });
    }
  } else if (conn.type === 'local') {
    for (const field of ['host', 'port', 'user', 'hostKey', 'privateKeySecretRef']) {
      if (conn[field] !== undefined) out.push({ path: at(field), message: 'only used with type: ssh; remove it or set type: ssh' });
    }
  }
}

function checkStorageTarget(spec: Obj, out: FieldIssue[]): void {
  checkZfsName(spec.parentDataset, 'dataset', ['spec', 'parentDataset'], out);
  checkSize(spec.replicaQuota, ['spec', 'replicaQuota'], out);
  const cap = asObj(spec.capacity);
  const warning = typeof cap?.warningPercent === 'number' ? cap.warningPercent : 80;
  const critical = typeof cap?.criticalPercent === 'number' ? cap.criticalPercent : 90;
  if (critical < warning) {
    out.push({ path: ['spec', 'capacity', 'criticalPercent'], message: `must be at least warningPercent (${warning})` });
  }
  const machines = Array.isArray(spec.machines) ? spec.machines : [];
  const seen = new Map<string, number>();
  machines.forEach((m, i) => {
    const name = asObj(m)?.name;
    if (typeof name !== 'string') return;
    const first = seen.get(name);
    if (first !== undefined) out.push({ path: ['spec', 'machines', i, 'name'], message: `duplicate of machines[${first}]` });
    else seen.set(name, i);
  });
}

function checkRetentionPolicy(spec: Obj, out: FieldIssue[]): void {
  if (typeof spec.timeZone === 'string') {
    const problem = timeZoneProblem(spec.timeZone);
    if (problem) out.push({ path: ['spec', 'timeZone'], message: problem });
  }
  const rules = ['keepLast', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'];
  if (!rules.some((r) => typeof spec[r] === 'number' && spec[r] > 0)) {
    out.push({
      path: ['spec'],
      message: 'keeps nothing but the newest restore point: set keepLast or one of hourly, daily, weekly, monthly, yearly (keepLast: 1 if that is intended)',
    });
  }
}

function checkDataset(spec: Obj, out: FieldIssue[]): void {
  checkZfsName(spec.name, 'dataset', ['spec', 'name'], out);
  checkSchedule(spec.schedule, ['spec', 'schedule'], out);
  const props = asObj(spec.properties);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (!ZFS_PROPERTY.test(key)) {
      out.push({ path: ['spec', 'properties', key], message: 'is not a ZFS property name (lowercase, or module:property for user properties)' });
      continue;
    }
    // The Machine's mountpointRoot is a rule across objects (api/consistency.ts); the path's shape is not.
    const problem = propertyProblem(key, String(value)) ?? (key === 'mountpoint' && value !== 'none' && value !== 'legacy' ? pathProblem(String(value)) : undefined);
    if (problem) out.push({ path: ['spec', 'properties', key], message: problem.replace(new RegExp(`^${key}: `), '') });
  }
  if (props && spec.managementPolicy !== 'Create') {
    out.push({ path: ['spec', 'properties'], message: 'only applied when bdr creates the dataset: set managementPolicy: Create or remove properties' });
  }
}

function checkVector(spec: Obj, out: FieldIssue[]): void {
  checkZfsName(asObj(spec.target)?.dataset, 'dataset', ['spec', 'target', 'dataset'], out);
  checkSize(asObj(spec.target)?.quota, ['spec', 'target', 'quota'], out);
  checkSchedule(spec.schedule, ['spec', 'schedule'], out);
  const rotation = asObj(spec.keyRotation)?.interval;
  if (typeof rotation === 'string') {
    const parsed = keyRotationInterval(rotation);
    if (!parsed.ok) out.push({ path: ['spec', 'keyRotation', 'interval'], message: parsed.problem.replace(/^spec\.keyRotation\.interval:? ?/, '') });
  }
  // The same function the sync reads the fields with: bounds (and the defaults) cannot drift apart.
  const transport = asObj(spec.transport);
  const limits = transport ? transportLimits(transport as TransportLimitsSpec) : undefined;
  if (limits && !limits.ok) for (const p of limits.problems) out.push({ path: ['spec', 'transport', p.field], message: p.problem });
}

/** Rules beyond the schema for one object; assumes the schema check passed. */
export function validateObjectSemantics(obj: Obj): FieldIssue[] {
  const out: FieldIssue[] = [];
  const kind = String(obj.kind);
  checkMetadata(kind, asObj(obj.metadata), out);
  const spec = asObj(obj.spec) ?? {};
  switch (kind) {
    case 'Machine':
      checkMachine(spec, out);
      break;
    case 'StorageTarget':
      checkStorageTarget(spec, out);
      break;
    case 'RetentionPolicy':
      checkRetentionPolicy(spec, out);
      break;
    case 'Dataset':
      checkDataset(spec, out);
      break;
    case 'Vector':
      checkVector(spec, out);
      break;
  }
  return out;
}
