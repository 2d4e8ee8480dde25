import type { StatusCause } from './errors.ts';
import { validateLabelName, type ResourceType } from './resources.ts';
import { AGE_COLUMN, age, type ColumnDefinition, type TableSpec } from './table.ts';
import { isJsonObject, type Json, type JsonObject, type KubeObject } from './types.ts';

const OBJECT_META_REF = { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' };

function objectSchema(description: string, properties: JsonObject): JsonObject {
  return {
    type: 'object',
    description,
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.' },
      kind: { type: 'string', description: 'Kind is a string value representing the REST resource this object represents.' },
      metadata: { ...OBJECT_META_REF, description: "Standard object's metadata." },
      ...properties,
    },
  };
}

const preserved: JsonObject = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
const stringMap: JsonObject = { type: 'object', additionalProperties: { type: 'string' } };

function column(name: string, type = 'string', description = ''): ColumnDefinition {
  return { name, type, format: '', description, priority: 0 };
}

function table(columns: ColumnDefinition[], cells: (o: KubeObject, now: Date) => Json[]): TableSpec {
  return { columns, cells };
}

function get(object: KubeObject, path: string): Json | undefined {
  let node: Json | undefined = object as unknown as Json;
  for (const key of path.split('.')) node = isJsonObject(node) ? node[key] : undefined;
  return node;
}

function countKeys(value: Json | undefined): number {
  return isJsonObject(value) ? Object.keys(value).length : 0;
}

interface BuiltinInit {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  statusSubresource?: boolean;
  hasGeneration?: boolean;
  schema: JsonObject;
  table: TableSpec;
  extraFieldLabels?: Record<string, string>;
  normalize?: ResourceType['normalize'];
  validate?: ResourceType['validate'];
}

export function builtin(init: BuiltinInit): ResourceType {
  return {
    group: init.group,
    version: init.version,
    plural: init.plural,
    singular: init.kind.toLowerCase(),
    kind: init.kind,
    listKind: `${init.kind}List`,
    namespaced: init.namespaced,
    shortNames: init.shortNames ?? [],
    categories: [],
    storageKey: `${init.group}/${init.plural}`,
    statusSubresource: init.statusSubresource ?? false,
    hasGeneration: init.hasGeneration ?? false,
    builtin: true,
    openapiSchema: init.schema,
    table: init.table,
    extraFieldLabels: init.extraFieldLabels ?? {},
    normalize: init.normalize,
    validate: init.validate,
  };
}

export const namespaces = builtin({
  group: '',
  version: 'v1',
  plural: 'namespaces',
  kind: 'Namespace',
  namespaced: false,
  shortNames: ['ns'],
  statusSubresource: true,
  schema: objectSchema('Namespace provides a scope for Names.', {
    spec: { type: 'object', properties: { finalizers: { type: 'array', items: { type: 'string' } } } },
    status: { type: 'object', properties: { phase: { type: 'string' } } },
  }),
  table: table([column('Status', 'string', 'The status of the namespace'), AGE_COLUMN], (o, now) => [
    get(o, 'status.phase') ?? null,
    age(o.metadata.creationTimestamp, now),
  ]),
  extraFieldLabels: { 'status.phase': 'status.phase' },
  normalize(object) {
    const spec = isJsonObject(object.spec) ? object.spec : {};
    if (!Array.isArray(spec.finalizers)) spec.finalizers = ['kubernetes'];
    object.spec = spec;
    object.status = { phase: object.metadata.deletionTimestamp ? 'Terminating' : 'Active' };
    object.metadata.labels = { ...object.metadata.labels, 'kubernetes.io/metadata.name': object.metadata.name ?? '' };
  },
  validate(object) {
    return validateLabelName(object.metadata.name ?? '', 'metadata.name');
  },
});

export const configmaps = builtin({
  group: '',
  version: 'v1',
  plural: 'configmaps',
  kind: 'ConfigMap',
  namespaced: true,
  shortNames: ['cm'],
  schema: objectSchema('ConfigMap holds configuration data for pods to consume.', {
    data: stringMap,
    binaryData: stringMap,
    immutable: { type: 'boolean' },
  }),
  table: table([column('Data', 'string'), AGE_COLUMN], (o, now) => [
    countKeys(get(o, 'data')) + countKeys(get(o, 'binaryData')),
    age(o.metadata.creationTimestamp, now),
  ]),
});

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export const secrets = builtin({
  group: '',
  version: 'v1',
  plural: 'secrets',
  kind: 'Secret',
  namespaced: true,
  schema: objectSchema('Secret holds secret data of a certain type.', {
    data: stringMap,
    stringData: stringMap,
    type: { type: 'string' },
    immutable: { type: 'boolean' },
  }),
  table: table([column('Type'), column('Data'), AGE_COLUMN], (o, now) => [
    get(o, 'type') ?? null,
    countKeys(get(o, 'data')),
    age(o.metadata.creationTimestamp, now),
  ]),
  extraFieldLabels: { type: 'type' },
  normalize(object) {
    // stringData is write-only: it is merged into data (base64) and never stored, as in kube-apiserver.
    if (isJsonObject(object.stringData)) {
      const data: JsonObject = isJsonObject(object.data) ? { ...object.data } : {};
      for (const [k, v] of Object.entries(object.stringData)) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
      object.data = data;
    }
    delete object.stringData;
    if (typeof object.type !== 'string' || object.type === '') object.type = 'Opaque';
  },
  validate(object) {
    const causes: StatusCause[] = [];
    if (isJsonObject(object.data)) {
      for (const [k, v] of Object.entries(object.data)) {
        if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) {
          causes.push({ reason: 'FieldValueInvalid', field: `data[${k}]`, message: 'Invalid value: "<secret contents redacted>": illegal base64 data' });
        }
      }
    }
    return causes;
  },
});

