import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster, type KubeObject } from '../../cluster/index.ts';
import { api, clusterFetch, GADGET_CRDS, waitFor } from './helpers.ts';

interface List {
  metadata: { resourceVersion: string };
  items: KubeObject[];
}
interface Status {
  kind: string;
  code: number;
  reason: string;
  message: string;
  details?: { causes?: Array<{ field: string; reason: string; message: string }> };
}
interface WatchLine {
  type: string;
  object: KubeObject & { code?: number; reason?: string };
}

const base = '/apis/fixtures.bdr.dev/v1alpha1';
const gadgets = `${base}/namespaces/default/gadgets`;

function gadget(name: string, extra: Partial<KubeObject> = {}, spec: Record<string, unknown> = { size: 1 }): KubeObject {
  return { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', metadata: { name, ...(extra.metadata ?? {}) }, spec };
}

/** Opens a watch and collects its lines until closed. */
function openWatch(cluster: Cluster, path: string): { lines: WatchLine[]; close: () => void; done: Promise<void> } {
  const lines: WatchLine[] = [];
  const controller = new AbortController();
  const done = (async () => {
    try {
      const res = await clusterFetch(cluster, `${path}`, { signal: controller.signal });
      const reader = res.body!.getReader();
      let buffer = '';
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += Buffer.from(value).toString('utf8');
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          lines.push(JSON.parse(buffer.slice(0, nl)) as WatchLine);
          buffer = buffer.slice(nl + 1);
        }
      }
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
  })();
  return { lines, close: () => controller.abort(), done };
}

