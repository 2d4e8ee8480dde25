import { createHash } from 'node:crypto';
import type { Registry } from './crd-registry.ts';
import { compareVersions, type ResourceType } from './resources.ts';
import type { JsonObject } from './types.ts';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const STATUS_VERBS = ['get', 'patch', 'update'];

export const AGGREGATED_CONTENT_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

/** kubectl 1.30+ asks for aggregated discovery v2 first; older clients and client-node ask for the legacy form. */
export function wantsAggregated(accept: string | undefined): boolean {
  return accept !== undefined && accept.split(',').some((part) => /as=APIGroupDiscoveryList/.test(part) && /v=v2(;|$)/.test(part.replace(/\s/g, '')));
}

function storageVersionHash(rt: ResourceType): string {
  return createHash('sha256').update(`${rt.group}/${rt.version}/${rt.kind}`).digest('base64').slice(0, 11);
}

function groupVersions(registry: Registry): Map<string, string[]> {
  const groups = new Map<string, Set<string>>();
  for (const rt of registry.all()) {
    if (!groups.has(rt.group)) groups.set(rt.group, new Set());
    groups.get(rt.group)!.add(rt.version);
  }
  return new Map([...groups.entries()].map(([g, vs]) => [g, [...vs].sort(compareVersions)]));
}

function typesOf(registry: Registry, group: string, version: string): ResourceType[] {
  return registry
    .all()
    .filter((rt) => rt.group === group && rt.version === version)
    .sort((a, b) => a.plural.localeCompare(b.plural));
}

export function apiVersions(serverAddress: string): JsonObject {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groupEntry(group: string, versions: string[]): JsonObject {
  const gvs = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: gvs, preferredVersion: gvs[0]! };
}

export function apiGroupList(registry: Registry): JsonObject {
  const groups = [...groupVersions(registry).entries()]
    .filter(([g]) => g !== '')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([g, vs]) => groupEntry(g, vs));
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

export function apiGroup(registry: Registry, group: string): JsonObject | undefined {
  const versions = groupVersions(registry).get(group);
  if (!versions || group === '') return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(group, versions) };
}

export function apiResourceList(registry: Registry, group: string, version: string): JsonObject | undefined {
  const types = typesOf(registry, group, version);
  if (types.length === 0) return undefined;
  const resources: JsonObject[] = [];
  for (const rt of types) {
    const entry: JsonObject = {
      name: rt.plural,
      singularName: rt.singular,
      namespaced: rt.namespaced,
      kind: rt.kind,
      verbs: VERBS,
      storageVersionHash: storageVersionHash(rt),
    };
    if (rt.shortNames.length) entry.shortNames = rt.shortNames;
    if (rt.categories.length) entry.categories = rt.categories;
    resources.push(entry);
    if (rt.statusSubresource) {
      resources.push({ name: `${rt.plural}/status`, singularName: '', namespaced: rt.namespaced, kind: rt.kind, verbs: STATUS_VERBS });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

/** The aggregated (apidiscovery.k8s.io/v2) form of `/api` (core) or `/apis` (every other group). */
export function aggregatedDiscovery(registry: Registry, core: boolean): JsonObject {
  const items: JsonObject[] = [];
  const entries = [...groupVersions(registry).entries()].filter(([g]) => (g === '') === core).sort(([a], [b]) => a.localeCompare(b));
  for (const [group, versions] of entries) {
    items.push({
      metadata: { name: group, creationTimestamp: null },
      versions: versions.map((version) => ({
        version,
        freshness: 'Current',
        resources: typesOf(registry, group, version).map((rt) => {
          const responseKind = { group, version, kind: rt.kind };
          const r: JsonObject = {
            resource: rt.plural,
            responseKind,
            scope: rt.namespaced ? 'Namespaced' : 'Cluster',
            singularResource: rt.singular,
            verbs: VERBS,
          };
          if (rt.shortNames.length) r.shortNames = rt.shortNames;
          if (rt.categories.length) r.categories = rt.categories;
          if (rt.statusSubresource) r.subresources = [{ subresource: 'status', responseKind, verbs: STATUS_VERBS }];
          return r;
        }),
      })),
    });
  }
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items };
}
