/**
 * metrics/README.md lists every metric the operator exports, with its type, labels and help text; this test
 * keeps the table and the code from drifting apart in either direction.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { registerBuildInfo } from '../../metrics/build-info.ts';
import { registerDatasetMetrics } from '../../metrics/dataset-metrics.ts';
import { registerStorageTargetMetrics } from '../../metrics/storage-target-metrics.ts';
import { silentLogger } from '../../metrics/log.ts';
import { MachineMetrics } from '../../metrics/machine-metrics.ts';
import { RuntimeMetrics } from '../../metrics/runtime-metrics.ts';
import { registerVectorMetrics } from '../../metrics/vector-metrics.ts';
import { registerVectorConditionMetrics } from '../../metrics/vector-condition-metrics.ts';
import { REPO_ROOT } from '../helpers/run-bdr.ts';
import { eventually, startTestCluster, type TestCluster } from '../controllers/cluster-fixture.ts';
import { DEFAULT_METRIC, metricTable, type MetricRow } from './metrics-table.ts';

const byName = (rows: MetricRow[]) => [...rows].sort((a, b) => a.name.localeCompare(b.name));

describe('metrics/README.md', () => {
  it('lists each metric of every metric module with its exact type, labels and help text', async () => {
    const registry = new Registry();
    registerBuildInfo(registry);
    new MachineMetrics(registry, () => []);
    registerDatasetMetrics(registry, () => []);
    registerStorageTargetMetrics(registry, () => []);
    registerVectorMetrics(registry, () => [], () => 0);
    registerVectorConditionMetrics(registry, () => []);
    new RuntimeMetrics(registry);
    const fromCode: MetricRow[] = [];
    for (const metric of registry.getMetricsAsArray()) {
      // prom-client keeps each metric's configuration on the object; its public type shows only part of it.
      const m = metric as unknown as { name: string; help: string; labelNames: string[]; get(): Promise<{ type: string }> };
      fromCode.push({ name: m.name, type: (await m.get()).type, labels: [...m.labelNames], help: m.help });
    }
    expect(byName(metricTable())).toEqual(byName(fromCode));
  });

  it('has no duplicate rows and only bounded label names', () => {
    const rows = metricTable();
    expect(rows.length).toBeGreaterThan(20);
    expect(new Set(rows.map((r) => r.name)).size).toBe(rows.length);
    const allowed = new Set(['namespace', 'dataset', 'machine', 'pool', 'target', 'vector', 'state', 'controller', 'name', 'result', 'version']);
    for (const r of rows) for (const l of r.labels) expect(allowed, `${r.name} label ${l}`).toContain(l);
  });

  describe('against a started operator', () => {
    let tc: TestCluster;
    let operator: Operator;
    let standby: Operator;
    // Nothing here waits for a lease to expire: a long renew deadline keeps a stalled machine from handing the
    // lease to the standby mid-test.
    const election = { leaseDurationMs: 120_000, renewDeadlineMs: 60_000, retryPeriodMs: 200 };
    beforeAll(async () => {
      tc = await startTestCluster();
      tc.apply({
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Dataset',
        metadata: { name: 'web', namespace: 'default' },
        spec: { machineRef: { name: 'nowhere' }, name: 'tank/web', schedule: { interval: '1h' }, retentionPolicyRef: { name: 'none' } },
      });
      operator = await startOperator({ kubeConfig: tc.kubeConfig, namespace: 'default', identity: 'first', leaderElection: election, metrics: { port: 0 }, log: silentLogger });
      await operator.ready;
      await eventually(() => (operator.isLeader() ? true : undefined), 'the first operator to lead');
      standby = await startOperator({ kubeConfig: tc.kubeConfig, namespace: 'default', identity: 'second', leaderElection: election, metrics: { port: 0 }, log: silentLogger });
      await standby.ready;
    }, 60_000);
    afterAll(async () => {
      await standby?.stop();
      await operator?.stop();
      await tc?.stop();
    });

    it('reports objects from the leader only, so that no alert fires once per replica', async () => {
      const scrape = async (o: Operator) => (await fetch(`${o.metricsUrl}/metrics`)).text();
      const leaderText = await eventually(async () => {
        const t = await scrape(operator);
        return t.includes('bdr_dataset_schedule_interval_seconds{namespace="default",dataset="web",machine="nowhere"} 3600') ? t : undefined;
      }, 'the leader to report the dataset');
      expect(leaderText).toMatch(/^leader_election_master_status\{name="bdr-controller"\} 1$/m);
      const standbyText = await scrape(standby);
      expect(standby.isLeader()).toBe(false);
      expect(standbyText).toMatch(/^leader_election_master_status\{name="bdr-controller"\} 0$/m);
      expect(standbyText).not.toMatch(/^bdr_dataset_\w+\{/m);
      expect(standbyText).not.toMatch(/^bdr_machine_up\{/m);
    });

    it('exports exactly the metrics of the table (besides the default process metrics), and bdr_build_info says the version', async () => {
      const text = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
      const exported = new Map<string, string>();
      for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) if (!DEFAULT_METRIC.test(m[1]!)) exported.set(m[1]!, m[2]!);
      const table = new Map(metricTable().map((r) => [r.name, r.type]));
      expect([...exported.keys()].sort()).toEqual([...table.keys()].sort());
      for (const [name, type] of exported) expect(type, name).toBe(table.get(name));
      const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
      expect(text).toContain(`bdr_build_info{version="${version}"} 1`);
      expect(text).toMatch(/^leader_election_master_status\{name="bdr-controller"\} [01]$/m);
    });
  });
});
