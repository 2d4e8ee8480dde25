import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse as parseYaml, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { startCluster, type Cluster, type RequestLogEntry } from '../../cluster/index.ts';
import { api, KUBECTL, kubectl, kubectlOk, REPO_ROOT, requireKubectl, waitFor } from './helpers.ts';

const CRDS = join(REPO_ROOT, 'crds');
const EXAMPLES = join(REPO_ROOT, 'examples');

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; generation?: number; resourceVersion?: string; deletionTimestamp?: string; finalizers?: string[]; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** The first Vector the examples declare: the test edits and inspects it. */
function exampleVector(): Obj {
  const text = readFileSync(join(EXAMPLES, 'vectors', 'nas01-offsite.yaml'), 'utf8');
  const docs = parseAllDocuments(text).map((d) => d.toJS() as Obj);
  const vector = docs.find((d) => d?.kind === 'Vector');
  if (!vector) throw new Error('examples/vectors/nas01-offsite.yaml declares no Vector');
  return vector;
}

describe('kubectl against the embedded cluster', () => {
  let cluster: Cluster;
  const requests: RequestLogEntry[] = [];
  const scratch = mkdtempSync(join(tmpdir(), 'bdr-kubectl-test-'));
  const vector = exampleVector();
  const ns = vector.metadata.namespace ?? 'default';
  const vectorPath = `/apis/bdr.dev/v1alpha1/namespaces/${ns}/vectors/${vector.metadata.name}`;

  beforeAll(async () => {
    requireKubectl();
    cluster = await startCluster({ onRequest: (e) => requests.push(e) });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('applies the CRDs and waits for Established', async () => {
    const out = await kubectlOk(cluster, ['apply', '-f', CRDS]);
    expect(out).toMatch(/customresourcedefinition.apiextensions.k8s.io\/vectors.bdr.dev created/);
    const waited = await kubectlOk(cluster, ['wait', '--for=condition=Established', 'crd', '--all', '--timeout=20s']);
    expect(waited).toMatch(/vectors.bdr.dev condition met/);
  });

  it('applies the examples recursively, then re-applies an edit as a merge patch of only what changed', async () => {
    // The examples live in namespaces that a real cluster would already have.
    const namespaces = new Set<string>();
    for (const file of (await execa('find', [EXAMPLES, '-name', '*.yaml', '-not', '-path', '*/flux/*'])).stdout.split('\n')) {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
        const o = doc.toJS() as Obj | null;
        if (o?.metadata?.namespace) namespaces.add(o.metadata.namespace);
      }
    }
    // kubectl's typed `create namespace` sends protobuf, which the server must decode.
    for (const name of namespaces) {
      if ((await api(cluster, 'GET', `/api/v1/namespaces/${name}`)).status === 200) continue;
      expect(await kubectlOk(cluster, ['create', 'namespace', name])).toMatch(`namespace/${name} created`);
    }
    // examples/flux/ holds Flux's own objects (GitRepository, Kustomization), not part of the fleet.
    const fleet = readdirSync(EXAMPLES).filter((e) => e !== 'flux' && e !== 'README.md').flatMap((e) => ['-f', join(EXAMPLES, e)]);
    const out = await kubectlOk(cluster, ['apply', '-R', ...fleet]);
    expect(out).toMatch(new RegExp(`vector.bdr.dev/${vector.metadata.name} created`));
    expect(out).not.toMatch(/error/i);

    const before = (await api<Obj>(cluster, 'GET', vectorPath)).body;
    const edited: Obj = structuredClone(vector);
    edited.spec = { ...edited.spec, suspend: !(edited.spec?.suspend === true) };
    const file = join(scratch, 'vector-edited.yaml');
    writeFileSync(file, stringify(edited));
    requests.length = 0;
    const reapplied = await kubectlOk(cluster, ['apply', '-f', file]);
    expect(reapplied).toMatch(/configured/);
    const patches = requests.filter((r) => r.method === 'PATCH' && r.url.startsWith(vectorPath));
    expect(patches).toHaveLength(1);
    expect(patches[0]!.contentType).toBe('application/merge-patch+json');
    const patch = JSON.parse(patches[0]!.body) as Obj;
    expect(patch.spec).toEqual({ suspend: edited.spec.suspend });
    expect(Object.keys(patch.metadata ?? {})).toEqual(['annotations']);

    const after = (await api<Obj>(cluster, 'GET', vectorPath)).body;
    expect(after.spec).toEqual({ ...before.spec, suspend: edited.spec.suspend });
    expect(after.metadata.generation).toBe((before.metadata.generation ?? 0) + 1);

    requests.length = 0;
    const unchanged = await kubectlOk(cluster, ['apply', '-f', file]);
    expect(unchanged).toMatch(/unchanged/);
    expect(requests.filter((r) => r.method === 'PATCH')).toHaveLength(0);
  });

  it('shows printer columns in get, a namespace column with -A, and the object with -o yaml', async () => {
    const table = await kubectlOk(cluster, ['get', 'vectors', '-n', ns]);
    const header = table.split('\n')[0]!;
    const crd = parseYaml(readFileSync(join(CRDS, 'bdr.dev_vectors.yaml'), 'utf8')) as {
      spec: { versions: Array<{ additionalPrinterColumns?: Array<{ name: string; priority?: number }> }> };
    };
    const columns = (crd.spec.versions[0]!.additionalPrinterColumns ?? []).filter((c) => !c.priority).map((c) => c.name.toUpperCase());
    expect(columns.length).toBeGreaterThan(0);
    for (const column of ['NAME', ...columns]) expect(header).toContain(column);
    expect(table).toMatch(new RegExp(`^${vector.metadata.name}\\s`, 'm'));

    const all = await kubectlOk(cluster, ['get', 'vectors', '-A']);
    expect(all.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME/);
    expect(all).toMatch(new RegExp(`^${ns}\\s+${vector.metadata.name}\\s`, 'm'));

    // kubectl follows continue tokens page by page and shows the same rows.
    const chunked = await kubectlOk(cluster, ['get', 'vectors', '-A', '--chunk-size=1']);
    expect(chunked.split('\n').slice(1).map((l) => l.split(/\s+/).slice(0, 2).join('/'))).toEqual(all.split('\n').slice(1).map((l) => l.split(/\s+/).slice(0, 2).join('/')));

    const yamlText = await kubectlOk(cluster, ['get', 'vector', vector.metadata.name, '-n', ns, '-o', 'yaml']);
    const obj = parseYaml(yamlText) as Obj;
    expect(obj.kind).toBe('Vector');
    expect(obj.apiVersion).toBe('bdr.dev/v1alpha1');
    expect(obj.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Number(obj.metadata.resourceVersion)).toBeGreaterThan(0);
    expect(obj.spec?.source).toEqual(vector.spec?.source);
  });

  it('explains vector.spec from the OpenAPI v3 document generated from the CRD', async () => {
    const out = await kubectlOk(cluster, ['explain', 'vector.spec']);
    expect(out).toMatch(/KIND:\s+Vector/);
    expect(out).toMatch(/FIELDS:/);
    for (const field of Object.keys(vector.spec ?? {})) expect(out).toMatch(new RegExp(`^\\s+${field}\\s+<`, 'm'));
  });

  it('describes a vector with its events', async () => {
    const obj = (await api<Obj>(cluster, 'GET', vectorPath)).body;
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${obj.metadata.name}.test1`, namespace: ns },
      involvedObject: { apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', name: obj.metadata.name, namespace: ns, uid: obj.metadata.uid },
      reason: 'Paired',
      message: 'paired with vault01 by the test',
      type: 'Normal',
      source: { component: 'bdr-test' },
      firstTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      lastTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      count: 1,
    };
    expect((await api(cluster, 'POST', `/api/v1/namespaces/${ns}/events`, event)).status).toBe(201);
    const out = await kubectlOk(cluster, ['describe', 'vector', obj.metadata.name, '-n', ns]);
    expect(out).toMatch(new RegExp(`Name:\\s+${obj.metadata.name}`));
    expect(out).toMatch(/Events:/);
    expect(out).toMatch(/Normal\s+Paired\s+.*paired with vault01 by the test/);
  });

  it('keeps an object with a finalizer after delete --wait=false until the finalizer is removed', async () => {
    const name = vector.metadata.name;
    await kubectlOk(cluster, ['patch', 'vector', name, '-n', ns, '--type=merge', '-p', '{"metadata":{"finalizers":["bdr.dev/test"]}}']);
    const del = await kubectlOk(cluster, ['delete', 'vector', name, '-n', ns, '--wait=false']);
    expect(del).toMatch(/deleted/);
    const still = (await api<Obj>(cluster, 'GET', vectorPath)).body;
    expect(still.metadata.deletionTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(still.metadata.finalizers).toEqual(['bdr.dev/test']);
    const shown = await kubectlOk(cluster, ['get', 'vector', name, '-n', ns, '-o', 'jsonpath={.metadata.deletionTimestamp}']);
    expect(shown).toBe(still.metadata.deletionTimestamp);

    await kubectlOk(cluster, ['patch', 'vector', name, '-n', ns, '--type=json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
    const gone = await kubectl(cluster, ['get', 'vector', name, '-n', ns]);
    expect(gone.exitCode).not.toBe(0);
    expect(gone.stderr).toMatch(new RegExp(`NotFound.*vectors.bdr.dev "${name}" not found`));
    // Put it back for the tests that follow.
    await kubectlOk(cluster, ['apply', '-f', join(EXAMPLES, 'vectors', 'nas01-offsite.yaml')]);
  });

  it('returns from wait --for=condition=Ready once the status is patched', { timeout: 120_000 }, async () => {
    const name = vector.metadata.name;
    const cacheDir = mkdtempSync(join(tmpdir(), 'bdr-kubectl-cache-'));
    const waiting = execa(KUBECTL, ['--kubeconfig', cluster.kubeconfigPath, '--cache-dir', cacheDir, 'wait', '--for=condition=Ready', `vector/${name}`, '-n', ns, '--timeout=60s'], { reject: false });
    // Patch only once kubectl is really watching, so the test proves it reacts to the event.
    await waitFor('kubectl to watch the vector', () => (requests.some((r) => r.url.includes('watch=true') && r.url.includes(`metadata.name%3D${name}`)) ? true : undefined), 45_000);
    const patched = await api<Obj>(cluster, 'PATCH', `${vectorPath}/status`, {
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Synced', message: 'in sync', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
    }, 'application/merge-patch+json');
    expect(patched.status).toBe(200);
    const result = await waiting;
    expect(result.exitCode).toBe(0);
    expect(String(result.stdout)).toMatch(/condition met/);
    const row = await kubectlOk(cluster, ['get', 'vector', name, '-n', ns, '--no-headers']);
    expect(row).toMatch(/\bTrue\b/);
  });

  it('streams Table rows with printer columns for get -w', { timeout: 120_000 }, async () => {
    const name = vector.metadata.name;
    const cacheDir = mkdtempSync(join(tmpdir(), 'bdr-kubectl-cache-'));
    const watching = execa(KUBECTL, ['--kubeconfig', cluster.kubeconfigPath, '--cache-dir', cacheDir, 'get', 'vectors', '-n', ns, '-w'], { reject: false });
    let out = '';
    watching.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await waitFor('kubectl get -w to watch', () => (requests.some((r) => r.url.includes('watch=true') && r.url.startsWith(`/apis/bdr.dev/v1alpha1/namespaces/${ns}/vectors?`) && /as=Table/.test(r.accept ?? '')) ? true : undefined), 45_000);
    await api(cluster, 'PATCH', `${vectorPath}/status`, { status: { conditions: [{ type: 'Ready', status: 'False', reason: 'Waiting', message: 'watch-test', lastTransitionTime: '2026-01-01T00:00:00Z' }] } }, 'application/merge-patch+json');
    await waitFor('the modified row', () => (out.includes('watch-test') ? true : undefined), 45_000);
    watching.kill('SIGINT');
    await watching;
    const lines = out.split('\n').filter((l) => l.trim());
    expect(lines[0]).toMatch(/^NAME\s+SOURCE\s+TARGET/);
    expect(lines.at(-1)).toMatch(new RegExp(`^${name}\\s.*\\bFalse\\s+watch-test`));
  });

  it('handles built-in kinds the way kubectl sends them: protobuf creates, strategic merge apply', async () => {
    expect(await kubectlOk(cluster, ['create', 'secret', 'generic', 'ssh-key', '-n', ns, '--from-literal=ssh-privatekey=KEY', '--type=kubernetes.io/ssh-auth'])).toMatch(/created/);
    const secret = (await api<{ type: string; data: Record<string, string> }>(cluster, 'GET', `/api/v1/namespaces/${ns}/secrets/ssh-key`)).body;
    expect(secret.type).toBe('kubernetes.io/ssh-auth');
    expect(Buffer.from(secret.data['ssh-privatekey']!, 'base64').toString()).toBe('KEY');
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: ns, labels: { a: '1' } }, data: { one: '1', two: '2' } };
    await kubectlOk(cluster, ['apply', '-f', '-'], { input: stringify(cm) });
    requests.length = 0;
    const changed = { ...cm, data: { one: '1', three: '3' } };
    expect(await kubectlOk(cluster, ['apply', '-f', '-'], { input: stringify(changed) })).toMatch(/configured/);
    expect(requests.find((r) => r.method === 'PATCH')?.contentType).toBe('application/strategic-merge-patch+json');
    expect((await api<{ data: Record<string, string> }>(cluster, 'GET', `/api/v1/namespaces/${ns}/configmaps/settings`)).body.data).toEqual({ one: '1', three: '3' });
    const listed = await kubectlOk(cluster, ['get', 'secrets,configmaps', '-n', ns]);
    expect(listed).toMatch(/secret\/ssh-key\s+kubernetes.io\/ssh-auth\s+1\s/);
    expect(listed).toMatch(/configmap\/settings\s+2\s/);
  });

  it('server-side applies: removes dropped fields, reports conflicts, migrates from client-side apply', async () => {
    const obj: Obj = structuredClone(vector);
    obj.metadata = { name: 'ssa', namespace: ns };
    obj.spec = { ...obj.spec, rpo: '26h' };
    obj.spec = { ...obj.spec, suspend: true };
    await kubectlOk(cluster, ['apply', '-f', '-'], { input: stringify(obj) });
    delete obj.spec.suspend;
    expect(await kubectlOk(cluster, ['apply', '--server-side', '-f', '-'], { input: stringify(obj) })).toMatch(/serverside-applied/);
    const migrated = (await api<Obj>(cluster, 'GET', `/apis/bdr.dev/v1alpha1/namespaces/${ns}/vectors/ssa`)).body;
    // suspend has a schema default (false): removal brings the default back, as on a real server.
    expect(migrated.spec?.suspend).toBe(false);
    const other = structuredClone(obj);
    other.spec = { ...other.spec, rpo: '48h' };
    const conflict = await kubectl(cluster, ['apply', '--server-side', '--field-manager=other', '-f', '-'], { input: stringify(other) });
    expect(conflict.exitCode).not.toBe(0);
    expect(conflict.stderr).toContain('Apply failed with 1 conflict: conflict with "kubectl": .spec.rpo');
    expect(await kubectlOk(cluster, ['apply', '--server-side', '--field-manager=other', '--force-conflicts', '-f', '-'], { input: stringify(other) })).toMatch(/serverside-applied/);
    expect((await api<Obj>(cluster, 'GET', `/apis/bdr.dev/v1alpha1/namespaces/${ns}/vectors/ssa`)).body.spec?.rpo).toBe('48h');
  });

  it('prints one line per bad field for an invalid Vector', async () => {
    const bad = {
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'x', namespace: ns },
      spec: { source: { datasetRef: {} }, deletionPolicy: 'Explode' },
    };
    const r = await kubectl(cluster, ['apply', '-f', '-'], { input: stringify(bad) });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain('The Vector "x" is invalid:');
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('* '));
    expect(lines).toEqual(expect.arrayContaining([
      expect.stringMatching(/^\* spec\.target: Required value/),
      expect.stringMatching(/^\* spec\.deletionPolicy: Unsupported value: "Explode"/),
    ]));
    expect((await api(cluster, 'GET', `/apis/bdr.dev/v1alpha1/namespaces/${ns}/vectors/x`)).status).toBe(404);
  });

  it('refuses an unknown field under strict validation with BadRequest', async () => {
    const bad: Obj = structuredClone(vector);
    bad.metadata = { name: 'strict', namespace: ns };
    bad.spec = { ...bad.spec, colour: 'red' };
    const r = await kubectl(cluster, ['apply', '-f', '-'], { input: stringify(bad) });
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/Error from server \(BadRequest\)/);
    expect(r.stderr).toContain('unknown field "spec.colour"');
    const lax = await kubectl(cluster, ['apply', '--validate=false', '-f', '-'], { input: stringify(bad) });
    expect(lax.exitCode).toBe(0);
    const stored = (await api<Obj>(cluster, 'GET', `/apis/bdr.dev/v1alpha1/namespaces/${ns}/vectors/strict`)).body;
    expect(stored.spec).not.toHaveProperty('colour');
  });
});
