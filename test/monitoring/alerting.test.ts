/**
 * Alerting end to end: a real Prometheus with bdr's rules scraping a real `bdr up` on zfs-fuse. A Dataset
 * that cannot take restore points (its pool is outside the Machine's spec.pools) makes
 * BdrDatasetRestorePointOverdue fire, seen through /api/v1/alerts; restarting `bdr up` meanwhile (a real
 * scrape gap, `up` 0) neither resolves nor restarts it; fixing the Machine in Git resolves it. The rules are
 * bdr.rules.yaml with only that alert's `for` shortened from 5m to 2s.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitAll, eventually, initRepo, tempDir, writeRepoFile } from '../gitops/harness.ts';
import { TestBed, type TestPool } from '../testbed/index.ts';
import { freePort, TestPrometheus, type Alert } from './prometheus.ts';
import { writeRulesWithFor } from './rules.ts';
import { Up } from './up.ts';

const ALERT = 'BdrDatasetRestorePointOverdue';

const machine = (pools: string[]) => `apiVersion: bdr.dev/v1alpha1
kind: Machine
metadata: { name: here }
spec:
  connection: { type: local }
  pools: [${pools.join(', ')}]
  allowedNamespaces: { names: [default] }
  datasetRoots: [{ root: "{pool}", namespace: default }]
  probeInterval: 5s
`;
const policy = `apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata: { name: short, namespace: default }
spec: { keepLast: 3 }
`;
const dataset = (name: string, zfs: string, interval: string) => `apiVersion: bdr.dev/v1alpha1
kind: Dataset
metadata: { name: ${name}, namespace: default }
spec:
  machineRef: { name: here }
  name: ${zfs}
  schedule: { interval: ${interval} }
  retentionPolicyRef: { name: short }
  managementPolicy: Create
`;

describe('alerting end to end', { timeout: 300_000 }, () => {
  const tmp = tempDir('bdr-alerting-');
  const bed = new TestBed();
  const repo = join(tmp.path, 'repo');
  let managed: TestPool;
  let other: TestPool;
  let up: Up;
  let prom: TestPrometheus;
  const overdue = (alerts: Alert[]) => alerts.filter((a) => a.labels.alertname === ALERT);

  beforeAll(async () => {
    [managed, other] = await Promise.all([bed.pool(), bed.pool()]);
    await initRepo(repo);
    await writeRepoFile(repo, 'machine.yaml', machine([managed.name]));
    await writeRepoFile(repo, 'policy.yaml', policy);
    // Healthy: on the managed pool, hourly (its first restore point is taken at once).
    await writeRepoFile(repo, 'web.yaml', dataset('web', `${managed.name}/web`, '1h'));
    // On a pool outside spec.pools: stalled, never a restore point, overdue 10 s after its creation.
    await writeRepoFile(repo, 'late.yaml', dataset('late', `${other.name}/late`, '5s'));
    await commitAll(repo, 'fleet');

    const rules = writeRulesWithFor(join(tmp.path, 'rules.yaml'), { [ALERT]: '2s' });

    const metricsPort = await freePort();
    up = new Up(['--repo', repo, '--state', join(tmp.path, 'state'), '--port', '0', '--metrics-port', String(metricsPort), '--interval', '1h']);
    await up.start();
    prom = await TestPrometheus.start(tmp.path, [`127.0.0.1:${metricsPort}`], [rules]);
  }, 300_000);

  afterAll(async () => {
    await prom?.stop();
    await up?.stop();
    await bed.cleanup();
    tmp.remove();
  });

  it('fires for the dataset without restore points, survives an operator restart without flapping, and resolves once fixed', async () => {
    const firing = await eventually(async () => {
      const a = overdue(await prom.alerts()).find((x) => x.state === 'firing');
      return a;
    }, `${ALERT} to fire\n${prom.output()}`, 120_000);
    expect(firing.labels).toMatchObject({ alertname: ALERT, namespace: 'default', dataset: 'late', machine: 'here', severity: 'warning' });
    expect(overdue(await prom.alerts()).map((a) => a.labels.dataset)).toEqual(['late']);

    // Restart the operator while watching the alert: it must stay firing, with the same activeAt.
    const seen: Alert[][] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        seen.push(overdue(await prom.alerts()));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    watcher.catch(() => undefined); // awaited below; a failure here must not outlive the test

    await up.stop();
    // A real gap: Prometheus has seen the target down.
    await eventually(async () => ((await prom.query('up{job="bdr"} == 0')).length > 0 ? true : undefined), 'a failed scrape', 30_000);
    await up.start();
    await eventually(async () => ((await prom.query('up{job="bdr"} == 1')).length > 0 && (await prom.query('bdr_dataset_created_timestamp_seconds{dataset="late"}')).length > 0 ? true : undefined), 'scrapes again', 60_000);
    // Ten more looks at the alert with fresh data after the restart.
    const afterRestart = seen.length;
    await eventually(() => (seen.length >= afterRestart + 10 ? true : undefined), 'ten looks at the alert after the restart', 60_000);
    watching = false;
    await watcher;
    expect(seen.length).toBeGreaterThan(10);
    const flaps = seen.filter((s) => s.length !== 1 || s[0]!.state !== 'firing' || s[0]!.activeAt !== firing.activeAt || s[0]!.labels.dataset !== 'late');
    expect(flaps).toEqual([]);

    // Fix it in Git: the Machine now manages the other pool, the Dataset takes its restore points.
    await writeRepoFile(repo, 'machine.yaml', machine([managed.name, other.name]));
    await commitAll(repo, 'manage the other pool');
    await eventually(async () => (overdue(await prom.alerts()).length === 0 ? true : undefined), `${ALERT} to resolve`, 120_000);
    expect((await prom.query('bdr_dataset_snapshots{dataset="late"} >= 1')).length).toBe(1);
  });
});
