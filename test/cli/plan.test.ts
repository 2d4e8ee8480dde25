/**
 * `bdr plan` on real parts: a zfs-fuse pool with restore points taken the way the controller takes them, a
 * local Machine declared in a repository of manifests, and an SSH Machine (real sshd) declared in an embedded
 * cluster. The printed plan must be planDataset's own decision; nothing on ZFS may change.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import type { Dataset, RetentionPolicy } from '../../api/types.ts';
import type { DatasetPlanReport, PlanReport } from '../../cli/commands/plan.ts';
import { datasetPlanInput } from '../../controllers/dataset-snapshots.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { planDataset, snapshotShortName } from '../../planning/dataset-plan.ts';
import { parseSchedule } from '../../planning/schedule.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { startTestCluster, type TestCluster } from '../controllers/cluster-fixture.ts';
import { runBdr, runBdrInProcess } from '../helpers/run-bdr.ts';
import { TestBed, runOk, type TestMachine, type TestPool } from '../testbed/index.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

const bdr = runBdrInProcess;

describe('bdr plan', () => {
  const bed = new TestBed();
  const zfs = new ZfsMachine(new LocalConnection());
  let pool: TestPool;
  let ssh: TestMachine;
  let tc: TestCluster;
  let repo: string;
  let vms: string;
  let db: string;
  const policy = { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'short', namespace: 'default' }, spec: { keepLast: 2, hourly: 4 } };
  const dataset = (name: string, zfsName: string, machine: string, interval: string) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name, namespace: 'default' },
    spec: { machineRef: { name: machine }, name: zfsName, schedule: { interval }, retentionPolicyRef: { name: 'short' } },
  });

  /** Everything on the pool that a plan could change: names, holds, ownership. */
  const state = () => runOk(['zfs', 'get', '-H', '-p', '-r', '-o', 'name,property,value', 'type,createtxg,userrefs,dev.bdr:owner', pool.name]);

  /** What planDataset decides for this Dataset at `at`, from a fresh inventory: the controller's own computation. */
  async function expected(ds: ReturnType<typeof dataset>, at: number) {
    const inventory = await zfs.inventory({ roots: [pool.name] });
    const schedule = parseSchedule(ds.spec.schedule);
    if (!schedule.ok) throw new Error(schedule.problem);
    return planDataset(datasetPlanInput(ds as unknown as Dataset, schedule.value, policy as unknown as RetentionPolicy, inventory, at));
  }

  beforeAll(async () => {
    [pool, ssh, tc] = await Promise.all([bed.pool(), bed.machine('plan-ssh'), startTestCluster()]);
    vms = `${pool.name}/vms`;
    db = `${pool.name}/db`;
    await runOk(['zfs', 'create', vms]);
    await runOk(['zfs', 'create', db]);
    // Hourly restore points T0 … T0+9h, as the controller takes them; a held one; one somebody else took.
    for (let h = 0; h < 10; h++) await runOk(['zfs', 'snapshot', '-o', 'dev.bdr:owner=bdr', `${vms}@${snapshotShortName(T0 + h * HOUR)}`]);
    await runOk(['zfs', 'hold', 'keep', `${vms}@${snapshotShortName(T0 + 2 * HOUR)}`]);
    await runOk(['zfs', 'snapshot', `${vms}@manual`]);
    // A bdr-* name without the ownership mark is not bdr's: never pruned.
    await runOk(['zfs', 'snapshot', `${vms}@bdr-20250101T000000Z`]);
    for (const h of [0, 5]) await runOk(['zfs', 'snapshot', '-o', 'dev.bdr:owner=bdr', `${db}@${snapshotShortName(T0 + h * HOUR)}`]);

    repo = await mkdtemp(join(tmpdir(), 'bdr-plan-'));
    const docs = [
      { apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'local' }, spec: { connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] } } },
      policy,
      dataset('vms', vms, 'local', '1h'),
      dataset('db', db, 'local', '1d'),
    ];
    await writeFile(join(repo, 'bdr.yaml'), docs.map((d) => stringify(d)).join('---\n'));
    // An invalid Dataset: reported with file:line and skipped, the others still planned.
    await writeFile(join(repo, 'broken.yaml'), stringify(dataset('broken', `${pool.name}/../etc`, 'local', '1h')));

    const { namespace: _ns, ...meta } = ssh.machine.metadata;
    tc.apply(ssh.secret);
    tc.apply({ ...ssh.machine, metadata: meta, spec: { ...ssh.machine.spec, pools: [pool.name] } });
    tc.apply(policy);
    tc.apply(dataset('vms', vms, ssh.name, '1h'));
    tc.apply(dataset('db', db, ssh.name, '1d'));
  });

  afterAll(async () => {
    await tc?.stop();
    if (repo) await rm(repo, { recursive: true, force: true });
    await bed.cleanup();
  });

  it('prints what planDataset decides (repository, local Machine), skips invalid manifests with file:line, changes nothing', async () => {
    const at = T0 + 9.5 * HOUR;
    const before = await state();
    const r = await runBdr(['plan', '--repo', repo, '--at', iso(at), '-v']);
    expect(r.exitCode, r.stderr).toBe(1); // the broken manifest
    expect(r.stderr).toMatch(/^broken\.yaml:\d+: Dataset\/broken: spec\.name: must not contain "\.\."$/m);
    const want = await expected(dataset('vms', vms, 'local', '1h'), at);
    // keepLast 2 + hourly 4 keep 6…9h; the held 2h survives; 0, 1, 3, 4, 5h go, each with its reason.
    expect(want.destroy).toEqual([5, 4, 3, 1, 0].map((h) => `${vms}@${snapshotShortName(T0 + h * HOUR)}`));
    const block = r.stdout.split('\n\n').find((b) => b.startsWith('default/vms')) ?? '';
    for (const d of want.decisions) {
      const line = `${d.name.split('@')[1]}  ${d.reasons.join(', ')}`;
      expect(block, `${d.keep ? 'keep' : 'destroy'} ${line}`).toMatch(new RegExp(`^\\s+(${d.keep ? 'keep' : 'destroy'})?\\s+${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    }
    expect(block).toContain(`next      ${snapshotShortName(T0 + 10 * HOUR)} at ${iso(T0 + 10 * HOUR)} (in 30m)`);
    expect(block).not.toMatch(/^\s+take/m);
    expect(block).toContain('10 restore point(s) by bdr, 2 other snapshot(s) (never pruned)');
    expect(r.stdout).not.toContain('default/broken');
    expect(await state()).toBe(before);
  });

  it('--at shifts due-ness: the JSON plan at +30m takes the next snapshot and destroys accordingly', async () => {
    const before = await state();
    for (const at of [T0 + 9.5 * HOUR, T0 + 10.5 * HOUR, T0 + 30 * HOUR]) {
      const r = await bdr(['plan', '--repo', repo, '--at', iso(at), '-o', 'json', 'vms', 'db']);
      expect(r.code, r.stderr).toBe(1);
      const report = JSON.parse(r.stdout) as PlanReport;
      expect(report.at).toBe(iso(at));
      expect(report.datasets.map((d) => `${d.namespace}/${d.name}`)).toEqual(['default/db', 'default/vms']);
      for (const d of report.datasets) {
        const want = await expected(dataset(d.name, d.dataset, 'local', d.name === 'vms' ? '1h' : '1d'), at);
        expect(d.take?.snapshot).toBe(want.take?.name);
        expect(d.next?.at).toBe(iso(want.nextSnapshotAt));
        expect(d.missed).toBe(want.missed);
        expect(d.destroy).toEqual(want.decisions.filter((x) => !x.keep).map((x) => ({ snapshot: x.name, createdAt: iso(x.createdAt), reasons: [...x.reasons] })));
        expect(d.keep.map((k) => k.snapshot)).toEqual(want.decisions.filter((x) => x.keep).map((x) => x.name));
        expect(d.unmetCaps).toEqual(want.unmetCaps);
      }
      const vmsPlan = report.datasets.find((d) => d.name === 'vms') as DatasetPlanReport;
      if (at === T0 + 9.5 * HOUR) expect(vmsPlan.take).toBeUndefined();
      else expect(vmsPlan.take).toEqual({ snapshot: `${vms}@${snapshotShortName(at)}`, at: iso(at) });
      // 30h: 20 hourly runs missed since 9h; db (daily) is due again at midnight.
      if (at === T0 + 30 * HOUR) expect(vmsPlan.missed).toBeGreaterThan(0);
    }
    expect(await state()).toBe(before);
  });

  it('reads a cluster through --kubeconfig and plans an SSH Machine with one connection and one inventory', async () => {
    const at = T0 + 10.5 * HOUR;
    const inventories = vi.spyOn(ZfsMachine.prototype, 'inventory');
    try {
      const r = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-o', 'json']);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as PlanReport;
      expect(report.source).toMatch(/^cluster https?:\/\//);
      expect(report.datasets.map((d) => [d.name, d.machine, d.error])).toEqual([
        ['db', ssh.name, undefined],
        ['vms', ssh.name, undefined],
      ]);
      const want = await expected(dataset('vms', vms, ssh.name, '1h'), at);
      const vmsPlan = report.datasets.find((d) => d.name === 'vms') as DatasetPlanReport;
      expect(vmsPlan.destroy.map((d) => [d.snapshot, d.reasons])).toEqual(want.decisions.filter((x) => !x.keep).map((x) => [x.name, [...x.reasons]]));
      expect(vmsPlan.take?.snapshot).toBe(`${vms}@${snapshotShortName(at)}`);
      // Two Datasets on one machine: one `zfs get` (plus the one `expected` made above).
      expect(inventories).toHaveBeenCalledTimes(2);
      // -n selects a namespace; an unknown one plans nothing.
      const none = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '-n', 'other', '-o', 'json']);
      expect(none.code, none.stderr).toBe(0);
      expect((JSON.parse(none.stdout) as PlanReport).datasets).toEqual([]);
    } finally {
      inventories.mockRestore();
    }
  });

  it('with --repo, an SSH Machine takes its key from a Secret document, and without one says which Secret is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bdr-plan-ssh-'));
    try {
      const { namespace: _ns, ...meta } = ssh.machine.metadata;
      const docs = [{ ...ssh.machine, metadata: meta, spec: { ...ssh.machine.spec, pools: [pool.name], allowedNamespaces: { names: ['default'] } } }, policy, dataset('vms', vms, ssh.name, '1h')];
      await writeFile(join(dir, 'bdr.yaml'), docs.map((d) => stringify(d)).join('---\n'));
      const missing = await bdr(['plan', '--repo', dir, '--at', iso(T0 + 9.5 * HOUR)]);
      expect(missing.code).toBe(1);
      expect(missing.stdout).toContain(`error     Machine ${ssh.name}: its private key Secret default/${ssh.name}-ssh is not in the repository ${dir}`);

      await writeFile(join(dir, 'secret.yaml'), stringify(ssh.secret));
      const r = await bdr(['plan', '--repo', dir, '--at', iso(T0 + 9.5 * HOUR), '-o', 'json']);
      expect(r.code, r.stderr).toBe(0);
      const [vmsPlan] = (JSON.parse(r.stdout) as PlanReport).datasets;
      expect(vmsPlan?.destroy.map((d) => d.snapshot)).toEqual((await expected(dataset('vms', vms, ssh.name, '1h'), T0 + 9.5 * HOUR)).destroy);
      // The key never reaches the output.
      expect(r.stdout + r.stderr + missing.stdout + missing.stderr).not.toContain('PRIVATE KEY');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad --at, both sources at once, and no source at all', async () => {
    const bad = await bdr(['plan', '--repo', repo, '--at', 'tomorrow']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--at "tomorrow" is not a time');
    const both = await bdr(['plan', '--repo', repo, '--kubeconfig', tc.cluster.kubeconfigPath]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('either --repo DIR or --kubeconfig FILE');
    // Neither a source nor any kubeconfig: say so, rather than trying http://localhost:8080.
    const env = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
    process.env.HOME = repo;
    delete process.env.KUBECONFIG;
    try {
      const none = await bdr(['plan']);
      expect(none.code).toBe(3);
      expect(none.stderr).toBe('bdr: no cluster configured: pass --repo DIR (a GitOps repository) or --kubeconfig FILE, or set KUBECONFIG\n');
    } finally {
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
});
