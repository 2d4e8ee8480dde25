/**
 * Schema validation of one object against its kind's strict schema, with errors a user can act on: each names
 * the field as a path and says what to write instead. Used by `bdr validate`, by `bdr up` before applying,
 * and (with the same schemas) by the embedded API server.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { objectSchema } from './crd.ts';
import { HOST_KEY_PATTERN, HOST_PATTERN, USER_PATTERN } from './kinds/machine.ts';
import { API_VERSION, KINDS, kindByName, type KindDefinition } from './kinds/index.ts';
import { DATASET_NAME_PATTERN, POOL_NAME_PATTERN, nameProblem } from './names.ts';
import { DURATION_PATTERN, MOUNTPOINT_PATTERN, NAMESPACE_PATTERN, OBJECT_NAME_PATTERN, SIZE_OR_NONE_PATTERN, SIZE_PATTERN } from './schema-parts.ts';

export type FieldPath = ReadonlyArray<string | number>;

export interface FieldIssue {
  /** Where in the object: ['spec', 'connection', 'port']. */
  path: FieldPath;
  message: string;
}

/** Renders a path the way kubectl does: spec.machines[0].name. */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? part : `.${part}`;
  return out === '' ? '(object)' : out;
}

// ajv-formats is CommonJS whose module.exports is the plugin itself; NodeNext typings see only a namespace.
const addFormats = addFormatsModule as unknown as (ajv: Ajv, formats: string[]) => Ajv;

function makeAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictRequired: false, useDefaults: false });
  ajv.addKeyword('x-kubernetes-list-type');
  ajv.addKeyword('x-kubernetes-list-map-keys');
  addFormats(ajv, ['date-time']);
  return ajv;
}

const ajv = makeAjv();
const validators = new Map<string, ValidateFunction>(KINDS.map((k) => [k.kind, ajv.compile(objectSchema(k))]));

const PATTERN_HINTS: ReadonlyArray<[string, (value: unknown) => string]> = [
  [DURATION_PATTERN, () => 'must be a duration such as 90s, 15m, 1h30m, 7d or 2w'],
  [DATASET_NAME_PATTERN, (v) => nameProblem('dataset', String(v)) ?? 'is not a valid ZFS dataset name'],
  [POOL_NAME_PATTERN, (v) => nameProblem('pool', String(v)) ?? 'is not a valid ZFS pool name'],
  [OBJECT_NAME_PATTERN, () => 'must be a Kubernetes object name: lowercase letters, digits, "-" and ".", starting and ending alphanumeric'],
  [HOST_KEY_PATTERN, () => 'must be "TYPE BASE64", e.g. the output of `ssh-keyscan -t ed25519 HOST` without the host name'],
  [HOST_PATTERN, () => 'must be a hostname or an IP address'],
  [USER_PATTERN, () => 'must be a Unix user name: lowercase letters, digits, "_" and "-"'],
  [MOUNTPOINT_PATTERN, () => 'must be an absolute directory such as /srv/tenants (letters, digits and _ . : + - between "/")'],
  [NAMESPACE_PATTERN, () => 'must be a namespace name: lowercase letters, digits and "-", starting and ending alphanumeric'],
  [SIZE_PATTERN, () => 'must be a size: digits with an optional K, M, G, T or P suffix, 1024-based, e.g. 500G'],
  [SIZE_OR_NONE_PATTERN, () => 'must be a size (digits with an optional K, M, G, T or P suffix, 1024-based, e.g. 500G) or none'],
];

function valueAt(obj: unknown, path: FieldPath): unknown {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return cur;
}

function instancePath(e: ErrorObject): Array<string | number> {
  if (e.instancePath === '') return [];
  return e.instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

function translate(e: ErrorObject, obj: unknown): FieldIssue {
  const path = instancePath(e);
  const value = valueAt(obj, path);
  switch (e.keyword) {
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return { path: [...path, missing], message: 'required field is missing' };
    }
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const allowed = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
      return {
        path: [...path, extra],
        message: `unknown field${allowed.length > 0 ? `; known fields here: ${allowed.join(', ')}` : ''}`,
      };
    }
    case 'type':
      return { path, message: `must be ${String((e.params as { type: string }).type)}, not ${describeType(value)}` };
    case 'enum': {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => String(v));
      return { path, message: `must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}` };
    }
    case 'pattern': {
      const pattern = (e.params as { pattern: string }).pattern;
      const hint = PATTERN_HINTS.find(([p]) => p === pattern)?.[1];
      return { path, message: hint ? hint(value) : `must match ${pattern}` };
    }
    case 'oneOf': {
      const branches = (e.schema as Array<{ required?: string[] }>).map((b) => (b.required ?? []).join(' and '));
      return { path, message: `set exactly one of ${branches.join(' or ')}` };
    }
    case 'format':
      return { path, message: `must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z` };
    default:
      return { path, message: e.message ?? `fails ${e.keyword}` };
  }
}

/** Validates apiVersion/kind and the whole object against the kind's strict schema. */
export function validateObjectSchema(obj: unknown): FieldIssue[] {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return [{ path: [], message: 'a Kubernetes object (a map with apiVersion, kind, metadata, spec) is expected' }];
  }
  const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
  const def: KindDefinition | undefined = typeof kind === 'string' ? kindByName(kind) : undefined;
  if (!def) {
    const known = KINDS.map((k) => k.kind).join(', ');
    return [{ path: ['kind'], message: `unknown bdr kind ${JSON.stringify(kind)}; expected one of ${known}` }];
  }
  const issues: FieldIssue[] = [];
  if (apiVersion !== API_VERSION) {
    issues.push({ path: ['apiVersion'], message: `must be ${API_VERSION}, not ${JSON.stringify(apiVersion)}` });
  }
  const validate = validators.get(def.kind);
  if (validate && !validate(obj)) {
    // Errors inside a oneOf branch only say which branch failed; the oneOf error itself says what to do.
    const errors = (validate.errors ?? []).filter((e) => !/\/oneOf\/\d+\//.test(e.schemaPath));
    for (const e of errors) issues.push(translate(e, obj));
  }
  return dedupe(issues);
}

function dedupe(issues: FieldIssue[]): FieldIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${formatPath(i.path)}\0${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** True for documents bdr validates; other kinds (Secret, Namespace, …) in a GitOps repository pass through. */
export function isBdrObject(obj: unknown): boolean {
  if (obj === null || typeof obj !== 'object') return false;
  const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
  return (typeof apiVersion === 'string' && apiVersion.startsWith('bdr.dev/')) || (typeof kind === 'string' && kindByName(kind) !== undefined && apiVersion === undefined);
}
