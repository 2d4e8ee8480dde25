import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { StatusCause } from './errors.ts';
import { deepClone, isJsonObject, type Json, type JsonObject } from './types.ts';

const addFormats = addFormatsModule.default;

/** Formats ajv-formats can check; the API server ignores any other format, so we drop those. */
const CHECKED_FORMATS = new Set([
  'date', 'date-time', 'duration', 'uri', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid', 'byte', 'int32', 'int64',
  'float', 'double', 'password', 'binary',
]);

const ajv = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true, logger: false });
addFormats(ajv);

/** Translates a structural schema into plain JSON Schema that ajv checks the way kube-openapi does. */
function toAjvSchema(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(toAjvSchema);
  if (!isJsonObject(schema)) return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-kubernetes-') || key === 'default' || key === 'example' || key === 'externalDocs') continue;
    if (key === 'format' && (typeof value !== 'string' || !CHECKED_FORMATS.has(value))) continue;
    if (key === 'properties' && isJsonObject(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toAjvSchema(v)]));
      continue;
    }
    out[key] = typeof value === 'object' && value !== null ? toAjvSchema(value) : value;
  }
  if (schema['x-kubernetes-int-or-string'] === true && out.type === undefined) out.type = ['integer', 'string'];
  return out;
}

export interface CompiledSchema {
  /** The schema as registered (used for OpenAPI documents and for pruning/defaulting). */
  readonly source: JsonObject;
  readonly validate: ValidateFunction;
}

export function compileSchema(source: JsonObject): CompiledSchema {
  const forAjv = toAjvSchema(source) as JsonObject;
  // metadata is validated by the server's own rules, never by the CRD schema.
  if (isJsonObject(forAjv.properties)) {
    const props = { ...forAjv.properties };
    delete props.metadata;
    forAjv.properties = props;
  }
  return { source, validate: ajv.compile(forAjv) };
}

function joinPath(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/**
 * Walks an object against a structural schema: drops unknown fields (recording their paths so that
 * `fieldValidation=Strict` can refuse them), drops nulls the schema does not allow, and fills in defaults.
 * Mutates `value` in place and returns it (or undefined when the value itself must go).
 */
function pruneAndDefault(value: Json, schema: JsonObject | undefined, path: string, unknown: string[], root: boolean): Json | undefined {
  if (!schema) return value;
  if (value === null) return schema.nullable === true ? null : undefined;
  if (Array.isArray(value)) {
    const items = isJsonObject(schema.items) ? schema.items : undefined;
    if (!items) return value;
    const out: Json[] = [];
    value.forEach((item, i) => {
      const next = pruneAndDefault(item, items, `${path}[${i}]`, unknown, false);
      out.push(next === undefined ? null : next);
    });
    return out;
  }
  if (!isJsonObject(value)) return value;
  const props = isJsonObject(schema.properties) ? schema.properties : undefined;
  const additional = schema.additionalProperties;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  const embedded = schema['x-kubernetes-embedded-resource'] === true;
  for (const key of Object.keys(value)) {
    const child = value[key]!;
    const propSchema = props?.[key];
    if (isJsonObject(propSchema)) {
      const next = root && key === 'metadata' ? child : pruneAndDefault(child, propSchema, joinPath(path, key), unknown, false);
      if (next === undefined) delete value[key];
      else value[key] = next;
    } else if (isJsonObject(additional)) {
      const next = pruneAndDefault(child, additional, joinPath(path, key), unknown, false);
      if (next === undefined) delete value[key];
      else value[key] = next;
    } else if (additional === true || preserve) {
      continue;
    } else if ((root || embedded) && (key === 'apiVersion' || key === 'kind' || key === 'metadata')) {
      continue;
    } else {
      unknown.push(joinPath(path, key));
      delete value[key];
    }
  }
  if (props) {
    for (const [key, propSchema] of Object.entries(props)) {
      if (value[key] !== undefined || !isJsonObject(propSchema) || propSchema.default === undefined) continue;
      const next = pruneAndDefault(deepClone(propSchema.default), propSchema, joinPath(path, key), [], false);
      if (next !== undefined) value[key] = next;
    }
  }
  return value;
}

export interface NormalizeResult {
  object: JsonObject;
  /** Paths of fields the schema does not know, e.g. `spec.colour`. */
  unknownFields: string[];
}

/** Prunes unknown fields and applies defaults to a copy of `object`. */
export function normalize(object: JsonObject, schema: CompiledSchema): NormalizeResult {
  const unknownFields: string[] = [];
  const copy = deepClone(object);
  const out = pruneAndDefault(copy, schema.source, '', unknownFields, true);
  return { object: isJsonObject(out) ? out : copy, unknownFields };
}

function fieldPath(instancePath: string): string {
  let out = '';
  for (const raw of instancePath.split('/').slice(1)) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(token)) out += `[${token}]`;
    else out = joinPath(out, token);
  }
  return out;
}

