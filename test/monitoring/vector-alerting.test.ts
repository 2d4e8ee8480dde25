/**
 * BdrVectorStalled end to end: a real Prometheus with bdr's rules scraping a real `bdr up` on zfs-fuse. A
 * Vector that targets a Source machine is Stalled by the real Vector controller; bdr_vector_stalled carries
 * that to Prometheus and the alert fires (seen through /api/v1/alerts), while a suspended Vector, Ready, stays
 * silent; suspending the stalled one resolves it. The rules are bdr.rules.yaml with only that alert's `for`
 * shortened from 10m to 2s.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { BdrUp, commitAll, eventually, initRepo, Kubectl, tempDir, writeRepoFile } from '../gitops/harness.ts';
import { TestBed, type TestPool } from '../testbed/index.ts';
import { TestPrometheus, type Alert } from './prometheus.ts';
import { writeRulesWithFor } from './rules.ts';

const ALERT = 'BdrVectorStalled';

const machine = (pool: string) => `apiVersion: bdr.dev/v1alpha1
kind: Machine
metadata: { name: here }
spec:
  connection: { type: local }
  role: Source
  pools: [${pool}]
  allowedNamespaces: { names: [default] }
  datasetRoots: [{ root: "{pool}", namespace: default }]
  probeInterval: 5s
`;
const policy = `apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata: { name: short, namespace: default }
spec: { keepLast: 3 }
`;
const dataset = (pool: string) => `apiVersion: bdr.dev/v1alpha1
kind: Dataset
metadata: { name: web, namespace: default }
spec:
  machineRef: { name: here }
  name: ${pool}/web
  schedule: { interval: 1h }
  retentionPolicyRef: { name: short }
  managementPolicy: Create
`;
/** Into the Source machine itself, which never receives replicas: the controller stalls it (InvalidSpec). */
const vector = (name: string, pool: string, suspend: boolean) =>
  stringify({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Vector',
    metadata: { name, namespace: 'default' },
    spec: {
      source: { datasetRef: { name: 'web' } },
      target: { machineRef: { name: 'here' }, dataset: `${pool}/replica-${name}` },
      retentionPolicyRef: { name: 'short' },
      suspend,
    },
  });

describe('vector alerting end to end', { timeout: 300_000 }, () => {
  const tmp = tempDir('bdr-vector-alerting-');
  const bed = new TestBed();
  let pool: TestPool;
  let up: BdrUp;
  let kubectl: Kubectl;
  let prom: TestPrometheus;
  const stalledAlerts = async (): Promise<Alert[]> => (await prom.alerts()).filter((a) => a.labels.alertname === ALERT);

  beforeAll(async () => {
    pool = await bed.pool();
    const repo = join(tmp.path, 'repo');
    await initRepo(repo);
    await writeRepoFile(repo, 'machine.yaml', machine(pool.name));
    await writeRepoFile(repo, 'policy.yaml', policy);
    await writeRepoFile(repo, 'web.yaml', dataset(pool.name));
    await commitAll(repo, 'fleet');

    const rules = writeRulesWithFor(join(tmp.path, 'rules.yaml'), { [ALERT]: '2s' });

    up = new BdrUp(['--repo', repo, '--interval', '1h'], join(tmp.path, 'state'));
    await up.ready();
    const metricsUrl = /metrics:\s+(http:\/\/\S+)\/metrics/.exec(up.stdout)?.[1];
    if (!metricsUrl) throw new Error(`bdr up printed no metrics URL:\n${up.stdout}`);
    prom = await TestPrometheus.start(tmp.path, [new URL(metricsUrl).host], [rules]);
    // Applied with kubectl, as a Vector that `bdr validate` would have caught in Git can still reach a cluster.
    kubectl = new Kubectl(up.kubeconfig, join(tmp.path, 'kube-cache'));
    writeFileSync(join(tmp.path, 'vectors.yaml'), `${vector('stuck', pool.name, false)}---\n${vector('paused', pool.name, true)}`);
    await kubectl.run('apply', '-f', join(tmp.path, 'vectors.yaml'));
  }, 300_000);

  afterAll(async () => {
    await prom?.stop();
    if (up) await up.stop('SIGTERM');
    await bed.cleanup();
    tmp.remove();
  });

  it('fires for the Stalled vector only, and resolves once it is suspended', async () => {
    const firing = await eventually(async () => (await stalledAlerts()).find((a) => a.state === 'firing'), `${ALERT} to fire\n${prom.output()}`, 120_000);
    expect(firing.labels).toMatchObject({ alertname: ALERT, namespace: 'default', name: 'stuck', severity: 'warning' });
    expect((await stalledAlerts()).map((a) => a.labels.name)).toEqual(['stuck']);
    // What kubectl shows is what Prometheus was told.
    const stuck = await kubectl.json<{ status?: { conditions?: Array<{ type: string; status: string; reason: string }> } }>('get', '-n', 'default', 'vector/stuck');
    expect(stuck.status?.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'InvalidSpec' });
    expect((await prom.query('bdr_vector_ready{name="paused"} == 1')).length).toBe(1);
    expect((await prom.query('bdr_vector_suspended{name="paused"} == 1')).length).toBe(1);
    expect((await prom.query('bdr_vector_ready{name="stuck"} == 0')).length).toBe(1);

    await kubectl.run('patch', '-n', 'default', 'vector/stuck', '--type', 'merge', '-p', '{"spec":{"suspend":true}}');
    await eventually(async () => ((await stalledAlerts()).length === 0 ? true : undefined), `${ALERT} to resolve\n${prom.output()}`, 120_000);
    expect((await prom.query('bdr_vector_stalled{name="stuck"} == 0')).length).toBe(1);
  });
});
