/**
 * `bdr status`: the pure report over statuses recorded from real reconciles (test/fixtures/argocd) at fixed
 * instants, and the real command against a real `bdr up` on a zfs-fuse pool: text, json, yaml, exit codes,
 * -w, and colour only on a terminal (a real pseudo-terminal through util-linux `script`).
 */
import { execa } from 'execa';
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Dataset, Machine, StorageTarget, Vector } from '../../api/types.ts';
import { bar, fleetStatus, formatBytes, renderStatus, statusExitCode, type FleetStatus } from '../../cli/commands/status.ts';
import { BdrUp, commitAll, eventually, git, initRepo, tempDir, writeRepoFile } from '../gitops/harness.ts';
import { REPO_ROOT, runBdr } from '../helpers/run-bdr.ts';
import { TestBed, type TestPool } from '../testbed/index.ts';

const fixture = <T>(name: string): T => JSON.parse(readFileSync(join(REPO_ROOT, 'test/fixtures/argocd', `${name}.json`), 'utf8')) as T;

describe('fleetStatus on recorded statuses', () => {
  const objects = {
    machines: ['machine-here', 'machine-wrongkey'].map((n) => fixture<Machine>(n)),
    storageTargets: [fixture<StorageTarget>('storagetarget-twovaults')],
    datasets: ['dataset-web', 'dataset-paused', 'dataset-wrongpool'].map((n) => fixture<Dataset>(n)),
    // Hand-written on purpose (test/fixtures/argocd/README.md): a transfer 700 MiB in, for the rate.
    vectors: ['vector-handwritten-synced', 'vector-handwritten-transferring'].map((n) => fixture<Vector>(n)),
  };

  it('reports machines, pools, targets, datasets and vectors, and the stalled objects as problems', () => {
    // dataset-web's newest restore point: 10:40:07, schedule 1h; vector-handwritten-synced: replica of 09:00:00, RPO 2h.
    const now = Date.parse('2026-12-01T10:45:00Z');
    const r = fleetStatus(objects, now, 'cluster test');
    expect(r.at).toBe('2026-12-01T10:45:00Z');
    expect(r.machines.map((m) => [m.name, m.ready, m.stalled, m.reason])).toEqual([
      ['here', 'True', false, 'Succeeded'],
      ['wrongkey', 'False', true, 'HostKeyMismatch'],
    ]);
    const here = fixture<Machine>('machine-here').status!.pools![0]!;
    expect(r.machines[0]!.pools).toEqual([
      { name: here.name, health: here.health, sizeBytes: here.sizeBytes, allocatedBytes: here.allocatedBytes, freeBytes: here.freeBytes, usedRatio: here.allocatedBytes! / here.sizeBytes! },
    ]);
    expect(r.storageTargets[0]!.machines[0]).toEqual({ name: 'vault01', sizeBytes: 4000787030016, usedBytes: 1204567890123, freeBytes: 2796219139893, usedRatio: 1204567890123 / 4000787030016, vectors: 3 });
    expect(r.datasets.map((d) => [d.name, d.restorePoints, d.suspended, d.overdue])).toEqual([
      ['paused', 0, true, false],
      ['web', 1, false, false],
      ['wrongpool', 0, false, false],
    ]);
    const synced = r.vectors.find((v) => v.name === 'web-offsite')!;
    expect(synced).toMatchObject({ pairedWith: 'vault01', lagSeconds: 6300, rpoSeconds: 7200, pastRpo: false });
    // 734003200 bytes since 10:15:02: 1798 s.
    const sending = r.vectors.find((v) => v.name === 'db-offsite')!;
    expect(sending.transfer).toEqual({ snapshot: 'bdr-20261201T101500Z', startedAt: '2026-12-01T10:15:02Z', bytes: 734003200, bytesPerSecond: Math.round(734003200 / 1798) });
    expect(r.problems.map((p) => `${p.kind} ${p.name} ${p.problem}`)).toEqual(['Machine wrongkey stalled', 'Dataset default/wrongpool stalled']);
    expect(r.problems[0]!.message).toMatch(/^HostKeyMismatch: /);
    expect(statusExitCode(r)).toBe(1);
  });

  it('says a vector is past its RPO once its replica is older than spec.rpo, and a dataset overdue after twice its schedule', () => {
    const before = fleetStatus({ ...objects, machines: [], datasets: [fixture<Dataset>('dataset-web')], vectors: [fixture<Vector>('vector-handwritten-synced')] }, Date.parse('2026-12-01T11:00:00Z'), 'x');
    expect(before.problems).toEqual([]);
    expect(statusExitCode(before)).toBe(0);
    // 09:00:00 + 2h = 11:00:00 (on the RPO: not past); 10:40:07 + 2 × 1h = 12:40:07.
    const at = fleetStatus({ ...objects, machines: [], datasets: [fixture<Dataset>('dataset-web')], vectors: [fixture<Vector>('vector-handwritten-synced')] }, Date.parse('2026-12-01T12:40:08Z'), 'x');
    expect(at.problems.map((p) => `${p.kind} ${p.name} ${p.problem}`)).toEqual(['Dataset default/web overdue', 'Vector default/web-offsite past RPO']);
    expect(at.problems[1]!.message).toBe('lag 3h40m8s, RPO 2h');
    // Suspended: never overdue.
    const paused = fleetStatus({ ...objects, machines: [], vectors: [], datasets: [fixture<Dataset>('dataset-paused')] }, Date.parse('2027-01-01T00:00:00Z'), 'x');
    expect(paused.problems).toEqual([]);
  });

  it('renders bars, sizes and colour only when asked', () => {
    expect(bar(0)).toBe('[----------]   0%');
    expect(bar(0.62)).toBe('[######----]  62%');
    expect(bar(1.2)).toBe('[##########] 100%');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(256 * 1024 * 1024)).toBe('256 MiB');
    const r: FleetStatus = fleetStatus(objects, Date.parse('2026-12-01T10:45:00Z'), 'cluster test');
    const plain = renderStatus(r, { color: false, now: Date.parse('2026-12-01T10:45:00Z') });
    expect(plain).not.toContain('\x1b[');
    expect(plain).toMatch(/^ {4}offsite\/vault01 {2}\[###-------\] {2}30% {2}2\.5 TiB free of 3\.6 TiB {2}3 vector\(s\)$/m);
    expect(plain).toMatch(/^ {2}default\/web +here +True +1 +4m53s ago +in 15m +Succeeded$/m);
    expect(plain).toContain('  Machine wrongkey stalled: HostKeyMismatch: ');
    expect(plain).toContain('    default/db-offsite  sending bdr-20261201T101500Z: 700 MiB, 399 KiB/s, started 29m58s ago');
    const coloured = renderStatus(r, { color: true, now: Date.parse('2026-12-01T10:45:00Z') });
    expect(coloured).toContain('\x1b[31mStalled');
    expect(coloured).toContain('\x1b[32mTrue');
  });
});

const machine = (pool: string) => `apiVersion: bdr.dev/v1alpha1
kind: Machine
metadata:
  name: here
spec:
  connection: { type: local }
  pools: [${pool}]
  allowedNamespaces: { names: [default] }
  datasetRoots: [{ root: "{pool}", namespace: default }]
`;
const policy = `apiVersion: bdr.dev/v1alpha1
kind: RetentionPolicy
metadata: { name: short, namespace: default }
spec: { keepLast: 3 }
`;
const dataset = (name: string, zfs: string) => `apiVersion: bdr.dev/v1alpha1
kind: Dataset
metadata: { name: ${name}, namespace: default }
spec:
  machineRef: { name: here }
  name: ${zfs}
  schedule: { interval: 1h }
  retentionPolicyRef: { name: short }
  managementPolicy: Create
`;

describe('bdr status against a running bdr up', { timeout: 240_000 }, () => {
  const tmp = tempDir('bdr-status-');
  const bed = new TestBed();
  const state = join(tmp.path, 'state');
  const repo = join(tmp.path, 'repo');
  let pool: TestPool;
  let up: BdrUp;

  const json = async (...args: string[]) => {
    const r = await runBdr(['status', '--state', state, '-o', 'json', ...args]);
    return { code: r.exitCode, report: JSON.parse(r.stdout) as FleetStatus, stderr: r.stderr };
  };

  beforeAll(async () => {
    pool = await bed.pool();
    await initRepo(repo);
    await writeRepoFile(repo, 'machine.yaml', machine(pool.name));
    await writeRepoFile(repo, 'policy.yaml', policy);
    await writeRepoFile(repo, 'web.yaml', dataset('web', `${pool.name}/web`));
    // On a pool outside the Machine's spec.pools: the controller stalls it (PoolNotManaged).
    await writeRepoFile(repo, 'stray.yaml', dataset('stray', 'elsewhere/stray'));
    await commitAll(repo, 'fleet');
    up = new BdrUp(['--repo', repo, '--interval', '1h'], state);
    await up.ready();
    await eventually(async () => {
      const { report } = await json();
      const web = report.datasets.find((d) => d.name === 'web');
      const stray = report.datasets.find((d) => d.name === 'stray');
      return web?.restorePoints === 1 && stray?.stalled && report.machines[0]?.pools.length ? true : undefined;
    }, 'the controllers to report');
  }, 240_000);

  afterAll(async () => {
    if (up) await up.stop('SIGTERM');
    await bed.cleanup();
    tmp.remove();
  });

  it('-o json: the fleet as the controllers report it, the stalled dataset as a problem, exit 1', async () => {
    const { code, report } = await json();
    expect(code).toBe(1);
    expect(report.source).toMatch(/^cluster https?:\/\/127\.0\.0\.1:\d+$/);
    expect(report.machines.map((m) => [m.name, m.ready])).toEqual([['here', 'True']]);
    const [p] = report.machines[0]!.pools;
    expect(p!.name).toBe(pool.name);
    expect(p!.health).toBe('ONLINE');
    expect(p!.usedRatio).toBeCloseTo(p!.allocatedBytes! / p!.sizeBytes!, 10);
    const web = report.datasets.find((d) => d.name === 'web')!;
    expect(web).toMatchObject({ namespace: 'default', machine: 'here', dataset: `${pool.name}/web`, ready: 'True', restorePoints: 1, overdue: false });
    expect(Date.parse(web.next!)).toBeGreaterThan(Date.parse(web.newest!));
    expect(report.problems).toEqual([{ kind: 'Dataset', name: 'default/stray', problem: 'stalled', message: expect.stringMatching(/^PoolNotManaged: pool elsewhere is not in Machine here's spec.pools/) as unknown as string }]);
  });

  it('text without a terminal has no colour; -o yaml parses to the same report', async () => {
    const text = await runBdr(['status', '--state', state]);
    expect(text.exitCode).toBe(1);
    expect(text.stdout).not.toContain('\x1b[');
    expect(text.stdout).toMatch(new RegExp(`^ {4}here/${pool.name} {2}\\[[#-]{10}\\] +\\d+% {2}\\d+(\\.\\d)? MiB free of \\d+ MiB {2}ONLINE$`, 'm'));
    expect(text.stdout).toMatch(/^ {2}default\/stray +here +Stalled +0 +- +- +PoolNotManaged$/m);
    expect(text.stdout).toContain('  Dataset default/stray stalled: PoolNotManaged: ');
    const yaml = await runBdr(['status', '--state', state, '-o', 'yaml']);
    const parsed = parse(yaml.stdout) as FleetStatus;
    expect(parsed.datasets.map((d) => d.name)).toEqual(['stray', 'web']);
    expect(parsed.problems).toHaveLength(1);
  });

  it('colours its output on a terminal', async () => {
    const r = await execa('script', ['-qec', `node ${join(REPO_ROOT, 'bin/bdr.js')} status --state ${state}`, '/dev/null'], { cwd: REPO_ROOT, reject: false, env: { NO_COLOR: '' } });
    expect(String(r.stdout)).toContain('\x1b[32mTrue');
    expect(String(r.stdout)).toContain('\x1b[31mStalled');
    expect(r.exitCode).toBe(1);
  });

  it('exits 0 once nothing is stalled, and -w refreshes until interrupted (130)', async () => {
    const syncs = up.syncs().length;
    unlinkSync(join(repo, 'stray.yaml'));
    await git(repo, 'add', '--all');
    await git(repo, 'commit', '--quiet', '-m', 'drop the stray dataset');
    await up.nextSync(syncs);
    const { report } = await eventually(async () => {
      const r = await json();
      return r.code === 0 ? r : undefined;
    }, 'status to exit 0');
    expect(report.datasets.map((d) => d.name)).toEqual(['web']);
    expect(report.problems).toEqual([]);

    const watch = execa('node', [join(REPO_ROOT, 'bin/bdr.js'), 'status', '--state', state, '-w', '--interval', '1s', '-o', 'json'], { cwd: REPO_ROOT, reject: false, buffer: false });
    let out = '';
    watch.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
    await eventually(() => (out.split('\n').filter((l) => l.startsWith('{')).length >= 2 ? true : undefined), 'two refreshes');
    watch.kill('SIGINT');
    const r = await watch;
    expect(r.exitCode).toBe(130);
    const reports = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as FleetStatus);
    expect(reports.length).toBeGreaterThanOrEqual(2);
    expect(Date.parse(reports[1]!.at)).toBeGreaterThan(Date.parse(reports[0]!.at));
  });

  it('says what is wrong when there is no bdr up in the state directory', async () => {
    const r = await runBdr(['status', '--state', join(tmp.path, 'nowhere')]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/no kubeconfig in .*nowhere: is `bdr up --state .*` running\?/);
  });
});
