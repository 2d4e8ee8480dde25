/**
 * `bdr plan` on real parts: a zfs-fuse pool with restore points taken the way the controller takes them, a
 * local Machine declared in a repository of manifests, and an SSH Machine (real sshd) declared in an embedded
 * cluster. Every expected plan is written out by hand from the fixture (hourly restore points 0h…9h, 2h held,
 * keepLast 2 + hourly 4); nothing on ZFS may change. Datasets their Machine refuses (planning/tenancy.ts) or that
 * sit on a suspended Machine are shown as such, with the controller's reason, and nothing is planned for them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { vectorKind } from '../../api/kinds/index.ts';
import type { Vector } from '../../api/types.ts';
import type { DatasetPlanReport, PlanReport } from '../../cli/commands/plan.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { writeStatus } from '../../controllers/runtime/status.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { startTestCluster, type TestCluster } from '../controllers/cluster-fixture.ts';
import { runBdr, runBdrInProcess } from '../helpers/run-bdr.ts';
import { TestBed, runOk, type TestMachine, type TestPool } from '../testbed/index.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
/** bdr's name for the restore point of T0 + h hours, h < 24: `bdr-20260101T050000Z`. */
const hour = (h: number) => `bdr-20260101T${String(h).padStart(2, '0')}0000Z`;

const bdr = runBdrInProcess;

