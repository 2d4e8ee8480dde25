/**
 * The Grafana dashboards against a real Prometheus scraping a real `bdr up` with datasets on zfs-fuse, a
 * StorageTarget with one storage machine on the same pool, and a Vector replicating every 5 s into a Storage
 * machine behind a real sshd (its files in the sshd's directory, root's own untouched): once a sync succeeded,
 * every panel's query must parse, return data, and read only metrics that bdr exports. The alert rules are loaded
 * into the same Prometheus and must evaluate without errors, and stay silent while everything is healthy.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/run-bdr.ts';
import { stringify } from 'yaml';
import { BdrUp, commitAll, eventually, initRepo, tempDir, writeRepoFile } from '../gitops/harness.ts';
import { runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { metricNames } from './promql.ts';
import { TestPrometheus } from './prometheus.ts';
import { RULES_FILE } from './rules.ts';

const DASHBOARDS = join(REPO_ROOT, 'manifests/monitoring/dashboards');

interface Panel {
  id: number;
  type: string;
  title: string;
  panels?: Panel[];
  datasource?: { type: string; uid: string };
  targets?: Array<{ refId: string; expr: string; datasource?: { uid: string } }>;
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  includeAll?: boolean;
  allValue?: string;
}

function dashboards(): Array<{ file: string; dashboard: Dashboard }> {
  return readdirSync(DASHBOARDS)
    .filter((f) => f.endsWith('.json'))
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(DASHBOARDS, file), 'utf8')) as Dashboard }));
}

function panels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** A dashboard's query variables (a drop-down filled by Grafana's label_values()), with their PromQL. */
function queryVariables(d: Dashboard): Array<{ name: string; allValue: string; metricExpr: string; label: string }> {
  return d.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => {
      const q = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((.+),\s*([a-zA-Z_]+)\)$/.exec(q);
      if (!m || !v.includeAll || v.allValue === undefined) throw new Error(`${d.uid} variable ${v.name}: expected label_values(selector, label) with an All value, got ${q}`);
      return { name: v.name, allValue: v.allValue, metricExpr: m[1]!, label: m[2]! };
    });
}

/**
 * What Grafana substitutes before sending a query: its interval macros (with a 1 s scrape, 10 s holds enough
 * samples for rate()) and each query variable at "All", its allValue.
 */
function expand(expr: string, d: Dashboard): string {
  let out = expr.replaceAll('$__rate_interval', '10s').replaceAll('$__interval', '2s').replaceAll('$__range', '1m');
  for (const v of queryVariables(d)) out = out.replaceAll(`$${v.name}`, v.allValue);
  return out;
}

/** The vector's primary side: its key files go to a temporary directory, not /var/lib/bdr. */
const machine = (pool: string, vectorKeys: string) => `apiVersion: bdr.dev/v1alpha1
kind: Machine
metadata:
  name: here
spec:
  connection:
    type: local
  pools: [${pool}]
  allowedNamespaces: { names: [default] }
  datasetRoots: [{ root: "{pool}", namespace: default }]
  probeInterval: 5s
  paths: { vectorKeys: ${vectorKeys} }
`;
/** A second local Machine on the same pool, as the one machine of a StorageTarget (its figures are the pool's). */
const storageMachine = (pool: string) => `apiVersion: bdr.dev/v1alpha1
kind: Machine
metadata:
  name: store
spec:
  connection:
    type: local
  role: Storage
  pools: [${pool}]
  allowedNamespaces: { names: [default] }
  datasetRoots: [{ root: "{pool}", namespace: default }]
  probeInterval: 5s
`;
const storageTarget = (pool: string) => `apiVersion: bdr.dev/v1alpha1
kind: StorageTarget
metadata:
  name: offsite
spec:
  machines:
    - name: store
  parentDataset: ${pool}/replicas
`;
/**
 * A Storage machine over SSH (a real sshd as root on this host, so the same pool): a vector's key is only
 * authorized where the primary can reach it by host and pinned host key. Its files stay in the sshd's directory.
 */
const vaultMachine = (m: TestMachine, pool: string) =>
  stringify({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name: 'vault' },
    spec: {
      role: 'Storage',
      connection: m.machine.spec.connection,
      pools: [pool],
      allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }],
      probeInterval: '5s',
      paths: { authorizedKeys: m.sshd.authorizedKeysPath, guard: join(m.sshd.dir, 'zfs-guard'), vectorKeys: join(m.sshd.dir, 'vectors') },
    },
  });
