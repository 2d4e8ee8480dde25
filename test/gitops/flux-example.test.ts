/**
 * examples/flux/: the Flux objects that install bdr and apply a fleet. `bdr validate` and the real
 * `kubectl kustomize` accept them, and what they point at exists in this repository and renders too.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT, runBdr } from '../helpers/run-bdr.ts';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: Record<string, unknown>;
}

async function kustomize(dir: string): Promise<Obj[]> {
  const r = await execa('/usr/bin/kubectl', ['kustomize', join(REPO_ROOT, dir)], { reject: false });
  expect(r.exitCode, String(r.stderr)).toBe(0);
  return parseAllDocuments(String(r.stdout)).map((d) => d.toJS() as Obj);
}

describe('examples/flux', () => {
  it('passes bdr validate', async () => {
    const r = await runBdr(['validate', 'examples/flux/']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^5 object\(s\) in 2 file\(s\) are valid$/m);
  });

  it('renders with kubectl kustomize: two sources, three Kustomizations in order, each waiting for health', async () => {
    const objects = await kustomize('examples/flux');
    const sources = objects.filter((o) => o.kind === 'GitRepository');
    expect(sources.map((o) => o.metadata.name).sort()).toEqual(['bdr', 'fleet']);
    for (const s of sources) expect(s.apiVersion).toBe('source.toolkit.fluxcd.io/v1');
    const ks = new Map(objects.filter((o) => o.kind === 'Kustomization').map((o) => [o.metadata.name, o]));
    expect([...ks.keys()].sort()).toEqual(['bdr-crds', 'bdr-fleet', 'bdr-operator']);
    for (const k of ks.values()) expect(k.apiVersion).toBe('kustomize.toolkit.fluxcd.io/v1');
    expect(ks.get('bdr-operator')?.spec.dependsOn).toEqual([{ name: 'bdr-crds' }]);
    expect(ks.get('bdr-fleet')?.spec.dependsOn).toEqual([{ name: 'bdr-operator' }]);
    expect(ks.get('bdr-crds')?.spec).toMatchObject({ wait: true, prune: false, path: './crds' });
    expect(ks.get('bdr-fleet')?.spec).toMatchObject({ wait: true, prune: true, sourceRef: { kind: 'GitRepository', name: 'fleet' } });
    expect(ks.get('bdr-operator')?.spec).toMatchObject({ path: './manifests', sourceRef: { kind: 'GitRepository', name: 'bdr' } });

    // The operator's health check names the Deployment that manifests/ really installs.
    const base = await kustomize('manifests');
    const deployment = base.find((o) => o.kind === 'Deployment')!;
    expect(ks.get('bdr-operator')?.spec.healthChecks).toEqual([
      { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name, namespace: deployment.metadata.namespace },
    ]);
    for (const k of ['bdr-crds', 'bdr-operator']) expect(existsSync(join(REPO_ROOT, String(ks.get(k)?.spec.path))), k).toBe(true);
  });
});