describe('bdr plan', () => {
  const bed = new TestBed();
  let pool: TestPool;
  let ssh: TestMachine;
  let tc: TestCluster;
  let repo: string;
  let vms: string;
  let db: string;
  const policy = { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'short', namespace: 'default' }, spec: { keepLast: 2, hourly: 4 } };
  const dataset = (name: string, zfsName: string, machine: string, interval: string, namespace = 'default', extra: Record<string, unknown> = {}) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name, namespace },
    spec: { machineRef: { name: machine }, name: zfsName, schedule: { interval }, retentionPolicyRef: { name: 'short' }, ...extra },
  });
  const policyIn = (namespace: string) => ({ ...policy, metadata: { ...policy.metadata, namespace } });

  /** Everything on the pool that a plan could change: names, holds, ownership. */
  const state = () => runOk(['zfs', 'get', '-H', '-p', '-r', '-o', 'name,property,value', 'type,createtxg,userrefs,dev.bdr:owner', pool.name]);

  beforeAll(async () => {
    [pool, ssh, tc] = await Promise.all([bed.pool(), bed.machine('plan-ssh'), startTestCluster()]);
    vms = `${pool.name}/vms`;
    db = `${pool.name}/db`;
    await runOk(['zfs', 'create', vms]);
    await runOk(['zfs', 'create', db]);
    // Hourly restore points T0 … T0+9h, as the controller takes them; a held one; one somebody else took.
    for (let h = 0; h < 10; h++) await runOk(['zfs', 'snapshot', '-o', 'dev.bdr:owner=bdr', `${vms}@${hour(h)}`]);
    await runOk(['zfs', 'hold', 'keep', `${vms}@${hour(2)}`]);
    await runOk(['zfs', 'snapshot', `${vms}@manual`]);
    // A bdr-* name without the ownership mark is not bdr's: never pruned.
    await runOk(['zfs', 'snapshot', `${vms}@bdr-20250101T000000Z`]);
    for (const h of [0, 5]) await runOk(['zfs', 'snapshot', '-o', 'dev.bdr:owner=bdr', `${db}@${hour(h)}`]);

    repo = await mkdtemp(join(tmpdir(), 'bdr-plan-'));
    const docs = [
      { apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'local' }, spec: { connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } },
      policy,
      dataset('vms', vms, 'local', '1h'),
      dataset('db', db, 'local', '1d'),
    ];
    await writeFile(join(repo, 'bdr.yaml'), docs.map((d) => stringify(d)).join('---\n'));
    // An invalid Dataset: reported with file:line and skipped, the others still planned.
    await writeFile(join(repo, 'broken.yaml'), stringify(dataset('broken', `${pool.name}/../etc`, 'local', '1h')));

    const { namespace: _ns, ...meta } = ssh.machine.metadata;
    tc.apply(ssh.secret);
    tc.apply({ ...ssh.machine, metadata: meta, spec: { ...ssh.machine.spec, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } });
    tc.apply(policy);
    tc.apply(dataset('vms', vms, ssh.name, '1h'));
    tc.apply(dataset('db', db, ssh.name, '1d'));
    // What the Machines refuse or pause (the API server checks no rule across objects, as in a real cluster).
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } });
    tc.apply(policyIn('team-b'));
    tc.apply(dataset('vms', vms, ssh.name, '1h', 'team-b'));
    tc.apply(dataset('share', `${pool.name}/share`, ssh.name, '1h', 'default', { managementPolicy: 'Create', properties: { sharenfs: 'on' } }));
    tc.apply(dataset('mnt', `${pool.name}/mnt`, ssh.name, '1h', 'default', { managementPolicy: 'Create', properties: { mountpoint: '/srv/mnt' } }));
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'paused' }, spec: { connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }], suspend: true } });
    tc.apply(dataset('held', vms, 'paused', '1h'));
  });

  afterAll(async () => {
    await tc?.stop();
    if (repo) await rm(repo, { recursive: true, force: true });
    await bed.cleanup();
  });

  it('prints the plan (repository, local Machine), skips invalid manifests with file:line, changes nothing', async () => {
    const at = T0 + 9.5 * HOUR;
    const before = await state();
    const r = await runBdr(['plan', '--repo', repo, '--at', iso(at), '-v']);
    expect(r.exitCode, r.stderr).toBe(1); // the broken manifest
    expect(r.stderr).toMatch(/^broken\.yaml:\d+: Dataset\/broken: spec\.name: must not contain "\.\."$/m);
    const block = r.stdout.split('\n\n').find((b) => b.startsWith('default/vms')) ?? '';
    // At 9:30 the last run (9h) is recent: nothing to take, the next at 10h. keepLast 2 keeps 9h and 8h, hourly 4
    // the newest of the hours 9, 8, 7, 6; the hold protects 2h; 5, 4, 3, 1 and 0h expire.
    expect(block.split('\n').filter((l) => !l.startsWith('  schedule'))).toEqual([
      `default/vms  ${vms} on Machine local`,
      '  points    10 restore point(s) by bdr, 2 other snapshot(s) (never pruned)',
      '  next      bdr-20260101T100000Z at 2026-01-01T10:00:00Z (in 30m)',
      '  destroy   bdr-20260101T050000Z  expired',
      '            bdr-20260101T040000Z  expired',
      '            bdr-20260101T030000Z  expired',
      '            bdr-20260101T010000Z  expired',
      '            bdr-20260101T000000Z  expired',
      '  keep      bdr-20260101T090000Z  newest, keepLast, hourly 2026-01-01T09',
      '            bdr-20260101T080000Z  keepLast, hourly 2026-01-01T08',
      '            bdr-20260101T070000Z  hourly 2026-01-01T07',
      '            bdr-20260101T060000Z  hourly 2026-01-01T06',
      '            bdr-20260101T020000Z  protected',
    ]);
    expect(r.stdout).not.toContain('default/broken');
    expect(await state()).toBe(before);
  });

  it('--at shifts due-ness: the JSON plan at +30m takes the next snapshot and destroys accordingly', async () => {
    const before = await state();
    const expired = (...hours: number[]) => hours.map((h) => ({ snapshot: `${vms}@${hour(h)}`, createdAt: iso(T0 + h * HOUR), reasons: ['expired'] }));
    // Hand-computed for each instant: what is due, what is missed, and what keepLast 2 + hourly 4 keep.
    const cases = [
      {
        at: T0 + 9.5 * HOUR,
        db: { take: undefined, next: '2026-01-02T00:00:00Z', missed: 0, keep: [`${db}@${hour(5)}`, `${db}@${hour(0)}`] },
        vms: { take: undefined, next: '2026-01-01T10:00:00Z', missed: 0, destroy: expired(5, 4, 3, 1, 0), keep: [9, 8, 7, 6, 2].map((h) => `${vms}@${hour(h)}`) },
      },
      {
        // 10h is due (an hour after 9h): taken now at 10:30, so the next is at 11h.
        at: T0 + 10.5 * HOUR,
        db: { take: undefined, next: '2026-01-02T00:00:00Z', missed: 0, keep: [`${db}@${hour(5)}`, `${db}@${hour(0)}`] },
        vms: {
          take: { snapshot: `${vms}@bdr-20260101T103000Z`, at: '2026-01-01T10:30:00Z' },
          next: '2026-01-01T11:00:00Z',
          missed: 0,
          destroy: expired(6, 5, 4, 3, 1, 0),
          keep: [`${vms}@bdr-20260101T103000Z`, ...[9, 8, 7, 2].map((h) => `${vms}@${hour(h)}`)],
        },
      },
      {
        // Next day 6:00: the hourly runs 10h … 5h of day two (20) were missed; db's midnight run is due.
        at: T0 + 30 * HOUR,
        db: {
          take: { snapshot: `${db}@bdr-20260102T060000Z`, at: '2026-01-02T06:00:00Z' },
          next: '2026-01-03T00:00:00Z',
          missed: 0,
          keep: [`${db}@bdr-20260102T060000Z`, `${db}@${hour(5)}`, `${db}@${hour(0)}`],
        },
        vms: {
          take: { snapshot: `${vms}@bdr-20260102T060000Z`, at: '2026-01-02T06:00:00Z' },
          next: '2026-01-02T07:00:00Z',
          missed: 20,
          destroy: expired(6, 5, 4, 3, 1, 0),
          keep: [`${vms}@bdr-20260102T060000Z`, ...[9, 8, 7, 2].map((h) => `${vms}@${hour(h)}`)],
        },
      },
    ];
    for (const c of cases) {
      const r = await bdr(['plan', '--repo', repo, '--at', iso(c.at), '-o', 'json', 'vms', 'db']);
      expect(r.code, r.stderr).toBe(1);
      const report = JSON.parse(r.stdout) as PlanReport;
      expect(report.at).toBe(iso(c.at));
      expect(report.datasets.map((d) => `${d.namespace}/${d.name}`)).toEqual(['default/db', 'default/vms']);
      const [dbPlan, vmsPlan] = report.datasets as [DatasetPlanReport, DatasetPlanReport];
      expect([dbPlan.take, dbPlan.next?.at, dbPlan.missed, dbPlan.destroy, dbPlan.keep.map((k) => k.snapshot), dbPlan.unmetCaps], iso(c.at)).toEqual([
        c.db.take,
        c.db.next,
        c.db.missed,
        [],
        c.db.keep,
        [],
      ]);
      expect([vmsPlan.take, vmsPlan.next?.at, vmsPlan.missed, vmsPlan.destroy, vmsPlan.keep.map((k) => k.snapshot), vmsPlan.unmetCaps], iso(c.at)).toEqual([
        c.vms.take,
        c.vms.next,
        c.vms.missed,
        c.vms.destroy,
        c.vms.keep,
        [],
      ]);
    }
    expect(await state()).toBe(before);
  });

  it('reads a cluster through --kubeconfig and plans an SSH Machine with one connection and one inventory', async () => {
    const at = T0 + 10.5 * HOUR;
    const inventories = vi.spyOn(ZfsMachine.prototype, 'inventory');
    try {
      const r = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-o', 'json', 'vms', 'db']);
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout) as PlanReport;
      expect(report.source).toMatch(/^cluster https?:\/\//);
      expect(report.datasets.map((d) => [d.name, d.machine, d.error])).toEqual([
        ['db', ssh.name, undefined],
        ['vms', ssh.name, undefined],
      ]);
      // As from the repository at 10:30 (see above): 10h is due, hours 6, 5, 4, 3, 1, 0 expire.
      const vmsPlan = report.datasets.find((d) => d.name === 'vms') as DatasetPlanReport;
      expect(vmsPlan.destroy.map((d) => [d.snapshot, d.reasons])).toEqual([6, 5, 4, 3, 1, 0].map((h) => [`${vms}@${hour(h)}`, ['expired']]));
      expect(vmsPlan.take?.snapshot).toBe(`${vms}@bdr-20260101T103000Z`);
      // Two Datasets on one machine: one `zfs get`.
      expect(inventories).toHaveBeenCalledTimes(1);
      // -n selects a namespace; an unknown one plans nothing.
      const none = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '-n', 'other', '-o', 'json']);
      expect(none.code, none.stderr).toBe(0);
      expect((JSON.parse(none.stdout) as PlanReport).datasets).toEqual([]);
    } finally {
      inventories.mockRestore();
    }
  });

  it("--kubeconfig: a Vector's incremental base (status.lastSyncedSnapshot) is kept as protected, never destroyed", async () => {
    const at = T0 + 10.5 * HOUR;
    const client = new KubeClient(tc.kubeConfig);
    const VECTOR = resourceOf(vectorKind);
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'offsite', namespace: 'default' },
      spec: { source: { datasetRef: { name: 'vms' } }, target: { machineRef: { name: ssh.name }, dataset: `${pool.name}/replica` } },
    }) as unknown as Vector;
    // As the Vector controller records it after a sync that ended at 4h: 4h is the next incremental base.
    await writeStatus(client, VECTOR, applied, { lastSyncedSnapshot: { name: hour(4) } });
    try {
      const before = await state();
      const r = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-o', 'json', 'vms']);
      expect(r.code, r.stderr).toBe(0);
      const vmsPlan = (JSON.parse(r.stdout) as PlanReport).datasets[0] as DatasetPlanReport;
      // Without the vector 6, 5, 4, 3, 1, 0 expire (test above); 4h is now the vector's base.
      expect(vmsPlan.destroy.map((d) => [d.snapshot, d.reasons])).toEqual([6, 5, 3, 1, 0].map((h) => [`${vms}@${hour(h)}`, ['expired']]));
      expect(vmsPlan.keep.find((k) => k.snapshot === `${vms}@${hour(4)}`)?.reasons).toContain('protected');
      const text = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-v', 'vms']);
      expect(text.stdout.split('\n').filter((l) => l.includes(hour(4)))).toEqual([`            ${hour(4)}  protected`]);
      expect(await state()).toBe(before);
    } finally {
      await client.custom.deleteNamespacedCustomObject({ group: VECTOR.group, version: VECTOR.version, plural: VECTOR.plural, namespace: 'default', name: 'offsite' });
    }
  }, 120_000);

  it("--kubeconfig: a paired Vector's next sync (steps from the common base, prunes) from a real replica", async () => {
    const at = T0 + 10.5 * HOUR;
    const client = new KubeClient(tc.kubeConfig);
    const VECTOR = resourceOf(vectorKind);
    const rep = `${pool.name}/rep`;
    // The replica as a first sync leaves it: 0h received in full (same guid on both ends).
    await runOk(['zfs', 'create', rep]);
    await runOk(['sh', '-c', `zfs send ${vms}@${hour(0)} | zfs receive -u ${rep}/vms`]);
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'offsite', namespace: 'default' },
      spec: { source: { datasetRef: { name: 'vms' } }, target: { machineRef: { name: ssh.name }, dataset: rep } },
    }) as unknown as Vector;
    // A stream of an earlier run still going, as the controller writes it (status.transfer).
    const transfer = { step: `1 of 1: -i ${hour(0)} → ${hour(6)}`, snapshot: hour(6), bytes: 5 * 1024 * 1024, startedAt: '2026-01-01T10:29:00Z' };
    await writeStatus(client, VECTOR, applied, { pairing: { machine: ssh.name, dataset: rep }, transfer });
    try {
      const before = await state();
      const r = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'default', '-o', 'json']);
      // 1: default/mnt and default/share are refused by their Machine (see below); the vector plans fine.
      expect(r.code, r.stderr).toBe(1);
      const [v, ...others] = (JSON.parse(r.stdout) as PlanReport).vectors;
      expect(others).toEqual([]);
      expect(v?.kind).toBe('send');
      expect(v?.source).toEqual({ machine: ssh.name, dataset: vms });
      expect(v?.target).toEqual({ machine: ssh.name, dataset: `${rep}/vms` });
      expect(v?.base).toBe(`${vms}@${hour(0)}`);
      // The remote policy (keepLast 2, hourly 4) at 10:30 keeps the four newest hourly buckets: @manual's (taken
      // now, by the wall clock), 9h, 8h and 7h; the newest snapshot by createtxg (the unowned bdr-2025… one) is
      // always sent. One -i per kept point from the common base 0h, oldest first; nothing to prune yet.
      expect(v?.steps.map((s) => [s.mode, s.from, s.to, s.points, s.estimatedBytes])).toEqual([
        ['i', `${vms}@${hour(0)}`, `${vms}@${hour(7)}`, 1, null],
        ['i', `${vms}@${hour(7)}`, `${vms}@${hour(8)}`, 1, null],
        ['i', `${vms}@${hour(8)}`, `${vms}@${hour(9)}`, 1, null],
        ['i', `${vms}@${hour(9)}`, `${vms}@manual`, 1, null],
        ['i', `${vms}@manual`, `${vms}@bdr-20250101T000000Z`, 1, null],
      ]);
      expect(v?.steps.slice(0, 3).map((s) => s.why)).toEqual(['hourly 2026-01-01T07', 'hourly 2026-01-01T08', 'keepLast, hourly 2026-01-01T09']);
      expect(v?.prunes).toEqual([]);
      expect(v?.transfer).toEqual(transfer);
      const text = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'default']);
      const block = text.stdout.split('\n\n').find((b) => b.startsWith('Vector default/offsite')) ?? '';
      // zfs-fuse cannot estimate a stream (no zfs send -n -P): sizes print as "?".
      expect(block.split('\n').slice(0, 5)).toEqual([
        `Vector default/offsite  ${vms} on Machine ${ssh.name} → ${rep}/vms on Machine ${ssh.name}`,
        `  running   1 of 1: -i ${hour(0)} → ${hour(6)}: 5.0 MiB so far, since 2026-01-01T10:29:00Z (the plan below is for the next run)`,
        `  base      ${hour(0)}`,
        `  send      -i ${hour(0)} → ${hour(7)}  (1 point(s), ? bytes)  hourly 2026-01-01T07`,
        `            -i ${hour(7)} → ${hour(8)}  (1 point(s), ? bytes)  hourly 2026-01-01T08`,
      ]);
      expect(text.stdout).toContain('1 vector(s): 5 send step(s), 0 replica snapshot(s) to prune\n');
      expect(await state()).toBe(before);

      // A replica with data but no snapshot in common is never overwritten: the plan shows the controller's refusal.
      await runOk(['zfs', 'destroy', '-r', `${rep}/vms`]);
      await runOk(['zfs', 'create', `${rep}/vms`]);
      await runOk(['zfs', 'snapshot', `${rep}/vms@other`]);
      const stalled = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'default', '-o', 'json']);
      const sv = (JSON.parse(stalled.stdout) as PlanReport).vectors[0];
      expect([sv?.kind, sv?.blocked?.reason, sv?.steps]).toEqual(['refuse', 'NoCommonSnapshot', []]);
      const stalledText = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'default']);
      expect(stalledText.stdout).toContain('\n  stalled   NoCommonSnapshot: ');
      expect(stalledText.code).toBe(1);
    } finally {
      await client.custom.deleteNamespacedCustomObject({ group: VECTOR.group, version: VECTOR.version, plural: VECTOR.plural, namespace: 'default', name: 'offsite' });
      await runOk(['zfs', 'destroy', '-r', rep]);
    }
  }, 120_000);

  it('--kubeconfig: shows what the Machine refuses or pauses, with the reason, and plans nothing for them', async () => {
    const at = T0 + 10.5 * HOUR;
    const before = await state();
    const inventories = vi.spyOn(ZfsMachine.prototype, 'inventory');
    try {
      const r = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-o', 'json']);
      expect(r.code, r.stderr).toBe(1); // a Dataset its Machine refuses needs a fix
      const report = JSON.parse(r.stdout) as PlanReport;
      const m = ssh.name;
      expect(report.datasets.map((d) => [`${d.namespace}/${d.name}`, d.refused, d.machineSuspended, d.error])).toEqual([
        ['default/db', undefined, undefined, undefined],
        ['default/held', undefined, { reason: 'MachineSuspended', message: 'Machine paused is suspended (spec.suspend): nothing runs on it until it is resumed' }, undefined],
        [
          'default/mnt',
          { reason: 'MountpointNotAllowed', message: `spec.properties: mountpoint "/srv/mnt" is refused: Machine ${m} declares no spec.mountpointRoot, so a Dataset may only set mountpoint none or legacy` },
          undefined,
          undefined,
        ],
        ['default/share', { reason: 'PropertyNotAllowed', message: 'spec.properties: sharenfs: refused, it would export the dataset to the network' }, undefined, undefined],
        ['default/vms', undefined, undefined, undefined],
        [
          'team-b/vms',
          { reason: 'NamespaceNotAllowed', message: `Machine ${m} does not allow namespace team-b: spec.allowedNamespaces allows names [default]; its administrator adds the namespace to spec.allowedNamespaces` },
          undefined,
          undefined,
        ],
      ]);
      // Nothing planned for them: no snapshot to take, none to destroy or keep, no next run.
      for (const d of report.datasets.filter((x) => x.refused || x.machineSuspended)) {
        expect([d.take, d.next, d.destroy, d.keep, d.restorePoints], `${d.namespace}/${d.name}`).toEqual([undefined, undefined, [], [], undefined]);
      }
      // The same vms as default/vms is planned (10h due at 10:30), and only the SSH machine was inventoried: the
      // suspended one is not even asked.
      expect(report.datasets.find((d) => d.namespace === 'default' && d.name === 'vms')?.take?.snapshot).toBe(`${vms}@bdr-20260101T103000Z`);
      expect(inventories).toHaveBeenCalledTimes(1);

      const text = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'team-b']);
      expect(text.code).toBe(1);
      expect(text.stdout.split('\n').slice(2)).toEqual([
        `team-b/vms  ${vms} on Machine ${m}`,
        '  schedule  every 1h (epoch-aligned, UTC); policy team-b/short (keepLast 2, hourly 4)',
        `  refused   NamespaceNotAllowed: Machine ${m} does not allow namespace team-b: spec.allowedNamespaces allows names [default]; its administrator adds the namespace to spec.allowedNamespaces; the controller runs nothing for it (Stalled)`,
        '',
        '1 dataset(s): 0 snapshot(s) to take, 0 restore point(s) to destroy, 1 refused by their Machine',
        '',
      ]);
    } finally {
      inventories.mockRestore();
    }
    expect(await state()).toBe(before);
  });

  it('--repo: a suspended Machine, and a label selector on a Namespace declared beside (or not)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bdr-plan-tenancy-'));
    try {
      const local = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name }, spec: { connection: { type: 'local' }, pools: [pool.name], ...spec } });
      const docs = [
        local('paused', { allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }], suspend: true }),
        local('teams', { allowedNamespaces: { selector: { matchLabels: { team: 'blue' } } }, datasetRoots: [{ root: '{pool}', namespace: 'blue' }] }),
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'blue', labels: { team: 'blue' } } },
        policy,
        policyIn('blue'),
        policyIn('green'),
        dataset('held', vms, 'paused', '1h'),
        dataset('db', db, 'teams', '1d', 'blue'),
        // green is not declared here: bdr validate leaves the selector to the operator, plan can match only the name.
        dataset('other', `${pool.name}/other`, 'teams', '1d', 'green', { managementPolicy: 'Create' }),
      ];
      await writeFile(join(dir, 'bdr.yaml'), docs.map((d) => stringify(d)).join('---\n'));
      const r = await bdr(['plan', '--repo', dir, '--at', iso(T0 + 9.5 * HOUR)]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toBe('');
      expect(r.stdout.split('\n').slice(1)).toEqual([
        '',
        // Allowed by the selector through the declared Namespace's labels: planned (db keeps 5h and 0h).
        `blue/db  ${db} on Machine teams`,
        '  schedule  every 1d (epoch-aligned, UTC); policy blue/short (keepLast 2, hourly 4)',
        '  points    2 restore point(s) by bdr',
        '  next      bdr-20260102T000000Z at 2026-01-02T00:00:00Z (in 14h30m)',
        '  destroy   nothing',
        '  keep      2 (-v lists them with their reasons)',
        '',
        `default/held  ${vms} on Machine paused`,
        '  schedule  every 1h (epoch-aligned, UTC); policy default/short (keepLast 2, hourly 4)',
        '  suspended MachineSuspended: Machine paused is suspended (spec.suspend): nothing runs on it until it is resumed',
        '',
        `green/other  ${pool.name}/other on Machine teams`,
        '  schedule  every 1d (epoch-aligned, UTC); policy green/short (keepLast 2, hourly 4)',
        `  refused   NamespaceNotAllowed: Machine teams does not allow namespace green: spec.allowedNamespaces allows selector {team=blue}; its administrator adds the namespace to spec.allowedNamespaces (the labels of Namespace green are not known to the repository ${dir}, so only its name was matched; the operator matches the live Namespace's labels); the controller runs nothing for it (Stalled)`,
        '',
        '3 dataset(s): 0 snapshot(s) to take, 0 restore point(s) to destroy, 1 refused by their Machine, 1 on a suspended Machine',
        '',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('with --repo, an SSH Machine takes its key from a Secret document, and without one says which Secret is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bdr-plan-ssh-'));
    try {
      const { namespace: _ns, ...meta } = ssh.machine.metadata;
      const docs = [{ ...ssh.machine, metadata: meta, spec: { ...ssh.machine.spec, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } }, policy, dataset('vms', vms, ssh.name, '1h')];
      await writeFile(join(dir, 'bdr.yaml'), docs.map((d) => stringify(d)).join('---\n'));
      const missing = await bdr(['plan', '--repo', dir, '--at', iso(T0 + 9.5 * HOUR)]);
      expect(missing.code).toBe(1);
      expect(missing.stdout).toContain(`error     Machine ${ssh.name}: its private key Secret bdr-system/${ssh.name}-ssh is not in the repository ${dir}`);

      await writeFile(join(dir, 'secret.yaml'), stringify(ssh.secret));
      const r = await bdr(['plan', '--repo', dir, '--at', iso(T0 + 9.5 * HOUR), '-o', 'json']);
      expect(r.code, r.stderr).toBe(0);
      const [vmsPlan] = (JSON.parse(r.stdout) as PlanReport).datasets;
      expect(vmsPlan?.destroy.map((d) => d.snapshot)).toEqual([5, 4, 3, 1, 0].map((h) => `${vms}@${hour(h)}`));
      // The key never reaches the output.
      expect(r.stdout + r.stderr + missing.stdout + missing.stderr).not.toContain('PRIVATE KEY');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--repo: a Vector has no status there, so it is shown as pending and nothing is planned for it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bdr-plan-vec-'));
    try {
      const docs = [
        { apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'local' }, spec: { connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } },
        policy,
        { apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'store' }, spec: { role: 'Storage', connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } },
        dataset('db', db, 'local', '1d'),
        { apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name: 'offsite', namespace: 'default' }, spec: { source: { datasetRef: { name: 'db' } }, target: { machineRef: { name: 'store' }, dataset: `${pool.name}/rep` } } },
        // Chained to it: waits for it, as its controller would.
        { apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name: 'geo', namespace: 'default' }, spec: { source: { vectorRef: { name: 'offsite' } }, target: { machineRef: { name: 'store' }, dataset: `${pool.name}/geo` } } },
      ];
      await writeFile(join(dir, 'bdr.yaml'), docs.map((d) => stringify(d)).join('---\n'));
      const r = await bdr(['plan', '--repo', dir, '--at', iso(T0 + 10.5 * HOUR)]);
      expect(r.code, r.stderr).toBe(0);
      const blocks = r.stdout.split('\n\n').filter((b) => b.startsWith('Vector '));
      expect(blocks.map((b) => b.split('\n'))).toEqual([
        [
          'Vector default/geo  ? → ?',
          '  waiting   DependencyNotReady: source Vector default/offsite is not paired yet (a repository holds no status, use --kubeconfig): this one replicates its replica once it is',
        ],
        [
          `Vector default/offsite  ${db} on Machine local → ?`,
          '  pending   not paired yet (no status.pairing; a repository holds no status, use --kubeconfig): the operator pairs it with a storage machine first',
        ],
      ]);
      expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('2 vector(s): 0 send step(s), 0 replica snapshot(s) to prune');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("--kubeconfig: a chained Vector (A → B → C) plans from its source Vector's replica on B, sparse by its own policy, and waits until that Vector is paired", async () => {
    const at = T0 + 10.5 * HOUR;
    const client = new KubeClient(tc.kubeConfig);
    const VECTOR = resourceOf(vectorKind);
    const mirror = await bed.machine('plan-mirror');
    const onB = `${pool.name}/chain-b`;
    const onC = `${pool.name}/chain-c`;
    const { namespace: _ns, ...meta } = mirror.machine.metadata;
    tc.apply(mirror.secret);
    tc.apply({ ...mirror.machine, metadata: meta, spec: { ...mirror.machine.spec, role: 'Storage', pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'newest', namespace: 'default' }, spec: { keepLast: 1 } });
    // A: vms on plan-ssh. B: the upstream vector's replica, also on plan-ssh. C: the mirror's, on plan-mirror.
    const upstream = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'chain-up', namespace: 'default' },
      spec: { source: { datasetRef: { name: 'vms' } }, target: { machineRef: { name: ssh.name }, dataset: onB } },
    }) as unknown as Vector;
    const downstream = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'chain-mirror', namespace: 'default' },
      spec: { source: { vectorRef: { name: 'chain-up' } }, target: { machineRef: { name: mirror.name }, dataset: onC }, retentionPolicyRef: { name: 'newest' } },
    }) as unknown as Vector;
    await writeStatus(client, VECTOR, downstream, { pairing: { machine: mirror.name, dataset: onC } });
    const planOf = async () => {
      const r = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'default', '-o', 'json']);
      const text = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'default']);
      const block = text.stdout.split('\n\n').find((b) => b.startsWith('Vector default/chain-mirror')) ?? '';
      return { json: (JSON.parse(r.stdout) as PlanReport).vectors.find((v) => v.name === 'chain-mirror'), text: block.split('\n') };
    };
    try {
      // The upstream vector is not paired yet: the mirror waits, as its controller does (DependencyNotReady).
      let plan = await planOf();
      expect(plan.json).toEqual({
        namespace: 'default',
        name: 'chain-mirror',
        kind: 'wait',
        blocked: { reason: 'DependencyNotReady', message: 'source Vector default/chain-up is not paired yet: this one replicates its replica once it is' },
        steps: [],
        prunes: [],
        unmetCaps: [],
      });
      expect(plan.text).toEqual([
        'Vector default/chain-mirror  ? → ?',
        '  waiting   DependencyNotReady: source Vector default/chain-up is not paired yet: this one replicates its replica once it is',
      ]);

      // Paired, key authorized, nothing received yet: B and C have the replicas' parents only (made at pairing).
      await runOk(['zfs', 'create', '-o', 'canmount=off', onB]);
      await runOk(['zfs', 'create', '-o', 'canmount=off', onC]);
      await writeStatus(client, VECTOR, upstream, {
        pairing: { machine: ssh.name, dataset: onB },
        conditions: [{ type: 'KeyAuthorized', status: 'True', reason: 'Authorized', message: 'test', lastTransitionTime: iso(T0) }],
      });
      plan = await planOf();
      expect([plan.json?.kind, plan.json?.blocked, plan.json?.source, plan.json?.target]).toEqual([
        'wait',
        { reason: 'NoSourceSnapshot', message: `${onB}/vms on Machine ${ssh.name} has no restore point yet: it is the replica of Vector default/chain-up, whose first sync brings one` },
        { machine: ssh.name, dataset: `${onB}/vms`, vector: 'default/chain-up' },
        { machine: mirror.name, dataset: `${onC}/vms` },
      ]);

      // B holds 0h, 4h, 7h and 9h (received from A); C holds 0h and 4h (received from B). Same guids all along.
      await runOk(['sh', '-c', `zfs send ${vms}@${hour(0)} | zfs receive -u ${onB}/vms`]);
      for (const [from, to] of [[0, 4], [4, 7], [7, 9]]) await runOk(['sh', '-c', `zfs send -i ${vms}@${hour(from ?? 0)} ${vms}@${hour(to ?? 0)} | zfs receive -u ${onB}/vms`]);
      await runOk(['sh', '-c', `zfs send ${onB}/vms@${hour(0)} | zfs receive -u ${onC}/vms`]);
      await runOk(['sh', '-c', `zfs send -i ${onB}/vms@${hour(0)} ${onB}/vms@${hour(4)} | zfs receive -u ${onC}/vms`]);
      const before = await state();
      plan = await planOf();
      // The mirror's own policy (keepLast 1) over C after the sends (0h, 4h, 9h) keeps 9h only, B's newest (always
      // sent): one -i from the common base 4h straight to it, skipping 7h; 0h goes, 4h stays as that step's base.
      expect(plan.json).toEqual({
        namespace: 'default',
        name: 'chain-mirror',
        source: { machine: ssh.name, dataset: `${onB}/vms`, vector: 'default/chain-up' },
        target: { machine: mirror.name, dataset: `${onC}/vms` },
        kind: 'send',
        base: `${onB}/vms@${hour(4)}`,
        steps: [{ mode: 'i', from: `${onB}/vms@${hour(4)}`, to: `${onB}/vms@${hour(9)}`, points: 1, why: 'newest, keepLast', estimatedBytes: null }],
        prunes: [{ snapshot: `${onC}/vms@${hour(0)}`, reasons: ['expired'] }],
        unmetCaps: [],
      });
      expect(plan.text).toEqual([
        `Vector default/chain-mirror  ${onB}/vms on Machine ${ssh.name} (replica of Vector default/chain-up) → ${onC}/vms on Machine ${mirror.name}`,
        `  base      ${hour(4)}`,
        `  send      -i ${hour(4)} → ${hour(9)}  (1 point(s), ? bytes)  newest, keepLast`,
        `  prune     ${hour(0)}  expired`,
      ]);
      // The upstream vector itself plans from A as before (its replica on B is its target).
      const json = JSON.parse((await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(at), '-n', 'default', '-o', 'json'])).stdout) as PlanReport;
      const up = json.vectors.find((v) => v.name === 'chain-up');
      expect([up?.source, up?.target, up?.base]).toEqual([{ machine: ssh.name, dataset: vms }, { machine: ssh.name, dataset: `${onB}/vms` }, `${vms}@${hour(9)}`]);
      expect(await state()).toBe(before);
    } finally {
      for (const name of ['chain-mirror', 'chain-up']) await client.custom.deleteNamespacedCustomObject({ group: VECTOR.group, version: VECTOR.version, plural: VECTOR.plural, namespace: 'default', name });
      for (const d of [onC, onB]) await runOk(['zfs', 'destroy', '-r', d]).catch(() => undefined);
    }
  }, 120_000);

  it('--kubeconfig: a Vector whose paths the Machines do not grant, and one into a ReadOnly StorageTarget, are shown as the controller treats them', async () => {
    const client = new KubeClient(tc.kubeConfig);
    const VECTOR = resourceOf(vectorKind);
    // A storage machine (the same sshd) that grants default only its own root POOL/default, and a ReadOnly target on it.
    const { namespace: _ns, ...meta } = ssh.machine.metadata;
    tc.apply({ ...ssh.machine, metadata: { ...meta, name: 'narrow' }, spec: { ...ssh.machine.spec, role: 'Storage', pools: [pool.name], allowedNamespaces: { names: ['default'] } } });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'StorageTarget', metadata: { name: 'frozen' }, spec: { machines: [{ name: 'narrow' }], parentDataset: `${pool.name}/frozen`, accessMode: 'ReadOnly' } });
    // A status from before the grants (an upgraded operator): paired with a dataset outside them.
    const outside = tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name: 'outside', namespace: 'default' }, spec: { source: { datasetRef: { name: 'vms' } }, target: { machineRef: { name: 'narrow' }, dataset: `${pool.name}/elsewhere/x` } } }) as unknown as Vector;
    await writeStatus(client, VECTOR, outside, { pairing: { machine: 'narrow', dataset: `${pool.name}/elsewhere/x` } });
    const frozen = tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name: 'frozen', namespace: 'default' }, spec: { source: { datasetRef: { name: 'vms' } }, target: { storageTargetRef: { name: 'frozen' } } } }) as unknown as Vector;
    await writeStatus(client, VECTOR, frozen, { pairing: { machine: 'narrow', dataset: `${pool.name}/frozen/default/frozen` } });
    try {
      const r = await bdr(['plan', '--kubeconfig', tc.cluster.kubeconfigPath, '--at', iso(T0 + 10.5 * HOUR), '-n', 'default', '-o', 'json']);
      const vectors = (JSON.parse(r.stdout) as PlanReport).vectors;
      expect(vectors.find((v) => v.name === 'outside')?.error).toBe(
        `refused, DatasetNotGranted: ${pool.name}/elsewhere/x on Machine narrow: it is at or below ${pool.name}/elsewhere, the root {pool}/{namespace} grants to namespace elsewhere; the controller runs nothing for it (Stalled)`,
      );
      expect(vectors.find((v) => v.name === 'frozen')).toMatchObject({
        kind: 'wait',
        blocked: { reason: 'TargetReadOnly', message: 'StorageTarget frozen is ReadOnly (spec.accessMode): it keeps the replica but accepts no new stream' },
        steps: [],
      });
      expect(r.code).toBe(1);
    } finally {
      for (const name of ['outside', 'frozen']) await client.custom.deleteNamespacedCustomObject({ group: VECTOR.group, version: VECTOR.version, plural: VECTOR.plural, namespace: 'default', name });
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
