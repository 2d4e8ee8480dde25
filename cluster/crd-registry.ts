import { builtin, configmaps, events, genericObjectSchema, leases, namespaces, secrets } from './builtins.ts';
import type { StatusCause } from './errors.ts';
import { eventsV1 } from './events.ts';
import { apiVersionOf, compareVersions, type ResourceType } from './resources.ts';
import { compileSchema, type CompiledSchema } from './schema.ts';
import { printerColumnTable, type PrinterColumn } from './table.ts';
import { deepClone, isJsonObject, jsonEqual, nowTimestamp, type Json, type JsonObject, type KubeObject } from './types.ts';

export const CRD_STORAGE_KEY = 'apiextensions.k8s.io/customresourcedefinitions';

interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema?: JsonObject;
  statusSubresource: boolean;
  printerColumns: PrinterColumn[];
}

interface CrdView {
  name: string;
  group: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  shortNames: string[];
  categories: string[];
  namespaced: boolean;
  versions: CrdVersion[];
}

function strings(value: Json | undefined): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function str(value: Json | undefined): string {
  return typeof value === 'string' ? value : '';
}

/** Reads the parts of a CRD the server acts on; tolerant, because validation reports what is wrong. */
function view(crd: KubeObject): CrdView {
  const spec = isJsonObject(crd.spec) ? crd.spec : {};
  const names = isJsonObject(spec.names) ? spec.names : {};
  const kind = str(names.kind);
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isJsonObject) : [];
  return {
    name: crd.metadata.name ?? '',
    group: str(spec.group),
    plural: str(names.plural),
    singular: str(names.singular) || kind.toLowerCase(),
    kind,
    listKind: str(names.listKind) || `${kind}List`,
    shortNames: strings(names.shortNames),
    categories: strings(names.categories),
    namespaced: spec.scope !== 'Cluster',
    versions: versions.map((v) => {
      const schema = isJsonObject(v.schema) && isJsonObject(v.schema.openAPIV3Schema) ? v.schema.openAPIV3Schema : undefined;
      const subresources = isJsonObject(v.subresources) ? v.subresources : {};
      const columns = Array.isArray(v.additionalPrinterColumns) ? v.additionalPrinterColumns.filter(isJsonObject) : [];
      return {
        name: str(v.name),
        served: v.served !== false,
        storage: v.storage === true,
        schema,
        statusSubresource: subresources.status !== undefined && subresources.status !== null,
        printerColumns: columns.map((c) => ({
          name: str(c.name),
          type: str(c.type) || 'string',
          format: str(c.format),
          description: str(c.description) || undefined,
          priority: typeof c.priority === 'number' ? c.priority : 0,
          jsonPath: str(c.jsonPath),
        })),
      };
    }),
  };
}

const schemaCache = new Map<string, CompiledSchema>();

function compiled(schema: JsonObject): CompiledSchema {
  const key = JSON.stringify(schema);
  let hit = schemaCache.get(key);
  if (!hit) {
    hit = compileSchema(schema);
    schemaCache.set(key, hit);
  }
  return hit;
}

