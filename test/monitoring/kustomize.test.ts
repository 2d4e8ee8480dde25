/**
 * manifests/monitoring as a kustomize Component, rendered by the real `kubectl kustomize` in an overlay beside
 * the base manifests, as a user would: the PrometheusRule carries the rules, the ServiceMonitor finds the
 * operator's Service, and the dashboards reach Grafana's sidecar in a ConfigMap.
 */
import { execa } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../helpers/run-bdr.ts';
import { RULES_FILE } from './rules.ts';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

describe('the monitoring kustomize Component', () => {
  let dir: string;
  let objects: Obj[];
  const find = (kind: string) => objects.filter((o) => o.kind === kind);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bdr-kustomize-'));
    const rel = relative(dir, REPO_ROOT);
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${rel}/manifests]\ncomponents: [${rel}/manifests/monitoring]\n`,
    );
    const r = await execa('/usr/bin/kubectl', ['kustomize', dir], { reject: false });
    expect(r.exitCode, String(r.stderr)).toBe(0);
    objects = parseAllDocuments(String(r.stdout)).map((d) => d.toJS() as Obj);
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('adds a PrometheusRule with the rules of bdr.rules.yaml to the base', () => {
    expect(find('Deployment').map((o) => o.metadata.name)).toEqual(['bdr-controller']);
    const [rule] = find('PrometheusRule');
    expect(rule?.metadata.namespace).toBe('bdr-system');
    expect(rule?.spec).toEqual(parse(readFileSync(RULES_FILE, 'utf8')));
  });

  it('adds a ServiceMonitor that selects the operator Service and its metrics port', () => {
    const [monitor] = find('ServiceMonitor');
    const [service] = find('Service');
    const spec = monitor?.spec as { selector: { matchLabels: Record<string, string> }; namespaceSelector: { matchNames: string[] }; endpoints: Array<{ port: string; path: string; honorLabels?: boolean }> };
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(service?.metadata.labels?.[k], k).toBe(v);
    expect(spec.namespaceSelector.matchNames).toEqual([service?.metadata.namespace]);
    const ports = (service?.spec as { ports: Array<{ name: string }> }).ports.map((p) => p.name);
    expect(ports).toContain(spec.endpoints[0]?.port);
    expect(spec.endpoints[0]?.path).toBe('/metrics');
    // bdr's namespace label is the Dataset's, not the operator pod's.
    expect(spec.endpoints[0]?.honorLabels).toBe(true);
  });

  it('puts every dashboard into a ConfigMap labelled for the Grafana sidecar', () => {
    const [cm] = find('ConfigMap').filter((o) => o.metadata.name === 'bdr-grafana-dashboards');
    expect(cm?.metadata.namespace).toBe('bdr-system');
    expect(cm?.metadata.labels?.grafana_dashboard).toBe('1');
    const dir = join(REPO_ROOT, 'manifests/monitoring/dashboards');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
    expect(Object.keys(cm?.data ?? {}).sort()).toEqual(files);
    for (const f of files) expect(JSON.parse(cm!.data![f]!), f).toEqual(JSON.parse(readFileSync(join(dir, f), 'utf8')));
  });
});