describe('API semantics', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster({ watchHistory: 50, bookmarkIntervalMs: 50 });
    for (const doc of parseAllDocuments(readFileSync(GADGET_CRDS, 'utf8'))) cluster.apply(doc.toJS() as KubeObject);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('serves version minor 32, discovery, OpenAPI v3 and 404 for OpenAPI v2', async () => {
    expect((await api<{ minor: string }>(cluster, 'GET', '/version')).body.minor).toBe('32');
    expect((await api(cluster, 'GET', '/openapi/v2')).status).toBe(404);
    const index = (await api<{ paths: Record<string, { serverRelativeURL: string }> }>(cluster, 'GET', '/openapi/v3')).body;
    expect(Object.keys(index.paths)).toEqual(expect.arrayContaining(['api/v1', 'apis/apiextensions.k8s.io/v1', 'apis/coordination.k8s.io/v1', 'apis/fixtures.bdr.dev/v1alpha1']));
    const doc = (await api<{ components: { schemas: Record<string, unknown> } }>(cluster, 'GET', index.paths['apis/fixtures.bdr.dev/v1alpha1']!.serverRelativeURL)).body;
    expect(doc.components.schemas['dev.bdr.fixtures.v1alpha1.Gadget']).toMatchObject({ 'x-kubernetes-group-version-kind': [{ kind: 'Gadget' }] });
    const resources = (await api<{ resources: Array<{ name: string }> }>(cluster, 'GET', base)).body.resources.map((r) => r.name);
    expect(resources).toEqual(['gadgets', 'gadgets/status', 'sprockets', 'sprockets/status']);
    const agg = await clusterFetch(cluster, `/apis`, { headers: { Accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' } });
    expect(agg.headers.get('content-type')).toBe('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
  });

  it('treats re-applying an unchanged CRD as a no-op', async () => {
    const before = cluster.resourceVersion();
    for (const doc of parseAllDocuments(readFileSync(GADGET_CRDS, 'utf8'))) cluster.apply(doc.toJS() as KubeObject);
    expect(cluster.resourceVersion()).toBe(before);
    const crd = (await api<KubeObject>(cluster, 'GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.fixtures.bdr.dev')).body;
    expect(crd.metadata.generation).toBe(1);
    expect((crd.status as { conditions: Array<{ type: string; status: string }> }).conditions.map((c) => `${c.type}=${c.status}`)).toEqual(['NamesAccepted=True', 'Established=True']);
  });

  it('changes the OpenAPI hash when a CRD schema changes', async () => {
    const hashOf = async (): Promise<string> =>
      (await api<{ paths: Record<string, { serverRelativeURL: string }> }>(cluster, 'GET', '/openapi/v3')).body.paths['apis/fixtures.bdr.dev/v1alpha1']!.serverRelativeURL;
    const before = await hashOf();
    const crd = (await api<KubeObject>(cluster, 'GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sprockets.fixtures.bdr.dev')).body;
    const spec = crd.spec as { versions: Array<{ schema: { openAPIV3Schema: { description?: string } } }> };
    spec.versions[0]!.schema.openAPIV3Schema.description = 'changed';
    expect((await api(cluster, 'PUT', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sprockets.fixtures.bdr.dev', crd)).status).toBe(200);
    expect(await hashOf()).not.toBe(before);
  });

  it('defaults a missing apiVersion and kind from the request, as client-go typed clients rely on, and refuses wrong ones', async () => {
    const { apiVersion: _v, kind: _k, ...bare } = gadget('typeless');
    const created = await api<KubeObject>(cluster, 'POST', gadgets, bare);
    expect(created.status).toBe(201);
    expect([created.body.apiVersion, created.body.kind]).toEqual([gadget('x').apiVersion, gadget('x').kind]);
    const { apiVersion: _v2, kind: _k2, ...bareUpdate } = { ...created.body, spec: { size: 3 } };
    expect((await api<KubeObject>(cluster, 'PUT', `${gadgets}/typeless`, bareUpdate)).status).toBe(200);
    const wrong = await api<KubeObject>(cluster, 'POST', gadgets, { ...gadget('wrongkind'), kind: 'Widget' });
    expect(wrong.status).toBe(400);
  });

  it('does not bump the resourceVersion or emit an event for a no-op write', async () => {
    const created = (await api<KubeObject>(cluster, 'POST', gadgets, gadget('noop'))).body;
    const w = openWatch(cluster, `${gadgets}?watch=true&resourceVersion=${created.metadata.resourceVersion}`);
    const put = (await api<KubeObject>(cluster, 'PUT', `${gadgets}/noop`, created)).body;
    expect(put.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
    const patched = (await api<KubeObject>(cluster, 'PATCH', `${gadgets}/noop`, { spec: { size: 1 } }, 'application/merge-patch+json')).body;
    expect(patched.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
    await api(cluster, 'PATCH', `${gadgets}/noop`, { spec: { size: 2 } }, 'application/merge-patch+json');
    await waitFor('the real change', () => (w.lines.length > 0 ? true : undefined));
    w.close();
    expect(w.lines.map((l) => `${l.type} ${(l.object.spec as { size: number }).size}`)).toEqual(['MODIFIED 2']);
  });

  it('drops status on create, keeps it on main updates, and ignores metadata on status writes', async () => {
    const created = (await api<KubeObject>(cluster, 'POST', gadgets, { ...gadget('st'), status: { observedGeneration: 5 } })).body;
    expect(created.status).toBeUndefined();
    await api(cluster, 'PATCH', `${gadgets}/st/status`, { metadata: { labels: { x: 'y' } }, status: { observedGeneration: 1 } }, 'application/merge-patch+json');
    const s = (await api<KubeObject>(cluster, 'GET', `${gadgets}/st`)).body;
    expect(s.status).toEqual({ observedGeneration: 1 });
    expect(s.metadata.labels).toBeUndefined();
    const replaced = (await api<KubeObject>(cluster, 'PUT', `${gadgets}/st`, { ...s, spec: { size: 4 }, status: { observedGeneration: 9 } })).body;
    expect(replaced.status).toEqual({ observedGeneration: 1 });
    expect(replaced.metadata.generation).toBe(2);
  });

  it('reports every invalid field as a cause and applies defaults', async () => {
    const r = await api<Status>(cluster, 'POST', gadgets, gadget('bad', {}, { size: 0, mode: 'warp', tags: 'no' }));
    expect(r.status).toBe(422);
    expect(r.body.reason).toBe('Invalid');
    expect(r.body.details?.causes?.map((c) => `${c.field} ${c.reason}`).sort()).toEqual([
      'spec.mode FieldValueNotSupported',
      'spec.size FieldValueInvalid',
      'spec.tags FieldValueTypeInvalid',
    ]);
    const missing = await api<Status>(cluster, 'POST', gadgets, gadget('bad', {}, {}));
    expect(missing.body.details?.causes).toEqual([{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.size' }]);
    const badName = await api<Status>(cluster, 'POST', gadgets, gadget('Not_A_Name'));
    expect(badName.body.details?.causes?.[0]?.field).toBe('metadata.name');
    const ok = (await api<KubeObject>(cluster, 'POST', gadgets, gadget('defaulted'))).body;
    expect(ok.spec).toEqual({ size: 1, mode: 'fast' });
  });

  it('prunes, warns about or rejects unknown fields per fieldValidation', async () => {
    const body = gadget('unknown', {}, { size: 1, colour: 'red' });
    const strict = await api<Status>(cluster, 'POST', `${gadgets}?fieldValidation=Strict`, body);
    expect(strict.status).toBe(400);
    expect(strict.body.message).toContain('unknown field "spec.colour"');
    const warn = await api<KubeObject>(cluster, 'POST', gadgets, body);
    expect(warn.status).toBe(201);
    expect(warn.headers.get('warning')).toBe('299 - "unknown field \\"spec.colour\\""');
    expect(warn.body.spec).toEqual({ size: 1, mode: 'fast' });
  });

  it('rejects strategic merge on custom resources, applies JSON patch with test, and server-side apply', async () => {
    await api(cluster, 'POST', gadgets, gadget('patchy'));
    expect((await api(cluster, 'PATCH', `${gadgets}/patchy`, { spec: { size: 2 } }, 'application/strategic-merge-patch+json')).status).toBe(415);
    const failed = await api<Status>(cluster, 'PATCH', `${gadgets}/patchy`, [{ op: 'test', path: '/spec/size', value: 5 }, { op: 'replace', path: '/spec/size', value: 6 }], 'application/json-patch+json');
    expect(failed.status).toBe(422);
    const ok = await api<KubeObject>(cluster, 'PATCH', `${gadgets}/patchy`, [{ op: 'test', path: '/spec/size', value: 1 }, { op: 'add', path: '/spec/tags', value: ['t'] }], 'application/json-patch+json');
    expect(ok.body.spec).toEqual({ size: 1, mode: 'fast', tags: ['t'] });
    expect((await api(cluster, 'PATCH', `${gadgets}/applied`, gadget('applied'), 'application/apply-patch+yaml')).status).toBe(422);
    expect((await api(cluster, 'PATCH', `${gadgets}/applied?fieldManager=t`, gadget('applied'), 'application/apply-patch+yaml')).status).toBe(201);
    const reapplied = await api<KubeObject>(cluster, 'PATCH', `${gadgets}/applied?fieldManager=t`, 'apiVersion: fixtures.bdr.dev/v1alpha1\nkind: Gadget\nmetadata: {name: applied}\nspec: {size: 3}\n', 'application/apply-patch+yaml');
    expect(reapplied.status).toBe(200);
    expect((reapplied.body.spec as { size: number }).size).toBe(3);
  });

  it('uses a merge patch resourceVersion and DeleteOptions preconditions as preconditions', async () => {
    const created = (await api<KubeObject>(cluster, 'POST', gadgets, gadget('pre'))).body;
    await api(cluster, 'PATCH', `${gadgets}/pre`, { spec: { size: 2 } }, 'application/merge-patch+json');
    const stale = await api<Status>(cluster, 'PATCH', `${gadgets}/pre`, { metadata: { resourceVersion: created.metadata.resourceVersion }, spec: { size: 3 } }, 'application/merge-patch+json');
    expect(stale.status).toBe(409);
    const del = await api<Status>(cluster, 'DELETE', `${gadgets}/pre`, { preconditions: { uid: 'not-the-uid' } });
    expect(del.status).toBe(409);
    expect((await api<Status>(cluster, 'DELETE', `${gadgets}/pre`, { preconditions: { uid: created.metadata.uid } })).body).toMatchObject({ kind: 'Status', status: 'Success' });
  });

  it('selects by labels and by metadata.name, and refuses unsupported field labels', async () => {
    for (const [name, tier] of [['sel-a', 'gold'], ['sel-b', 'silver'], ['sel-c', undefined]] as const) {
      await api(cluster, 'POST', gadgets, { ...gadget(name), metadata: { name, labels: tier ? { tier, sel: 'yes' } : { sel: 'yes' } } });
    }
    const names = async (q: string): Promise<string[]> => (await api<List>(cluster, 'GET', `${gadgets}?${q}`)).body.items.map((o) => o.metadata.name!);
    expect(await names('labelSelector=tier%3Dgold')).toEqual(['sel-a']);
    expect(await names('labelSelector=sel%2Ctier%20in%20(gold%2Csilver)')).toEqual(['sel-a', 'sel-b']);
    expect(await names('labelSelector=sel%2C!tier')).toEqual(['sel-c']);
    expect(await names('labelSelector=sel%2Ctier!%3Dgold')).toEqual(['sel-b', 'sel-c']);
    expect(await names('fieldSelector=metadata.name%3Dsel-b')).toEqual(['sel-b']);
    expect((await api(cluster, 'GET', `${gadgets}?fieldSelector=spec.size%3D1`)).status).toBe(400);
  });

  it('pages lists with limit and continue in namespace/name order', async () => {
    for (const name of ['page-c', 'page-a', 'page-b']) await api(cluster, 'POST', gadgets, { ...gadget(name), metadata: { name, labels: { paged: 'yes' } } });
    const first = (await api<List & { metadata: { continue?: string; remainingItemCount?: number } }>(cluster, 'GET', `${gadgets}?labelSelector=paged&limit=2`)).body;
    expect(first.items.map((o) => o.metadata.name)).toEqual(['page-a', 'page-b']);
    expect(first.metadata.remainingItemCount).toBe(1);
    const second = (await api<List & { metadata: { continue?: string } }>(cluster, 'GET', `${gadgets}?labelSelector=paged&limit=2&continue=${first.metadata.continue}`)).body;
    expect(second.items.map((o) => o.metadata.name)).toEqual(['page-c']);
    expect(second.metadata.continue).toBeUndefined();
    expect((await api(cluster, 'GET', `${gadgets}?limit=2&continue=%%%`)).status).toBe(400);
  });

  it('replays a watch from a resourceVersion, expires old ones with 410, and sends bookmarks on request', async () => {
    const start = cluster.resourceVersion();
    await api(cluster, 'POST', gadgets, gadget('w1'));
    await api(cluster, 'PATCH', `${gadgets}/w1`, { spec: { size: 2 } }, 'application/merge-patch+json');
    await api(cluster, 'DELETE', `${gadgets}/w1`);
    const w = openWatch(cluster, `${gadgets}?watch=true&resourceVersion=${start}&allowWatchBookmarks=true`);
    await waitFor('replay and a bookmark', () => (w.lines.some((l) => l.type === 'BOOKMARK') ? true : undefined));
    w.close();
    expect(w.lines.filter((l) => l.type !== 'BOOKMARK').map((l) => l.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
    const rvs = w.lines.filter((l) => l.type !== 'BOOKMARK').map((l) => Number(l.object.metadata.resourceVersion));
    expect(rvs).toEqual([start + 1, start + 2, start + 3]);
    const bookmark = w.lines.find((l) => l.type === 'BOOKMARK')!;
    expect(bookmark.object).toEqual({ kind: 'Gadget', apiVersion: 'fixtures.bdr.dev/v1alpha1', metadata: { resourceVersion: String(cluster.resourceVersion()) } });

    // The history holds 50 events: push the start out of it.
    for (let i = 0; i < 60; i++) await api(cluster, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `fill-${i}` } });
    const expired = await clusterFetch(cluster, `${gadgets}?watch=true&resourceVersion=${start}`);
    expect(expired.status).toBe(200);
    expect(JSON.parse((await expired.text()).trim())).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
    cluster.faults.expireNextWatch('http');
    const forced = await api<Status>(cluster, 'GET', `${gadgets}?watch=true&resourceVersion=${cluster.resourceVersion()}`);
    expect(forced.status).toBe(410);
    expect(forced.body.reason).toBe('Expired');
  });

  it('shows an object leaving a watch selector as DELETED and one entering it as ADDED', async () => {
    await api(cluster, 'POST', gadgets, { ...gadget('mover'), metadata: { name: 'mover', labels: { watch: 'me' } } });
    const w = openWatch(cluster, `${gadgets}?watch=true&labelSelector=watch%3Dme&resourceVersion=${cluster.resourceVersion()}`);
    await api(cluster, 'PATCH', `${gadgets}/mover`, { metadata: { labels: { watch: 'other' } } }, 'application/merge-patch+json');
    await api(cluster, 'PATCH', `${gadgets}/mover`, { metadata: { labels: { watch: 'me' } } }, 'application/merge-patch+json');
    await waitFor('two events', () => (w.lines.length >= 2 ? true : undefined));
    w.close();
    expect(w.lines.map((l) => l.type)).toEqual(['DELETED', 'ADDED']);
  });

  it('answers Table requests from printer columns', async () => {
    await api(cluster, 'POST', gadgets, gadget('tab', {}, { size: 7 }));
    const res = await clusterFetch(cluster, `${gadgets}/tab`, { headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' } });
    expect(res.headers.get('content-type')).toBe('application/json;as=Table;v=v1;g=meta.k8s.io');
    const table = (await res.json()) as { columnDefinitions: Array<{ name: string }>; rows: Array<{ cells: unknown[]; object: { kind: string } }> };
    expect(table.columnDefinitions.map((c) => c.name)).toEqual(['Name', 'Size', 'Ready', 'Age']);
    expect(table.rows[0]!.cells.slice(0, 3)).toEqual(['tab', 7, null]);
    expect(table.rows[0]!.object.kind).toBe('PartialObjectMetadata');
  });

  it('cascades deletion to dependents (background), orphans on request, and waits for them in foreground', async () => {
    const owner = async (name: string): Promise<KubeObject> => (await api<KubeObject>(cluster, 'POST', gadgets, gadget(name))).body;
    const dependent = async (name: string, o: KubeObject): Promise<void> => {
      const ref = { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Gadget', name: o.metadata.name!, uid: o.metadata.uid!, blockOwnerDeletion: true };
      expect((await api(cluster, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ownerReferences: [ref] } })).status).toBe(201);
    };
    const exists = async (path: string): Promise<boolean> => (await api(cluster, 'GET', path)).status === 200;

    const bg = await owner('owner-bg');
    await dependent('dep-bg', bg);
    await api(cluster, 'DELETE', `${gadgets}/owner-bg`);
    await waitFor('background cascade', async () => ((await exists('/api/v1/namespaces/default/configmaps/dep-bg')) ? undefined : true));

    const orphan = await owner('owner-orphan');
    await dependent('dep-orphan', orphan);
    await api(cluster, 'DELETE', `${gadgets}/owner-orphan`, { propagationPolicy: 'Orphan' });
    await waitFor('owner removed', async () => ((await exists(`${gadgets}/owner-orphan`)) ? undefined : true));
    const kept = (await api<KubeObject>(cluster, 'GET', '/api/v1/namespaces/default/configmaps/dep-orphan')).body;
    expect(kept.metadata.ownerReferences).toBeUndefined();

    const fg = await owner('owner-fg');
    await dependent('dep-fg', fg);
    await api(cluster, 'PATCH', '/api/v1/namespaces/default/configmaps/dep-fg', { metadata: { finalizers: ['test/hold'] } }, 'application/merge-patch+json');
    const marked = (await api<KubeObject>(cluster, 'DELETE', `${gadgets}/owner-fg`, { propagationPolicy: 'Foreground' })).body;
    expect(marked.metadata.finalizers).toEqual(['foregroundDeletion']);
    await waitFor('dependent marked', async () => ((await api<KubeObject>(cluster, 'GET', '/api/v1/namespaces/default/configmaps/dep-fg')).body.metadata.deletionTimestamp ? true : undefined));
    expect(await exists(`${gadgets}/owner-fg`)).toBe(true);
    await api(cluster, 'PATCH', '/api/v1/namespaces/default/configmaps/dep-fg', { metadata: { finalizers: null } }, 'application/merge-patch+json');
    await waitFor('foreground owner removed', async () => ((await exists(`${gadgets}/owner-fg`)) ? undefined : true));
  });

  it('deletes a namespace with its content, refusing new content meanwhile', async () => {
    await api(cluster, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' } });
    await api(cluster, 'POST', `${base}/namespaces/doomed/gadgets`, { ...gadget('held'), metadata: { name: 'held', finalizers: ['test/hold'] } });
    await api(cluster, 'POST', '/api/v1/namespaces/doomed/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { a: 'b' } });
    const ns = (await api<KubeObject>(cluster, 'DELETE', '/api/v1/namespaces/doomed')).body;
    expect((ns.status as { phase: string }).phase).toBe('Terminating');
    expect((await api(cluster, 'POST', `${base}/namespaces/doomed/gadgets`, gadget('late'))).status).toBe(403);
    await waitFor('secret removed', async () => ((await api(cluster, 'GET', '/api/v1/namespaces/doomed/secrets/s')).status === 404 ? true : undefined));
    expect((await api(cluster, 'GET', '/api/v1/namespaces/doomed')).status).toBe(200);
    await api(cluster, 'PATCH', `${base}/namespaces/doomed/gadgets/held`, { metadata: { finalizers: null } }, 'application/merge-patch+json');
    await waitFor('namespace removed', async () => ((await api(cluster, 'GET', '/api/v1/namespaces/doomed')).status === 404 ? true : undefined));
    expect((await api<Status>(cluster, 'POST', `${base}/namespaces/nowhere/gadgets`, gadget('x'))).body.message).toBe('namespaces "nowhere" not found');
  });

  it('serves cluster-scoped custom resources, dry runs, generateName, secrets and leases', async () => {
    const sprockets = `${base}/sprockets`;
    const dry = await api<KubeObject>(cluster, 'POST', `${sprockets}?dryRun=All`, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Sprocket', metadata: { name: 'dry' }, spec: { any: ['thing'] } });
    expect(dry.status).toBe(201);
    expect((await api(cluster, 'GET', `${sprockets}/dry`)).status).toBe(404);
    const gen = (await api<KubeObject>(cluster, 'POST', sprockets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Sprocket', metadata: { generateName: 'sp-' }, spec: { any: 1 } })).body;
    expect(gen.metadata.name).toMatch(/^sp-[a-z0-9]{5}$/);
    expect(gen.metadata.namespace).toBeUndefined();
    expect(gen.spec).toEqual({ any: 1 });
    const secret = (await api<KubeObject>(cluster, 'POST', '/api/v1/namespaces/default/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'sec' }, stringData: { password: 'hunter2' } })).body;
    expect(secret).toMatchObject({ type: 'Opaque', data: { password: Buffer.from('hunter2').toString('base64') } });
    expect(secret).not.toHaveProperty('stringData');
    const lease = await api<KubeObject>(cluster, 'POST', '/apis/coordination.k8s.io/v1/namespaces/default/leases', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'bdr-leader' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } });
    expect(lease.status).toBe(201);
    const smp = await api<KubeObject>(cluster, 'PATCH', '/apis/coordination.k8s.io/v1/namespaces/default/leases/bdr-leader', { spec: { holderIdentity: 'b' } }, 'application/strategic-merge-patch+json');
    expect(smp.body.spec).toEqual({ holderIdentity: 'b', leaseDurationSeconds: 15 });
  });

  it('removes a CRD\'s objects and its API when the CRD is deleted', async () => {
    const sprockets = `${base}/sprockets`;
    await api(cluster, 'POST', sprockets, { apiVersion: 'fixtures.bdr.dev/v1alpha1', kind: 'Sprocket', metadata: { name: 'last' } });
    const w = openWatch(cluster, `${sprockets}?watch=true&resourceVersion=${cluster.resourceVersion()}`);
    await api(cluster, 'DELETE', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sprockets.fixtures.bdr.dev');
    expect((await api(cluster, 'GET', sprockets)).status).toBe(404);
    const resources = (await api<{ resources: Array<{ name: string }> }>(cluster, 'GET', base)).body.resources.map((r) => r.name);
    expect(resources).not.toContain('sprockets');
    // The watch ends with the CRD, after the DELETED events of its objects.
    await w.done;
    expect(w.lines.filter((l) => l.type === 'DELETED').map((l) => l.object.metadata.name).sort()).toContain('last');
  });

  it('injects failures and delays into the next requests', async () => {
    cluster.faults.failNext(2, 500, { method: 'GET' });
    expect((await api(cluster, 'GET', gadgets)).status).toBe(500);
    expect((await api(cluster, 'POST', gadgets, gadget('through'))).status).toBe(201);
    expect((await api(cluster, 'GET', gadgets)).status).toBe(500);
    expect((await api(cluster, 'GET', gadgets)).status).toBe(200);
    cluster.faults.failNext(1, 409, { path: '/gadgets/through' });
    const c = await api<Status>(cluster, 'PUT', `${gadgets}/through`, gadget('through'));
    expect(c.body).toMatchObject({ code: 409, reason: 'Conflict' });
    cluster.faults.delayNext(1, 300);
    const t0 = Date.now();
    expect((await api(cluster, 'GET', '/version')).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
  });
});

describe('events in both APIs', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('serves events.k8s.io/v1 Events as views of the core v1 Events kubectl describe reads', async () => {
    const created = await api<KubeObject>(cluster, 'POST', '/apis/events.k8s.io/v1/namespaces/default/events', {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: 'v.1' },
      regarding: { apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', name: 'v', namespace: 'default', uid: 'u-1' },
      note: 'synced 3 snapshots',
      reason: 'Synced',
      type: 'Normal',
      action: 'Sync',
      eventTime: '2026-11-26T06:00:00.000000Z',
      reportingController: 'bdr.dev/vector-controller',
      reportingInstance: 'bdr-0',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ apiVersion: 'events.k8s.io/v1', note: 'synced 3 snapshots', regarding: { name: 'v' } });
    const core = (await api<List>(cluster, 'GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dv,involvedObject.kind%3DVector')).body.items;
    expect(core).toHaveLength(1);
    expect(core[0]).toMatchObject({ apiVersion: 'v1', message: 'synced 3 snapshots', reportingComponent: 'bdr.dev/vector-controller', involvedObject: { uid: 'u-1' } });
    const viaNew = (await api<List>(cluster, 'GET', '/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dv')).body.items;
    expect(viaNew.map((e) => e.metadata.resourceVersion)).toEqual([core[0]!.metadata.resourceVersion]);
    const patched = await api<KubeObject>(cluster, 'PATCH', '/apis/events.k8s.io/v1/namespaces/default/events/v.1', { series: { count: 2, lastObservedTime: '2026-11-26T06:01:00.000000Z' } }, 'application/merge-patch+json');
    expect(patched.body).toMatchObject({ series: { count: 2 }, note: 'synced 3 snapshots' });
    expect((await api(cluster, 'DELETE', '/apis/events.k8s.io/v1/namespaces/default/events/v.1')).status).toBe(200);
    expect((await api(cluster, 'GET', '/api/v1/namespaces/default/events/v.1')).status).toBe(404);
  });
});

describe('server-side apply', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
    for (const doc of parseAllDocuments(readFileSync(GADGET_CRDS, 'utf8'))) cluster.apply(doc.toJS() as KubeObject);
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  const applyAs = (manager: string, body: unknown, force = false): Promise<{ status: number; body: KubeObject & Status }> =>
    api<KubeObject & Status>(cluster, 'PATCH', `${gadgets}/ssa?fieldManager=${manager}${force ? '&force=true' : ''}`, body, 'application/apply-patch+yaml');
  const config = (spec: Record<string, unknown>, labels?: Record<string, string>): KubeObject => ({
    apiVersion: 'fixtures.bdr.dev/v1alpha1',
    kind: 'Gadget',
    metadata: { name: 'ssa', ...(labels ? { labels } : {}) },
    spec,
  });

  it('removes the fields an applier stops applying, and records ownership in managedFields', async () => {
    const created = await applyAs('alice', config({ size: 2, tags: ['x'] }, { team: 'a' }));
    expect(created.status).toBe(201);
    expect(created.body.metadata.managedFields).toEqual([
      expect.objectContaining({ manager: 'alice', operation: 'Apply', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:size': {}, 'f:tags': {} }, 'f:metadata': { 'f:labels': { 'f:team': {} } } } }),
    ]);
    const trimmed = await applyAs('alice', config({ size: 2 }));
    expect(trimmed.body.spec).toEqual({ size: 2, mode: 'fast' });
    expect(trimmed.body.metadata.labels).toBeUndefined();
    const again = await applyAs('alice', config({ size: 2 }));
    expect(again.body.metadata.resourceVersion).toBe(trimmed.body.metadata.resourceVersion);
  });

  it('reports a conflict with another applier unless forced, and then moves ownership', async () => {
    const conflict = await applyAs('bob', config({ size: 5 }));
    expect(conflict.status).toBe(409);
    expect(conflict.body.message).toBe('Apply failed with 1 conflict: conflict with "alice": .spec.size');
    expect(conflict.body.details?.causes).toEqual([{ reason: 'FieldManagerConflict', message: 'conflict with "alice"', field: '.spec.size' }]);
    const same = await applyAs('bob', config({ size: 2, tags: ['y'] }));
    expect(same.status).toBe(200);
    const forced = await applyAs('bob', config({ size: 5, tags: ['y'] }), true);
    expect(forced.status).toBe(200);
    expect(forced.body.spec).toEqual({ size: 5, mode: 'fast', tags: ['y'] });
    // alice lost .spec.size to bob, so her next apply without it leaves it alone...
    const alice = await applyAs('alice', config({ mode: 'slow' }));
    expect(alice.body.spec).toEqual({ size: 5, mode: 'slow', tags: ['y'] });
    // ...and plain updates keep the record of who applied what.
    const patched = (await api<KubeObject>(cluster, 'PATCH', `${gadgets}/ssa`, { metadata: { labels: { x: 'y' } } }, 'application/merge-patch+json')).body;
    expect(patched.metadata.managedFields?.map((e) => e.manager).sort()).toEqual(['alice', 'bob']);
  });
});

describe('watch lifetime', () => {
  it('ends a watch after timeoutSeconds, and sends no bookmarks unless asked', async () => {
    const cluster = await startCluster({ bookmarkIntervalMs: 20 });
    try {
      const t0 = Date.now();
      const res = await clusterFetch(cluster, `/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
      expect(text).toBe('');
      const withBookmarks = await clusterFetch(cluster, `/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&allowWatchBookmarks=true`);
      const lines = (await withBookmarks.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string });
      expect(lines.length).toBeGreaterThan(0);
      expect(new Set(lines.map((l) => l.type))).toEqual(new Set(['BOOKMARK']));
    } finally {
      await cluster.stop();
    }
  });
});

describe('authentication and request bodies', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster();
    for (const doc of parseAllDocuments(readFileSync(GADGET_CRDS, 'utf8'))) cluster.apply(doc.toJS() as KubeObject);
    cluster.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'key', namespace: 'default' }, data: { k: 'c2VjcmV0' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const UNAUTHORIZED = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 };
  const paths = ['/api', '/apis', '/api/v1', '/openapi/v3', '/api/v1/namespaces', '/api/v1/secrets', '/api/v1/namespaces/default/secrets', '/api/v1/namespaces/default/secrets/key', `${gadgets}?watch=true`, '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', '/nonexistent'];

  it('answers 401 with a Status to every request without the token or with another one', async () => {
    for (const token of [null, 'wrong', `${cluster.token}x`, cluster.token.slice(1), '']) {
      for (const path of paths) {
        const r = await api(cluster, 'GET', path, undefined, undefined, token);
        expect([path, r.status, r.body]).toEqual([path, 401, UNAUTHORIZED]);
      }
      const write = await api(cluster, 'POST', '/api/v1/namespaces/default/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'planted' } }, 'application/json', token);
      expect(write.status).toBe(401);
    }
    // The token under another scheme is not a bearer token either.
    const basic = await clusterFetch(cluster, '/api/v1/namespaces/default/secrets', { token: null, headers: { Authorization: `Basic ${cluster.token}` } });
    expect(basic.status).toBe(401);
    expect((await api(cluster, 'GET', '/api/v1/namespaces/default/secrets/planted')).status).toBe(404);
  });

  it('serves the token-bearing request, with any case of "Bearer"', async () => {
    expect((await api(cluster, 'GET', '/api/v1/namespaces/default/secrets/key')).status).toBe(200);
    const lower = await clusterFetch(cluster, '/api/v1/namespaces/default/secrets/key', { token: null, headers: { Authorization: `bearer ${cluster.token}` } });
    expect(lower.status).toBe(200);
  });

  it('answers GET /healthz, /livez, /readyz and /version without a token, and nothing else there', async () => {
    for (const path of ['/healthz', '/livez', '/readyz']) expect(await api(cluster, 'GET', path, undefined, undefined, null)).toMatchObject({ status: 200, body: 'ok' });
    expect((await api<{ gitVersion: string }>(cluster, 'GET', '/version', undefined, undefined, null)).body.gitVersion).toMatch(/^v1\.32\./);
    expect((await api(cluster, 'POST', '/version', {}, 'application/json', null)).status).toBe(401);
  });

  it('refuses bodies of a type kube-apiserver does not accept with 415, before touching anything', async () => {
    const secret = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'from-a-web-page' } });
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await api<Status>(cluster, 'POST', '/api/v1/namespaces/default/secrets', secret, type);
      expect([type, r.status, r.body.reason]).toEqual([type, 415, 'UnsupportedMediaType']);
      expect((await api(cluster, 'PUT', '/api/v1/namespaces/default/secrets/key', secret, type)).status).toBe(415);
      expect((await api(cluster, 'DELETE', '/api/v1/namespaces/default/secrets/key', '{}', type)).status).toBe(415);
      expect((await api(cluster, 'PATCH', '/api/v1/namespaces/default/secrets/key', '{}', type)).status).toBe(415);
    }
    expect((await api(cluster, 'GET', '/api/v1/namespaces/default/secrets/from-a-web-page')).status).toBe(404);
    expect((await api(cluster, 'GET', '/api/v1/namespaces/default/secrets/key')).status).toBe(200);
    // The types clients do send still work: JSON, YAML, and JSON with a charset.
    expect((await api(cluster, 'POST', '/api/v1/namespaces/default/configmaps', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-yaml}\n', 'application/yaml')).status).toBe(201);
    expect((await api(cluster, 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'utf8' } }, 'application/json; charset=utf-8')).status).toBe(201);
  });
});
