import type { StatusCause } from './errors.ts';
import type { CompiledSchema } from './schema.ts';
import type { TableSpec } from './table.ts';
import { isJsonObject, type Json, type JsonObject, type KubeObject } from './types.ts';

/** One served group/version/resource, built in or learnt from a CustomResourceDefinition. */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** Objects of every version of a resource live under one key, so versions share storage as in etcd. */
  storageKey: string;
  statusSubresource: boolean;
  /** Whether metadata.generation is maintained (custom resources and CRDs; not ConfigMaps or Secrets). */
  hasGeneration: boolean;
  /** Built-in kinds accept strategic merge patch; custom resources answer it with 415. */
  builtin: boolean;
  schema?: CompiledSchema;
  /** The schema published in /openapi/v3 (components.schemas). */
  openapiSchema: JsonObject;
  table: TableSpec;
  /** Field selector labels besides metadata.name and metadata.namespace, mapped to dotted paths. */
  extraFieldLabels: Record<string, string>;
  /** Server-side normalisation applied on every write before validation (Secret stringData, CRD status…). */
  normalize?(object: KubeObject, old: KubeObject | undefined): void;
  validate?(object: KubeObject, old: KubeObject | undefined): StatusCause[];
  /** The name of the CRD that defines it, for custom resources. */
  crdName?: string;
  /** For a second API over another type's storage (events.k8s.io/v1 over core v1 Events). */
  conversion?: {
    storage: ResourceType;
    toStorage(object: KubeObject): KubeObject;
    fromStorage(object: KubeObject): KubeObject;
  };
}

/** An object as a client of this group/version sees it. */
export function present(rt: ResourceType, object: KubeObject): JsonObject {
  if (rt.conversion) return rt.conversion.fromStorage(object) as unknown as JsonObject;
  return { ...object, apiVersion: apiVersionOf(rt) } as unknown as JsonObject;
}

export function apiVersionOf(rt: Pick<ResourceType, 'group' | 'version'>): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version;
}

export function fieldLabels(rt: ResourceType): Set<string> {
  const labels = new Set(['metadata.name', ...Object.keys(rt.extraFieldLabels)]);
  if (rt.namespaced) labels.add('metadata.namespace');
  return labels;
}

export function fieldValue(rt: ResourceType, object: KubeObject, field: string): string | undefined {
  if (field === 'metadata.name') return object.metadata.name ?? '';
  if (field === 'metadata.namespace') return object.metadata.namespace ?? '';
  const path = rt.extraFieldLabels[field];
  if (!path) return undefined;
  let node: Json | undefined = object as unknown as Json;
  for (const key of path.split('.')) node = isJsonObject(node) ? node[key] : undefined;
  if (node === undefined || node === null) return '';
  return typeof node === 'object' ? JSON.stringify(node) : String(node);
}

/** Kubernetes version priority: GA before beta before alpha, higher numbers first, others last by name. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string): [number, number, number, string] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [3, 0, 0, v];
    const stage = m[2] === 'alpha' ? 2 : m[2] === 'beta' ? 1 : 0;
    return [stage, -Number(m[1]), -Number(m[3] ?? 0), v];
  };
  const pa = parse(a);
  const pb = parse(b);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] as number) - (pb[i] as number);
  return pa[3] < pb[3] ? -1 : pa[3] > pb[3] ? 1 : 0;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

export function validateSubdomain(name: string, field: string): StatusCause[] {
  if (name.length > 253) return [{ reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": must be no more than 253 characters` }];
  if (!DNS1123_SUBDOMAIN.test(name)) {
    return [{
      reason: 'FieldValueInvalid',
      field,
      message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
    }];
  }
  return [];
}

export function validateLabelName(name: string, field: string): StatusCause[] {
  if (name.length <= 63 && DNS1123_LABEL.test(name)) return [];
  return [{
    reason: 'FieldValueInvalid',
    field,
    message: `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
  }];
}

/** Checks labels (keys and values) and annotation keys, which every kind shares. */
export function validateCommonMetadata(object: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  const checkKey = (key: string, field: string): void => {
    const slash = key.lastIndexOf('/');
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    const prefix = slash >= 0 ? key.slice(0, slash) : '';
    if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name) || (prefix && !DNS1123_SUBDOMAIN.test(prefix))) {
      causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: "${key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
  };
  for (const [key, value] of Object.entries(object.metadata.labels ?? {})) {
    checkKey(key, 'metadata.labels');
    if (typeof value !== 'string' || value.length > 63 || !LABEL_VALUE.test(value)) {
      causes.push({ reason: 'FieldValueInvalid', field: 'metadata.labels', message: `Invalid value: "${String(value)}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
    }
  }
  for (const key of Object.keys(object.metadata.annotations ?? {})) checkKey(key, 'metadata.annotations');
  return causes;
}
