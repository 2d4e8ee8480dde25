/**
 * BdrVectorPastRPO end to end (issue 12): a real Prometheus with bdr's rules scraping a real `bdr up` on
 * zfs-fuse. A Vector with a 20 s RPO replicates every 5 s into a Storage machine behind a real sshd (its files in
 * the sshd's directory, root's own untouched). Stopping that sshd makes every sync fail, the newest replica ages
 * past the RPO and the alert fires (seen through /api/v1/alerts); restarting `bdr up` meanwhile (a real scrape
 * gap) neither resolves nor restarts it; starting the sshd again on the same port and host key lets a sync
 * succeed and resolves it. BdrVectorSyncsFailing goes the same way (three failed runs in a row fire it). The
 * rules are bdr.rules.yaml with only these two alerts' `for` shortened from 5m to 2s.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { commitAll, eventually, initRepo, tempDir, writeRepoFile } from '../gitops/harness.ts';
import { runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { freePort, TestPrometheus, type Alert } from './prometheus.ts';
import { writeRulesWithFor } from './rules.ts';
import { Up } from './up.ts';

const ALERT = 'BdrVectorPastRPO';
/** Fires too while the secondary is down (3 failed runs in a row), and is checked the same way. */
const FAILING = 'BdrVectorSyncsFailing';
const RPO_SECONDS = 20;

/** The primary, local; the vector's key files go to a temporary directory, not /var/lib/bdr. */
const here = (pool: string, vectorKeys: string) => `apiVersion: bdr.dev/v1alpha1
kind: Machine
metadata: { name: here }
spec:
  connection: { type: local }
  role: Source
  pools: [${pool}]
  allowedNamespaces: { names: [default] }
  datasetRoots: [{ root: "{pool}", namespace: default }]
  probeInterval: 5s
  paths: { vectorKeys: ${vectorKeys} }
`;
/** The secondary: a real sshd as root on this host (so the same pool), its files in the sshd's directory. */
const vault = (m: TestMachine, pool: string) =>
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
  schedule: { interval: 5s }
  retentionPolicyRef: { name: short }
  managementPolicy: Create
`;
const vector = (pool: string) => `apiVersion: bdr.dev/v1alpha1
kind: Vector
metadata: { name: web-vault, namespace: default }
spec:
  source: { datasetRef: { name: web } }
  target: { machineRef: { name: vault }, dataset: ${pool}/vault }
  schedule: { interval: 5s }
  rpo: ${RPO_SECONDS}s