function render(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function valueAt(object: JsonObject, instancePath: string): unknown {
  let node: unknown = object;
  for (const raw of instancePath.split('/').slice(1)) {
    const token = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    node = (node as Record<string, unknown> | undefined)?.[token];
  }
  return node;
}

/** Maps one ajv error to the cause kube-apiserver would report, wording included. */
function toCause(error: ErrorObject, object: JsonObject): StatusCause | undefined {
  const field = fieldPath(error.instancePath);
  const value = valueAt(object, error.instancePath);
  const where = `${field || '<root>'} in body`;
  const p = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required': {
      const missing = String(p.missingProperty);
      return { reason: 'FieldValueRequired', message: 'Required value', field: joinPath(field, missing) };
    }
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(render).join(', ');
      return { reason: 'FieldValueNotSupported', message: `Unsupported value: ${render(value)}: supported values: ${allowed}`, field };
    }
    case 'type':
      return {
        reason: 'FieldValueTypeInvalid',
        message: `Invalid value: ${render(jsonType(value))}: ${where} must be of type ${String(p.type)}: ${render(jsonType(value))}`,
        field,
      };
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum': {
      const words: Record<string, string> = {
        minimum: 'greater than or equal to',
        exclusiveMinimum: 'greater than',
        maximum: 'less than or equal to',
        exclusiveMaximum: 'less than',
      };
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} should be ${words[error.keyword]} ${String(p.limit)}`, field };
    }
    case 'maxLength':
      return { reason: 'FieldValueTooLong', message: `Too long: may not be more than ${String(p.limit)} bytes`, field };
    case 'minLength':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} should be at least ${String(p.limit)} chars long`, field };
    case 'pattern':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} should match '${String(p.pattern)}'`, field };
    case 'maxItems':
      return { reason: 'FieldValueTooMany', message: `Too many: ${Array.isArray(value) ? value.length : 0}: must have at most ${String(p.limit)} items`, field };
    case 'minItems':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} should have at least ${String(p.limit)} items`, field };
    case 'uniqueItems':
      return { reason: 'FieldValueDuplicate', message: `Duplicate value: ${render(value)}`, field };
    case 'format':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} must be of type ${String(p.format)}: ${render(value)}`, field };
    case 'oneOf':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} must validate one and only one schema (oneOf)`, field };
    case 'anyOf':
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} must validate at least one schema (anyOf)`, field };
    case 'if':
      return undefined;
    default:
      return { reason: 'FieldValueInvalid', message: `Invalid value: ${render(value)}: ${where} ${error.message ?? 'is invalid'}`, field };
  }
}

export function validateAgainst(object: JsonObject, schema: CompiledSchema): StatusCause[] {
  if (schema.validate(object)) return [];
  const causes: StatusCause[] = [];
  const seen = new Set<string>();
  const errors = schema.validate.errors ?? [];
  // Errors inside oneOf/anyOf branches explain why each branch failed; kube-apiserver reports the
  // combinator alone, which is also what a user can act on.
  const combinators = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf').map((e) => `${e.schemaPath}/`);
  for (const error of errors) {
    if (combinators.some((prefix) => error.schemaPath.startsWith(prefix))) continue;
    const cause = toCause(error, object);
    if (!cause) continue;
    const key = `${cause.field}|${cause.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    causes.push(cause);
  }
  if (causes.length === 0) causes.push({ reason: 'FieldValueInvalid', message: 'Invalid value: object does not match the schema' });
  return causes;
}