const eventColumns = [
  column('Last Seen', 'string'),
  column('Type', 'string'),
  column('Reason', 'string'),
  column('Object', 'string'),
  column('Message', 'string'),
];

export const events = builtin({
  group: '',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  namespaced: true,
  shortNames: ['ev'],
  schema: objectSchema('Event is a report of an event somewhere in the cluster.', {
    involvedObject: preserved,
    reason: { type: 'string' },
    message: { type: 'string' },
    type: { type: 'string' },
    source: preserved,
    firstTimestamp: { type: 'string', format: 'date-time' },
    lastTimestamp: { type: 'string', format: 'date-time' },
    eventTime: { type: 'string' },
    count: { type: 'integer' },
    action: { type: 'string' },
    related: preserved,
    series: preserved,
    reportingComponent: { type: 'string' },
    reportingInstance: { type: 'string' },
  }),
  table: table(eventColumns, (o, now) => [
    age(get(o, 'lastTimestamp') ?? get(o, 'eventTime') ?? o.metadata.creationTimestamp, now),
    get(o, 'type') ?? null,
    get(o, 'reason') ?? null,
    `${String(get(o, 'involvedObject.kind') ?? '').toLowerCase()}/${String(get(o, 'involvedObject.name') ?? '')}`,
    get(o, 'message') ?? null,
  ]),
  extraFieldLabels: {
    'involvedObject.kind': 'involvedObject.kind',
    'involvedObject.namespace': 'involvedObject.namespace',
    'involvedObject.name': 'involvedObject.name',
    'involvedObject.uid': 'involvedObject.uid',
    'involvedObject.apiVersion': 'involvedObject.apiVersion',
    'involvedObject.resourceVersion': 'involvedObject.resourceVersion',
    'involvedObject.fieldPath': 'involvedObject.fieldPath',
    reason: 'reason',
    reportingComponent: 'reportingComponent',
    source: 'source.component',
    type: 'type',
  },
});

export const leases = builtin({
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  kind: 'Lease',
  namespaced: true,
  schema: objectSchema('Lease defines a lease concept.', {
    spec: {
      type: 'object',
      properties: {
        holderIdentity: { type: 'string' },
        leaseDurationSeconds: { type: 'integer' },
        acquireTime: { type: 'string' },
        renewTime: { type: 'string' },
        leaseTransitions: { type: 'integer' },
        strategy: { type: 'string' },
        preferredHolder: { type: 'string' },
      },
    },
  }),
  table: table([column('Holder'), AGE_COLUMN], (o, now) => [get(o, 'spec.holderIdentity') ?? null, age(o.metadata.creationTimestamp, now)]),
});

export const objectMetaSchema: JsonObject = {
  type: 'object',
  description: 'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.',
  properties: {
    name: { type: 'string', description: 'Name must be unique within a namespace.' },
    generateName: { type: 'string', description: 'GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided.' },
    namespace: { type: 'string', description: 'Namespace defines the space within which each name must be unique.' },
    uid: { type: 'string', description: 'UID is the unique in time and space value for this object.' },
    resourceVersion: { type: 'string', description: 'An opaque value that represents the internal version of this object.' },
    generation: { type: 'integer', format: 'int64', description: 'A sequence number representing a specific generation of the desired state.' },
    creationTimestamp: { type: 'string', format: 'date-time', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' },
    deletionTimestamp: { type: 'string', format: 'date-time', description: 'DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.' },
    deletionGracePeriodSeconds: { type: 'integer', format: 'int64' },
    labels: { type: 'object', additionalProperties: { type: 'string' }, description: 'Map of string keys and values that can be used to organize and categorize objects.' },
    annotations: { type: 'object', additionalProperties: { type: 'string' }, description: 'Annotations is an unstructured key value map stored with a resource.' },
    finalizers: { type: 'array', items: { type: 'string' }, description: 'Must be empty before the object is deleted from the registry.' },
    ownerReferences: {
      type: 'array',
      description: 'List of objects depended by this object.',
      items: {
        type: 'object',
        required: ['apiVersion', 'kind', 'name', 'uid'],
        properties: {
          apiVersion: { type: 'string' },
          kind: { type: 'string' },
          name: { type: 'string' },
          uid: { type: 'string' },
          controller: { type: 'boolean' },
          blockOwnerDeletion: { type: 'boolean' },
        },
      },
    },
    managedFields: { type: 'array', items: preserved },
  },
};

export function genericObjectSchema(description: string): JsonObject {
  return objectSchema(description, {});
}
