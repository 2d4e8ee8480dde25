import { describe, expect, it } from 'vitest';
import { desiredFromManifests } from '../../gitops/desired.ts';
import { parseManifests } from '../../gitops/manifests.ts';
import { checkManifests } from '../../gitops/check.ts';
import {
  covers,
  desiredObject,
  FIELDS_ANNOTATION,
  liveObject,
  mergePatchFor,
  planSync,
  shapeOf,
  uncoveredPaths,
  writesOf,
  type DesiredObject,
  type JsonObject,
  type LiveObject,
  type Protection,
} from '../../gitops/plan.ts';

const noProtection: Protection = { keys: new Set(), files: new Set() };

function cm(name: string, data: JsonObject, namespace = 'default', extra: JsonObject = {}): JsonObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, ...extra }, data };
}

const desired = (doc: JsonObject, file = 'a.yaml'): DesiredObject => {
  const meta = doc.metadata as JsonObject;
  return desiredObject(doc, { apiVersion: String(doc.apiVersion), kind: String(doc.kind), name: String(meta.name), ...(typeof meta.namespace === 'string' ? { namespace: meta.namespace } : {}) }, { file, line: 1 });
};

/** What the API server would hold after creating `d`: the object plus server fields. */
function asServerHas(d: DesiredObject, extra: JsonObject = {}): LiveObject {
  const o = structuredClone(d.object);
  const meta = o.metadata as JsonObject;
  meta.uid = `uid-${d.key}`;
  meta.resourceVersion = '7';
  meta.creationTimestamp = '2026-01-01T00:00:00Z';
  return liveObject({ ...o, ...extra });
}

const plan = (ds: DesiredObject[], lives: LiveObject[], managed: LiveObject[] = lives, protection = noProtection, namespaces = ['default']) =>
  planSync({ desired: ds, live: new Map(lives.map((l) => [l.key, l])), managed, namespaces: new Set(namespaces), protection });

describe('covers and mergePatchFor', () => {
  it('ignores what only the server adds (defaults, status, its labels)', () => {
    const want = { spec: { keepLast: 5 }, metadata: { labels: { a: 'b' } } };
    const live = { spec: { keepLast: 5, hourly: 0 }, status: { ready: true }, metadata: { labels: { a: 'b', 'kubernetes.io/x': 'y' }, uid: 'u' } };
    expect(covers(want, undefined, live)).toBe(true);
    expect(mergePatchFor(want, undefined, live)).toBeUndefined();
  });

  it('patches only what differs', () => {
    const want = { spec: { keepLast: 7, daily: 7 } };
    const live = { spec: { keepLast: 5, daily: 7 }, metadata: { name: 'x' } };
    expect(mergePatchFor(want, undefined, live)).toEqual({ spec: { keepLast: 7 } });
  });

  it('removes with null the fields the previous apply set and the document dropped', () => {
    const last = shapeOf({ spec: { keepLast: 1, daily: 1 }, metadata: { labels: { old: 'x' } } });
    const want = { spec: { keepLast: 5 }, metadata: { labels: {} } };
    const live = { spec: { keepLast: 5, daily: 7 }, metadata: { labels: { old: 'x', server: 'y' } } };
    expect(mergePatchFor(want, last, live)).toEqual({ spec: { daily: null }, metadata: { labels: { old: null } } });
  });

  it('never removes fields it did not set (no previous shape: a hand-made object being adopted)', () => {
    expect(mergePatchFor({ spec: { a: 1 } }, undefined, { spec: { a: 1, b: 2 } })).toBeUndefined();
  });

  it('replaces an array whole when an element differs or lost a field it set', () => {
    const last = shapeOf({ l: [{ a: 1, b: 1 }] });
    expect(mergePatchFor({ l: [{ a: 1 }] }, last, { l: [{ a: 1, b: 2 }] })).toEqual({ l: [{ a: 1 }] });
    expect(mergePatchFor({ l: [1, 2] }, undefined, { l: [1, 2, 3] })).toEqual({ l: [1, 2] });
    // A server default inside an element is not a difference.
    expect(mergePatchFor({ l: [{ a: 1 }] }, shapeOf({ l: [{ a: 1 }] }), { l: [{ a: 1, d: 0 }] })).toBeUndefined();
  });

  it('takes a null in the document as "absent", as the server stores it', () => {
    expect(mergePatchFor({ data: { a: null, b: 'x' } }, undefined, { data: { b: 'x' } })).toBeUndefined();
    expect(mergePatchFor({ data: { a: null } }, undefined, { data: { a: 'set by hand' } })).toEqual({ data: { a: null } });
  });

  it('names the fields a server did not keep as written, without their values', () => {
    expect(uncoveredPaths({ data: { a: 's3cret' }, dta: { b: 'x' }, metadata: { name: 'n' } }, { data: { a: 's3cret' }, metadata: { name: 'n', uid: 'u' } })).toEqual(['dta']);
    expect(uncoveredPaths({ spec: { n: 1 } }, { spec: { n: 2 } })).toEqual(['spec.n']);
  });

  it('replaces a scalar by an object and back', () => {
    expect(mergePatchFor({ x: { y: 1 } }, undefined, { x: 'flat' })).toEqual({ x: { y: 1 } });
    expect(mergePatchFor({ x: 'flat' }, undefined, { x: { y: 1 } })).toEqual({ x: 'flat' });
  });
});