const vector = (pool: string) => `apiVersion: bdr.dev/v1alpha1
kind: Vector
metadata:
  name: web-vault
  namespace: default
spec:
  source: { datasetRef: { name: web } }
  target: { machineRef: { name: vault }, dataset: ${pool}/vault/web }
  schedule: { interval: 5s }
  rpo: 1h
`;
const policy = `apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata:
  name: short
  namespace: default
spec:
  keepLast: 3
`;
const dataset = (name: string, zfs: string) => `apiVersion: bdr.dev/v1alpha1
kind: Dataset
metadata:
  name: ${name}
  namespace: default
spec:
  machineRef: { name: here }
  name: ${zfs}
  schedule: { interval: 2s }
  retentionPolicyRef: { name: short }
  managementPolicy: Create
`;

describe('dashboards and rules against a real Prometheus scraping bdr up', { timeout: 240_000 }, () => {
  it('has well-formed dashboards: a datasource variable, unique panel ids, every query on that datasource', () => {
    const all = dashboards();
    expect(all.map((d) => d.file).sort()).toEqual(['fleet.json', 'operator.json', 'replication.json']);
    for (const { file, dashboard } of all) {
      expect(dashboard.uid, file).toMatch(/^bdr-/);
      expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }));
      const ids = panels(dashboard).map((p) => p.id);
      expect(new Set(ids).size, file).toBe(ids.length);
      for (const p of panels(dashboard).filter((x) => x.type !== 'row')) {
        expect(p.targets?.length, `${file} ${p.title}`).toBeGreaterThan(0);
        for (const t of p.targets ?? []) expect(t.datasource?.uid, `${file} ${p.title}`).toBe('${datasource}');
      }
    }
  });

  describe('with data', () => {
    const tmp = tempDir('bdr-prometheus-');
    const bed = new TestBed();
    let pool: TestPool;
    let vault: TestMachine;
    let up: BdrUp;
    let prom: TestPrometheus;
    let exported: Set<string>;

    beforeAll(async () => {
      [pool, vault] = await Promise.all([bed.pool(), bed.machine('dash-vault')]);
      const repo = join(tmp.path, 'repo');
      await initRepo(repo);
      await writeRepoFile(repo, 'machine.yaml', machine(pool.name, join(tmp.path, 'vectors')));
      await writeRepoFile(repo, 'vault.yaml', vaultMachine(vault, pool.name));
      await writeRepoFile(repo, 'vault-secret.yaml', stringify(vault.secret));
      await writeRepoFile(repo, 'vector.yaml', vector(pool.name));
      await writeRepoFile(repo, 'store.yaml', storageMachine(pool.name));
      await writeRepoFile(repo, 'target.yaml', storageTarget(pool.name));
      await writeRepoFile(repo, 'policy.yaml', policy);
      await writeRepoFile(repo, 'web.yaml', dataset('web', `${pool.name}/web`));
      await writeRepoFile(repo, 'db.yaml', dataset('db', `${pool.name}/db`));
      await commitAll(repo, 'fleet');
      up = new BdrUp(['--repo', repo, '--interval', '1h'], join(tmp.path, 'state'));
      await up.ready();
      const metricsUrl = /metrics:\s+(http:\/\/\S+)\/metrics/.exec(up.stdout)?.[1];
      if (!metricsUrl) throw new Error(`bdr up printed no metrics URL:\n${up.stdout}`);
      prom = await TestPrometheus.start(tmp.path, [new URL(metricsUrl).host], [RULES_FILE]);
      // Data has arrived: restore points taken and pruned, 15 s of scrapes for rate() and predict_linear().
      await eventually(async () => ((await prom.query('sum(bdr_dataset_snapshots_created_total) >= 6')).length > 0 ? true : undefined), `restore points in Prometheus\n${prom.output()}`, 120_000);
      await eventually(async () => ((await prom.query('count_over_time(bdr_build_info[1m]) >= 15')).length > 0 ? true : undefined), '15 s of scrapes', 120_000);
      await eventually(async () => ((await prom.query('bdr_vector_key_age_seconds')).length > 0 ? true : undefined), `the vector's key age in Prometheus\n${prom.output()}`, 120_000);
      // The vector replicates into the sshd machine's pool: a sync succeeded and its replica's age is known.
      await eventually(async () => ((await prom.query('bdr_vector_syncs_total{result="succeeded"} > 0 and on (namespace, name) bdr_vector_newest_replica_timestamp_seconds')).length > 0 ? true : undefined), `a successful sync in Prometheus\n${prom.output()}\n${up.stdout.slice(-3000)}`, 180_000);
      // The target reports its machine once the Machine's first probe is in; predict_linear() needs two samples.
      await eventually(async () => ((await prom.query('count_over_time(bdr_storage_target_machine_free_bytes[1m]) >= 2')).length > 0 ? true : undefined), `storage target figures in Prometheus\n${prom.output()}`, 120_000);
      const text = await (await fetch(`${metricsUrl}/metrics`)).text();
      exported = new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)].map((m) => m[1]!));
    }, 240_000);

    afterAll(async () => {
      await prom?.stop();
      if (up) await up.stop('SIGTERM');
      await bed.cleanup();
      tmp.remove();
    });

    it('answers every panel query with data, reading only metrics bdr exports', async () => {
      const failures: string[] = [];
      let queries = 0;
      for (const { file, dashboard } of dashboards()) {
        for (const p of panels(dashboard)) {
          for (const t of p.targets ?? []) {
            queries += 1;
            const where = `${file} "${p.title}" ${t.refId}: ${t.expr}`;
            const names = metricNames(t.expr);
            if (names.length === 0) failures.push(`${where}: names no metric`);
            for (const n of names) if (!exported.has(n)) failures.push(`${where}: bdr does not export ${n}`);
            try {
              const result = await prom.query(expand(t.expr, dashboard));
              if (result.length === 0) failures.push(`${where}: no data`);
            } catch (err) {
              failures.push(`${where}: ${(err as Error).message}`);
            }
          }
        }
        // Each drop-down's label_values() as the PromQL Grafana runs for it: it must offer at least one value.
        for (const v of queryVariables(dashboard)) {
          const where = `${file} variable ${v.name}: ${v.metricExpr}`;
          for (const n of metricNames(v.metricExpr)) if (!exported.has(n)) failures.push(`${where}: bdr does not export ${n}`);
          try {
            const values = await prom.query(`count by (${v.label}) (${expand(v.metricExpr, dashboard)})`);
            // count by() of a label no series carries still answers one series, with that label empty.
            if (!values.some((r) => r.metric[v.label])) failures.push(`${where}: no values`);
          } catch (err) {
            failures.push(`${where}: ${(err as Error).message}`);
          }
        }
      }
      expect(failures).toEqual([]);
      expect(queries).toBeGreaterThan(30);
    });

    it('sees the datasets and the pool as bdr reports them', async () => {
      const interval = await prom.query('bdr_dataset_schedule_interval_seconds');
      expect(interval.map((r) => [r.metric.dataset, r.value[1]]).sort()).toEqual([
        ['db', '2'],
        ['web', '2'],
      ]);
      const size = await prom.query(`bdr_pool_size_bytes{machine="here", pool="${pool.name}"}`);
      expect(size).toHaveLength(1);
      expect(Number(size[0]!.value[1])).toBeGreaterThan(100 * 1024 * 1024);
      const up1 = await prom.query('bdr_machine_up{machine="here"}');
      expect(up1.map((r) => r.value[1])).toEqual(['1']);
      const leader = await prom.query('leader_election_master_status{name="bdr-controller"}');
      expect(leader.map((r) => r.value[1])).toEqual(['1']);
    });

    it('reports the storage target machine with the figures of the pool it stands on, and no vectors yet', async () => {
      const sizes = await prom.query('bdr_storage_target_machine_size_bytes');
      expect(sizes.map((r) => [r.metric.target, r.metric.machine])).toEqual([['offsite', 'store']]);
      // Independent of bdr: what zpool itself says of the pool's size (zfs-fuse prints it rounded, as "250M").
      const printed = (await runOk(['zpool', 'list', '-H', '-o', 'size', pool.name])).trim();
      const m = /^(\d+)([KMG])$/.exec(printed);
      if (!m) throw new Error(`zpool list printed size ${printed}`);
      const size = Number(m[1]) * { K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as 'K' | 'M' | 'G'];
      expect(Number(sizes[0]!.value[1])).toBe(size);
      const used = Number((await prom.query('bdr_storage_target_machine_used_bytes'))[0]!.value[1]);
      const left = Number((await prom.query('bdr_storage_target_machine_free_bytes'))[0]!.value[1]);
      // Datasets keep taking snapshots meanwhile, so allocation moves: bounds, not equalities.
      expect(used).toBeGreaterThan(0);
      expect(left).toBeGreaterThan(0);
      // zfs-fuse prints each figure rounded to three digits, so allocated + free only add up to size within 1%.
      expect(Math.abs(used + left - size) / size).toBeLessThan(0.01);
      // Healthy: below the 80% warning, so the capacity alerts stay silent (checked below).
      expect(used / size).toBeLessThan(0.8);
      expect((await prom.query('bdr_storage_target_vectors')).map((r) => r.value[1])).toEqual(['0']);
      // The controller made the parentDataset on the machine (never mounted).
      expect((await runOk(['zfs', 'get', '-Hp', '-o', 'value', 'canmount', `${pool.name}/replicas`])).trim()).toBe('off');
    });

    it("exports the age of the vector's key once it is authorized on the storage machine", async () => {
      const age = await prom.query('bdr_vector_key_age_seconds');
      expect(age.map((r) => `${r.metric.namespace}/${r.metric.name}`)).toEqual(['default/web-vault']);
      expect(Number(age[0]!.value[1])).toBeGreaterThanOrEqual(0);
      // It stands for a real line in the sshd's authorized_keys, and nothing went to root's own files.
      expect(readFileSync(vault.sshd.authorizedKeysPath, 'utf8')).toContain('bdr:vector=default/web-vault');
    });

    it('replicates the vector into the sshd machine\'s pool, as the replication panels show', async () => {
      // Independent of bdr's metrics: the replica's restore points as zfs lists them (the source's leaf name
      // below spec.target.dataset).
      const replica = `${pool.name}/vault/web/web`;
      const snaps = (await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-d', '1', replica])).split('\n').filter(Boolean);
      expect(snaps.some((s) => s.startsWith(`${replica}@bdr-`)), snaps.join('\n')).toBe(true);
      expect(Number((await prom.query('bdr_vector_sent_bytes_total{name="web-vault"}'))[0]?.value[1])).toBeGreaterThan(0);
      expect((await prom.query('bdr_vector_rpo_seconds{name="web-vault"}')).map((r) => r.value[1])).toEqual(['3600']);
      expect((await prom.query('bdr_vector_syncs_total{name="web-vault", result!="succeeded"}')).map((r) => r.value[1])).toEqual(['0', '0']);
      expect((await prom.query('bdr_vector_consecutive_failures{name="web-vault"}')).map((r) => r.value[1])).toEqual(['0']);
    });

    it('counts restore points taken and pruned (keepLast 3 of one every 2 s), and no failures', async () => {
      await eventually(async () => ((await prom.query('sum(bdr_dataset_snapshots_pruned_total) > 0')).length > 0 ? true : undefined), 'a pruned restore point in Prometheus', 120_000);
      // Each dataset's third restore point: on a loaded machine one of the two may run behind the other.
      await eventually(async () => ((await prom.query('min(bdr_dataset_snapshots_created_total) >= 3')).length > 0 ? true : undefined), 'three restore points of each dataset in Prometheus', 120_000);
      const taken = await prom.query('bdr_dataset_snapshots_created_total');
      expect(taken.map((r) => r.metric.dataset).sort()).toEqual(['db', 'web']);
      for (const r of taken) expect(Number(r.value[1])).toBeGreaterThanOrEqual(3);
      const failed = await prom.query('bdr_dataset_snapshot_failures_total');
      expect(failed.map((r) => [r.metric.dataset, r.value[1]]).sort()).toEqual([
        ['db', '0'],
        ['web', '0'],
      ]);
    });

    it('evaluates every alert rule without error, and none fires while the fleet is healthy', async () => {
      const data = await prom.api<{ groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; state?: string }> }> }>('rules');
      const rules = data.groups.flatMap((g) => g.rules);
      expect(rules.length).toBeGreaterThanOrEqual(13);
      // Every rule has been evaluated at least once (health leaves "unknown").
      await eventually(async () => {
        const d = await prom.api<typeof data>('rules');
        return d.groups.flatMap((g) => g.rules).every((r) => r.health !== 'unknown') ? true : undefined;
      }, 'all rules evaluated');
      const after = (await prom.api<typeof data>('rules')).groups.flatMap((g) => g.rules);
      expect(after.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
      const alerts = await prom.api<{ alerts: Array<{ labels: { alertname: string }; state: string }> }>('alerts');
      expect(alerts.alerts.filter((a) => a.state === 'firing').map((a) => a.labels.alertname)).toEqual([]);
    });
  });
});