`;

describe('vector RPO alerting end to end', { timeout: 600_000 }, () => {
  const tmp = tempDir('bdr-rpo-alerting-');
  const bed = new TestBed();
  let pool: TestPool;
  let secondary: TestMachine;
  let up: Up;
  let prom: TestPrometheus;
  const pastRpo = async (): Promise<Alert[]> => (await prom.alerts()).filter((a) => a.labels.alertname === ALERT);
  const failing = async (): Promise<Alert[]> => (await prom.alerts()).filter((a) => a.labels.alertname === FAILING);
  const has = async (expr: string) => ((await prom.query(expr)).length > 0 ? true : undefined);
  const diagnostics = () => `${prom.output()}\n${up.output()}`;

  beforeAll(async () => {
    [pool, secondary] = await Promise.all([bed.pool(), bed.machine('rpo-vault')]);
    const repo = join(tmp.path, 'repo');
    await initRepo(repo);
    await writeRepoFile(repo, 'here.yaml', here(pool.name, join(tmp.path, 'vectors')));
    await writeRepoFile(repo, 'vault.yaml', vault(secondary, pool.name));
    await writeRepoFile(repo, 'vault-secret.yaml', stringify(secondary.secret));
    await writeRepoFile(repo, 'policy.yaml', policy);
    await writeRepoFile(repo, 'web.yaml', dataset(pool.name));
    await writeRepoFile(repo, 'vector.yaml', vector(pool.name));
    await commitAll(repo, 'fleet');

    const rules = writeRulesWithFor(join(tmp.path, 'rules.yaml'), { [ALERT]: '2s', [FAILING]: '2s' });
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

  it('fires (past RPO, then syncs failing) when the secondary\'s sshd stops, holds through an operator restart, and resolves once it is back', async () => {
    // Healthy first: a sync succeeded, the replica is younger than the RPO, the alert silent.
    await eventually(() => has('bdr_vector_syncs_total{name="web-vault", result="succeeded"} > 0'), `a successful sync\n${diagnostics()}`, 180_000);
    await eventually(() => has(`time() - bdr_vector_newest_replica_timestamp_seconds{name="web-vault"} < ${RPO_SECONDS}`), `a replica younger than the RPO\n${diagnostics()}`, 120_000);
    expect((await pastRpo()).filter((a) => a.state === 'firing')).toEqual([]);
    expect((await failing()).filter((a) => a.state === 'firing')).toEqual([]);
    const replica = `${pool.name}/vault/web`;
    expect((await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-d', '1', replica])).split('\n').filter((l) => l.startsWith(`${replica}@bdr-`)).length).toBeGreaterThan(0);

    await secondary.sshd.pause();
    const firing = await eventually(async () => (await pastRpo()).find((a) => a.state === 'firing'), `${ALERT} to fire\n${diagnostics()}`, 300_000);
    expect(firing.labels).toMatchObject({ alertname: ALERT, namespace: 'default', name: 'web-vault', severity: 'critical' });
    // Why it fires: the syncs failed, and the newest replica is older than the RPO.
    expect((await prom.query('bdr_vector_consecutive_failures{name="web-vault"} > 0')).length).toBe(1);
    expect((await prom.query(`time() - bdr_vector_newest_replica_timestamp_seconds{name="web-vault"} > ${RPO_SECONDS}`)).length).toBe(1);
    // Retried with backoff (10 s, 20 s, …): the third failure in a row fires the failing-syncs alert.
    const failingFiring = await eventually(async () => (await failing()).find((a) => a.state === 'firing'), `${FAILING} to fire\n${diagnostics()}`, 300_000);
    expect(failingFiring.labels).toMatchObject({ alertname: FAILING, namespace: 'default', name: 'web-vault', severity: 'warning' });

    // Restart the operator while watching the alert: it stays firing, with the same activeAt.
    const seen: Alert[][] = [];
    const seenFailing: Alert[][] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        seen.push(await pastRpo());
        seenFailing.push(await failing());
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    watcher.catch(() => undefined); // awaited below; a failure here must not outlive the test
    await up.stop();
    await eventually(() => has('up{job="bdr"} == 0'), 'a failed scrape', 60_000);
    await up.start();
    await eventually(async () => ((await has('up{job="bdr"} == 1')) && (await has('bdr_vector_rpo_seconds{name="web-vault"}')) ? true : undefined), 'vector metrics scraped again', 120_000);
    // A few evaluations on fresh data after the restart, which has tried (and failed) to sync again.
    await eventually(() => has('bdr_vector_syncs_total{name="web-vault", result="failed"} > 0'), `a failed sync after the restart\n${diagnostics()}`, 120_000);
    // And ten more looks at the alerts with that data, however quickly the restart went.
    const afterRestart = seen.length;
    await eventually(() => (seen.length >= afterRestart + 10 ? true : undefined), 'ten looks at the alerts after the restart', 60_000);
    watching = false;
    await watcher;
    expect(seen.length).toBeGreaterThan(10);
    const flaps = seen.filter((s) => s.length !== 1 || s[0]!.state !== 'firing' || s[0]!.activeAt !== firing.activeAt || s[0]!.labels.name !== 'web-vault');
    expect(flaps).toEqual([]);
    const failingFlaps = seenFailing.filter((s) => s.length !== 1 || s[0]!.state !== 'firing' || s[0]!.activeAt !== failingFiring.activeAt);
    expect(failingFlaps).toEqual([]);

    // The secondary comes back on the same port with the same host key: a sync succeeds, the alert resolves.
    await secondary.sshd.resume();
    await eventually(async () => ((await pastRpo()).length === 0 ? true : undefined), `${ALERT} to resolve\n${diagnostics()}`, 600_000);
    // Once the successes of the last hour outnumber its failures again (the counters' increase() spans the restart).
    await eventually(async () => ((await failing()).length === 0 ? true : undefined), `${FAILING} to resolve\n${diagnostics()}`, 600_000);
    expect((await prom.query(`time() - bdr_vector_newest_replica_timestamp_seconds{name="web-vault"} <= ${RPO_SECONDS}`)).length).toBe(1);
    expect((await prom.query('bdr_vector_consecutive_failures{name="web-vault"} == 0')).length).toBe(1);
  });
});
