import { createHash } from 'node:crypto';
import { objectMetaSchema } from './builtins.ts';
import type { Registry } from './crd-registry.ts';
import type { ResourceType } from './resources.ts';
import type { JsonObject } from './types.ts';

const BUILTIN_SCHEMA_PREFIX: Record<string, string> = {
  '': 'io.k8s.api.core',
  'coordination.k8s.io': 'io.k8s.api.coordination',
  'events.k8s.io': 'io.k8s.api.events',
  'apiextensions.k8s.io': 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions',
};

/** `dev.bdr.v1alpha1.Vector` for bdr.dev/v1alpha1 Vector, as kube-openapi names definitions. */
export function schemaName(rt: ResourceType): string {
  const prefix = BUILTIN_SCHEMA_PREFIX[rt.group] ?? rt.group.split('.').reverse().join('.');
  return `${prefix}.${rt.version}.${rt.kind}`;
}

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

const queryParam = (name: string, description: string): JsonObject => ({ name, in: 'query', description, schema: { type: 'string', uniqueItems: true } });

const WRITE_PARAMS = [
  queryParam('dryRun', 'When present, indicates that modifications should not be persisted.'),
  queryParam('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes.'),
  queryParam('fieldValidation', 'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn and Strict.'),
];

function operations(rt: ResourceType, ref: JsonObject, status: boolean): Record<string, JsonObject> {
  const gvk = { group: rt.group, version: rt.version, kind: rt.kind };
  const body = (types: string[]): JsonObject => ({ content: Object.fromEntries(types.map((t) => [t, { schema: ref }])), required: true });
  const ok: JsonObject = { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } };
  const base = (action: string, id: string): JsonObject => ({
    tags: [rt.group || 'core'],
    operationId: `${id}${status ? 'Status' : ''}`,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    responses: ok,
  });
  return {
    item: {
      get: base('get', `read${rt.kind}`),
      put: { ...base('put', `replace${rt.kind}`), parameters: WRITE_PARAMS, requestBody: body(['*/*']) },
      patch: {
        ...base('patch', `patch${rt.kind}`),
        parameters: [...WRITE_PARAMS, queryParam('force', 'Force is going to "force" Apply requests.')],
        requestBody: body(['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json']),
      },
      ...(status ? {} : { delete: base('delete', `delete${rt.kind}`) }),
    },
    collection: {
      get: base('list', `list${rt.kind}`),
      post: { ...base('post', `create${rt.kind}`), parameters: WRITE_PARAMS, requestBody: body(['*/*']) },
    },
  };
}

/** The OpenAPI v3 document of one group/version, generated from the served types and their schemas. */
export function groupVersionDocument(registry: Registry, group: string, version: string): JsonObject | undefined {
  const types = registry.all().filter((rt) => rt.group === group && rt.version === version);
  if (types.length === 0) return undefined;
  const paths: Record<string, JsonObject> = {};
  const schemas: Record<string, JsonObject> = { 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta': objectMetaSchema };
  const prefix = `/${gvPath(group, version)}`;
  for (const rt of types) {
    const name = schemaName(rt);
    schemas[name] = { ...rt.openapiSchema, 'x-kubernetes-group-version-kind': [{ group: rt.group, version: rt.version, kind: rt.kind }] };
    const ref = { $ref: `#/components/schemas/${name}` };
    const scope = rt.namespaced ? `${prefix}/namespaces/{namespace}/${rt.plural}` : `${prefix}/${rt.plural}`;
    const main = operations(rt, ref, false);
    paths[scope] = main.collection!;
    paths[`${scope}/{name}`] = main.item!;
    if (rt.namespaced) paths[`${prefix}/${rt.plural}`] = { get: main.collection!.get! };
    if (rt.statusSubresource) paths[`${scope}/{name}/status`] = operations(rt, ref, true).item!;
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas } };
}

interface CachedDocs {
  revision: number;
  docs: Map<string, { doc: JsonObject; hash: string }>;
}

/** Caches the documents per registry revision so that hashes change exactly when a schema changes. */
export class OpenApi {
  private cache: CachedDocs | undefined;

  constructor(private readonly registry: Registry) {}

  private documents(): Map<string, { doc: JsonObject; hash: string }> {
    if (this.cache?.revision === this.registry.revision) return this.cache.docs;
    const docs = new Map<string, { doc: JsonObject; hash: string }>();
    const gvs = new Set(this.registry.all().map((rt) => `${rt.group}|${rt.version}`));
    for (const gv of gvs) {
      const [group, version] = gv.split('|') as [string, string];
      const doc = groupVersionDocument(this.registry, group, version);
      if (!doc) continue;
      const hash = createHash('sha512').update(JSON.stringify(doc)).digest('hex').slice(0, 16).toUpperCase();
      docs.set(gvPath(group, version), { doc, hash });
    }
    this.cache = { revision: this.registry.revision, docs };
    return docs;
  }

  index(): JsonObject {
    const paths: Record<string, JsonObject> = {};
    for (const [path, { hash }] of [...this.documents().entries()].sort(([a], [b]) => a.localeCompare(b))) {
      paths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hash}` };
    }
    return { paths };
  }

  document(path: string): JsonObject | undefined {
    return this.documents().get(path)?.doc;
  }
}