function openapiSchemaFor(v: CrdView, version: CrdVersion): JsonObject {
  const base: JsonObject = version.schema ? deepClone(version.schema) : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  const props: JsonObject = isJsonObject(base.properties) ? { ...base.properties } : {};
  props.apiVersion = { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.' };
  props.kind = { type: 'string', description: 'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to.' };
  props.metadata = { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta', description: "Standard object's metadata." };
  base.properties = props;
  base['x-kubernetes-group-version-kind'] = [{ group: v.group, version: version.name, kind: v.kind }];
  return base;
}

export function resourceTypesFromCrd(crd: KubeObject): ResourceType[] {
  const v = view(crd);
  return v.versions
    .filter((ver) => ver.served && ver.name)
    .map((ver) => ({
      group: v.group,
      version: ver.name,
      plural: v.plural,
      singular: v.singular,
      kind: v.kind,
      listKind: v.listKind,
      namespaced: v.namespaced,
      shortNames: v.shortNames,
      categories: v.categories,
      storageKey: `${v.group}/${v.plural}`,
      statusSubresource: ver.statusSubresource,
      hasGeneration: true,
      builtin: false,
      schema: ver.schema ? compiled(ver.schema) : undefined,
      openapiSchema: openapiSchemaFor(v, ver),
      table: printerColumnTable(ver.printerColumns),
      extraFieldLabels: {},
      crdName: v.name,
    }));
}

function validateCrd(crd: KubeObject): StatusCause[] {
  const v = view(crd);
  const causes: StatusCause[] = [];
  const spec = isJsonObject(crd.spec) ? crd.spec : {};
  if (!v.group) causes.push({ reason: 'FieldValueRequired', field: 'spec.group', message: 'Required value' });
  if (!v.plural) causes.push({ reason: 'FieldValueRequired', field: 'spec.names.plural', message: 'Required value' });
  if (!v.kind) causes.push({ reason: 'FieldValueRequired', field: 'spec.names.kind', message: 'Required value' });
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    causes.push({ reason: 'FieldValueNotSupported', field: 'spec.scope', message: `Unsupported value: ${JSON.stringify(spec.scope ?? '')}: supported values: "Cluster", "Namespaced"` });
  }
  if (v.plural && v.group && v.name !== `${v.plural}.${v.group}`) {
    causes.push({ reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: "${v.name}": must be spec.names.plural+"."+spec.group` });
  }
  if (v.plural && v.plural !== v.plural.toLowerCase()) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.names.plural', message: `Invalid value: "${v.plural}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'` });
  }
  if (v.versions.length === 0) causes.push({ reason: 'FieldValueRequired', field: 'spec.versions', message: 'Required value: must have exactly one version marked as storage version' });
  else if (v.versions.filter((x) => x.storage).length !== 1) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.versions', message: 'Invalid value: must have exactly one version marked as storage version' });
  }
  v.versions.forEach((ver, i) => {
    if (!ver.schema) return;
    try {
      compiled(ver.schema);
    } catch (err) {
      causes.push({
        reason: 'FieldValueInvalid',
        field: `spec.versions[${i}].schema.openAPIV3Schema`,
        message: `Invalid value: "object": ${err instanceof Error ? err.message : String(err)}`,
      });
    }
  });
  return causes;
}

function condition(type: string, reason: string, message: string, old: Json[] | undefined): JsonObject {
  const previous = old?.find((c) => isJsonObject(c) && c.type === type);
  const lastTransitionTime = isJsonObject(previous) && previous.status === 'True' && typeof previous.lastTransitionTime === 'string'
    ? previous.lastTransitionTime
    : nowTimestamp();
  return { type, status: 'True', lastTransitionTime, reason, message };
}

/** Fills the defaults and the status the apiextensions controllers would set, so `kubectl wait` works. */
function normalizeCrd(crd: KubeObject, old: KubeObject | undefined): void {
  const spec: JsonObject = isJsonObject(crd.spec) ? crd.spec : {};
  crd.spec = spec;
  const names: JsonObject = isJsonObject(spec.names) ? spec.names : {};
  spec.names = names;
  if (typeof names.kind === 'string') {
    if (!names.singular) names.singular = names.kind.toLowerCase();
    if (!names.listKind) names.listKind = `${names.kind}List`;
  }
  if (!isJsonObject(spec.conversion)) spec.conversion = { strategy: 'None' };
  const v = view(crd);
  const oldStatus = old && isJsonObject(old.status) ? old.status : {};
  const oldConditions = Array.isArray(oldStatus.conditions) ? oldStatus.conditions : undefined;
  const stored = new Set(strings(oldStatus.storedVersions));
  for (const ver of v.versions) if (ver.storage) stored.add(ver.name);
  const acceptedNames: JsonObject = { plural: v.plural, singular: v.singular, kind: v.kind, listKind: v.listKind };
  if (v.shortNames.length) acceptedNames.shortNames = v.shortNames;
  if (v.categories.length) acceptedNames.categories = v.categories;
  crd.status = {
    conditions: [
      condition('NamesAccepted', 'NoConflicts', 'no conflicts found', oldConditions),
      condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted', oldConditions),
    ],
    acceptedNames,
    storedVersions: [...stored],
  };
}

export const customResourceDefinitions: ResourceType = {
  ...builtin({
    group: 'apiextensions.k8s.io',
    version: 'v1',
    plural: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    shortNames: ['crd', 'crds'],
    statusSubresource: true,
    hasGeneration: true,
    schema: {
      ...genericObjectSchema('CustomResourceDefinition represents a resource that should be exposed on the API server.'),
      properties: {
        ...(genericObjectSchema('').properties as JsonObject),
        spec: { type: 'object', description: 'spec describes how the user wants the resources to appear', 'x-kubernetes-preserve-unknown-fields': true },
        status: { type: 'object', description: 'status indicates the actual state of the CustomResourceDefinition', 'x-kubernetes-preserve-unknown-fields': true },
      },
    },
    table: {
      columns: [{ name: 'Created At', type: 'date', format: '', description: 'creation time', priority: 0 }],
      cells: (o) => [o.metadata.creationTimestamp ?? null],
    },
  }),
  normalize: normalizeCrd,
  validate: validateCrd,
};

export const BUILTIN_TYPES: ResourceType[] = [namespaces, configmaps, secrets, events, eventsV1, leases, customResourceDefinitions];

/** Every served resource, keyed by group/version/plural; CRD writes add and remove entries. */
export class Registry {
  private readonly types = new Map<string, ResourceType>();
  private readonly byCrd = new Map<string, ResourceType[]>();
  /** Bumped on every change, so discovery and OpenAPI documents can be cached per revision. */
  revision = 0;

  constructor() {
    for (const rt of BUILTIN_TYPES) this.types.set(this.key(rt.group, rt.version, rt.plural), rt);
  }

  private key(group: string, version: string, plural: string): string {
    return `${group}/${version}/${plural}`;
  }

  get(group: string, version: string, plural: string): ResourceType | undefined {
    return this.types.get(this.key(group, version, plural));
  }

  all(): ResourceType[] {
    return [...this.types.values()];
  }

  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.all().find((rt) => apiVersionOf(rt) === apiVersion && rt.kind === kind);
  }

  /** The types that own one storage key (one per served version), preferred version first. */
  versionsOf(storageKey: string): ResourceType[] {
    return this.all()
      .filter((rt) => rt.storageKey === storageKey && !rt.conversion)
      .sort((a, b) => compareVersions(a.version, b.version));
  }

  setCrd(crd: KubeObject): void {
    const name = crd.metadata.name ?? '';
    const next = resourceTypesFromCrd(crd);
    const previous = this.byCrd.get(name) ?? [];
    const unchanged =
      previous.length === next.length &&
      previous.every((p, i) => jsonEqual(p.openapiSchema, next[i]!.openapiSchema) && p.version === next[i]!.version && p.namespaced === next[i]!.namespaced && p.statusSubresource === next[i]!.statusSubresource && jsonEqual(p.table.columns, next[i]!.table.columns) && jsonEqual(p.shortNames, next[i]!.shortNames));
    for (const rt of previous) this.types.delete(this.key(rt.group, rt.version, rt.plural));
    for (const rt of next) this.types.set(this.key(rt.group, rt.version, rt.plural), rt);
    this.byCrd.set(name, next);
    if (!unchanged) this.revision++;
  }

  storageKeyOfCrd(name: string): string | undefined {
    return this.byCrd.get(name)?.[0]?.storageKey;
  }

  /** Removes a CRD's types and returns the storage key whose objects must go with it. */
  removeCrd(name: string): string | undefined {
    const previous = this.byCrd.get(name);
    if (!previous) return undefined;
    for (const rt of previous) this.types.delete(this.key(rt.group, rt.version, rt.plural));
    this.byCrd.delete(name);
    this.revision++;
    return previous[0]?.storageKey;
  }
}