describe('desiredObject', () => {
  it('adds the markers, drops server fields and status, and records the shape without values', () => {
    const d = desired({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns', uid: 'x', resourceVersion: '3' }, stringData: { password: 'hunter2' }, status: { x: 1 } }, 'secrets/s.yaml');
    const meta = d.object.metadata as JsonObject;
    expect(meta.uid).toBeUndefined();
    expect(meta.resourceVersion).toBeUndefined();
    expect(d.object.status).toBeUndefined();
    expect(meta.labels).toEqual({ 'app.kubernetes.io/managed-by': 'bdr-up' });
    expect((meta.annotations as JsonObject)['bdr.dev/source']).toBe('secrets/s.yaml');
    // stringData is folded into data as the API server stores it, so the comparison is stable.
    expect(d.object.stringData).toBeUndefined();
    expect(d.object.data).toEqual({ password: Buffer.from('hunter2').toString('base64') });
    const shape = String((meta.annotations as JsonObject)[FIELDS_ANNOTATION]);
    expect(shape).not.toContain('hunter2');
    expect(shape).not.toContain(Buffer.from('hunter2').toString('base64'));
    expect(JSON.parse(shape)).toMatchObject({ data: { password: 1 } });
  });

  it('drops a namespace given to a cluster-scoped kind', () => {
    const d = desiredObject({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'm', namespace: 'x' }, spec: {} }, { apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', name: 'm' }, { file: 'm.yaml', line: 1 });
    expect((d.object.metadata as JsonObject).namespace).toBeUndefined();
    expect(d.key).toBe('bdr.dev/Machine//m');
  });
});

describe('planSync', () => {
  it('plans zero writes when the cluster already holds what the repository says', () => {
    const ds = [desired(cm('a', { k: 'v' })), desired(cm('b', { k: 'w' }))];
    const p = plan(ds, ds.map((d) => asServerHas(d)));
    expect(writesOf(p)).toBe(0);
    expect(p.unchanged).toHaveLength(2);
  });

  it('creates what is missing, with the namespace it needs, and patches only the edited object', () => {
    const before = desired(cm('a', { k: 'v' }));
    const edited = desired(cm('a', { k: 'changed' }));
    const same = desired(cm('b', { k: 'w' }));
    const added = desired(cm('c', { k: 'x' }, 'apps'));
    const p = plan([edited, same, added], [asServerHas(before), asServerHas(same)]);
    expect(p.create.map((d) => d.key)).toEqual(['/ConfigMap/apps/c']);
    expect(p.createNamespaces).toEqual(['apps']);
    expect(p.patch).toHaveLength(1);
    expect(p.patch[0]?.desired.key).toBe('/ConfigMap/default/a');
    expect(p.patch[0]?.patch).toEqual({ data: { k: 'changed' } });
    expect(p.unchanged.map((d) => d.key)).toEqual(['/ConfigMap/default/b']);
  });

  it('does not create a namespace the repository declares itself', () => {
    const ns = desired({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } });
    const p = plan([desired(cm('c', {}, 'apps')), ns], []);
    expect(p.createNamespaces).toEqual([]);
    // The namespace is created before the object in it.
    expect(p.create.map((d) => d.ref.kind)).toEqual(['Namespace', 'ConfigMap']);
  });

  it('prunes only objects that carry both of its markers', () => {
    const gone = asServerHas(desired(cm('gone', {})));
    const foreign = liveObject(cm('hand-made', {}));
    const labelOnly = liveObject(cm('label-only', {}, 'default', { labels: { 'app.kubernetes.io/managed-by': 'bdr-up' } }));
    const p = plan([], [], [gone, foreign, labelOnly]);
    expect(p.prune.map((m) => m.key)).toEqual(['/ConfigMap/default/gone']);
  });

  it('adopts a hand-made object with the same identity without removing its other fields', () => {
    const d = desired(cm('a', { k: 'v' }));
    const handMade = liveObject(cm('a', { k: 'v', extra: 'kept' }));
    const p = plan([d], [handMade], []);
    expect(p.patch).toHaveLength(1);
    expect(p.patch[0]?.adopt).toBe(true);
    expect(p.patch[0]?.patch.data).toBeUndefined();
    expect((p.patch[0]?.patch.metadata as JsonObject).labels).toEqual({ 'app.kubernetes.io/managed-by': 'bdr-up' });
  });

  it('keeps objects whose document is invalid now, or whose file has a syntax error', () => {
    const typo = asServerHas(desired(cm('typo', {}), 'a.yaml'));
    const inBroken = asServerHas(desired(cm('other', {}), 'broken.yaml'));
    const p = plan([], [], [typo, inBroken], { keys: new Set(['/ConfigMap/typo']), files: new Set(['broken.yaml']) });
    expect(p.prune).toEqual([]);
    expect(p.kept.map((k) => k.live.key).sort()).toEqual(['/ConfigMap/default/other', '/ConfigMap/default/typo']);
  });

  it('prunes nothing when the repository has no document at all', () => {
    const applied = asServerHas(desired(cm('a', {})));
    const p = planSync({ desired: [], live: new Map(), managed: [applied], namespaces: new Set(['default']), protection: noProtection, repositoryEmpty: true });
    expect(p.prune).toEqual([]);
    expect(p.kept[0]?.reason).toMatch(/no documents at all/);
  });

  it('never prunes a namespace, nor an object already being deleted', () => {
    const ns = asServerHas(desired({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps' } }));
    const deleting = asServerHas(desired(cm('d', {})));
    (deleting.object.metadata as JsonObject).deletionTimestamp = '2026-01-01T00:00:00Z';
    const p = plan([], [], [ns, deleting]);
    expect(p.prune).toEqual([]);
    expect(p.kept.map((k) => k.live.ref.kind)).toEqual(['Namespace']);
  });

  it('prunes in reverse dependency order (Vectors before Datasets before Machines)', () => {
    const mk = (kind: string, name: string) => asServerHas(desired({ apiVersion: 'bdr.dev/v1alpha1', kind, metadata: { name, namespace: 'default' }, spec: {} }));
    const p = plan([], [], [mk('Machine', 'm'), mk('Vector', 'v'), mk('Dataset', 'd')]);
    expect(p.prune.map((m) => m.ref.kind)).toEqual(['Vector', 'Dataset', 'Machine']);
  });
});

describe('desiredFromManifests', () => {
  const text = `apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata: {name: good}
spec: {keepLast: 3}
---
apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata: {name: typo}
spec: {keepLast: three}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
`;
  const { manifests } = parseManifests('/repo/dir/all.yaml', text);
  const checked = checkManifests(manifests);
  const scopes: Record<string, 'Namespaced' | 'Cluster'> = { 'bdr.dev/v1alpha1|RetentionPolicy': 'Namespaced', 'v1|ConfigMap': 'Namespaced' };
  const result = desiredFromManifests({
    root: '/repo',
    manifests,
    accepted: new Set([...checked.valid, ...checked.foreign]),
    brokenFiles: ['/repo/dir/broken.yaml'],
    scopeOf: (v, k) => scopes[`${v}|${k}`],
  });

  it('keeps valid documents, with the default namespace and a repository-relative source', () => {
    expect(result.desired.map((d) => d.key)).toEqual(['bdr.dev/RetentionPolicy/default/good', '/ConfigMap/default/c']);
    expect(result.desired[0]?.source).toEqual({ file: 'dir/all.yaml', line: 1 });
  });

  it('reports kinds the cluster does not serve and duplicates with their line', () => {
    expect(result.findings.map((f) => `${f.line}: ${f.object}: ${f.message}`)).toEqual([
      '12: Widget/w: the cluster does not serve kind Widget in example.com/v1',
      '19: ConfigMap/c: declared twice (first at dir/all.yaml:15); this one is skipped',
    ]);
  });

  it('protects invalid documents by identity and broken files by path', () => {
    expect([...result.protection.keys].sort()).toEqual(['/ConfigMap/c', 'bdr.dev/RetentionPolicy/typo', 'example.com/Widget/w']);
    expect([...result.protection.files]).toEqual(['dir/broken.yaml']);
  });
});
