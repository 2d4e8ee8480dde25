/**
 * `bdr restore` on real parts: a mounted zfs-fuse pool whose dataset holds a different file content at each
 * restore point, a local Machine in a repository of manifests and an SSH Machine (real sshd) in an embedded
 * cluster. The clone must hold the chosen point's data; every refusal must exit non-zero with its reason.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { vectorKind } from '../../api/kinds/index.ts';
import type { Vector } from '../../api/types.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { writeStatus } from '../../controllers/runtime/status.ts';
import { snapshotShortName } from '../../planning/dataset-plan.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { startTestCluster, type TestCluster } from '../controllers/cluster-fixture.ts';
import { runBdr, runBdrInProcess } from '../helpers/run-bdr.ts';
import { TestBed, runOk, type TestMachine, type TestPool } from '../testbed/index.ts';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const point = (h: number) => snapshotShortName(T0 + h * HOUR);

const bdr = runBdrInProcess;

describe('bdr restore', () => {
  const bed = new TestBed();
  let pool: TestPool;
  let ssh: TestMachine;
  let tc: TestCluster;
  let repo: string;
  let data: string;
  const dataset = (machine: string, zfsName: string) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name: 'data', namespace: 'default' },
    spec: { machineRef: { name: machine }, name: zfsName, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'short' } },
  });
  const policy = { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'short', namespace: 'default' }, spec: { keepLast: 5 } };
  const get = async (prop: string, name: string) => (await runOk(['zfs', 'get', '-H', '-o', 'value', prop, name])).trim();
  /** The content of `file` in a dataset, mounting it first if zfs-fuse has not. */
  const fileIn = async (name: string) => {
    if ((await get('mounted', name)) !== 'yes') await runOk(['zfs', 'mount', name]);
    return readFile(join(await get('mountpoint', name), 'file'), 'utf8');
  };

  beforeAll(async () => {
    [pool, ssh, tc] = await Promise.all([bed.pool({ mounted: true }), bed.machine('restore-ssh'), startTestCluster()]);
    data = `${pool.name}/data`;
    await runOk(['zfs', 'create', data]);
    // Restore points at 1h, 2h, 3h, each after writing "v<h>": the clone of a point must read that version.
    for (const h of [1, 2, 3]) {
      await writeFile(join(await get('mountpoint', data), 'file'), `v${h}\n`);
      await runOk(['sync']);
      await runOk(['zfs', 'snapshot', '-o', 'dev.bdr:owner=bdr', `${data}@${point(h)}`]);
    }
    // A child with its own snapshots: a restore of data must never list them.
    await runOk(['zfs', 'create', `${data}/child`]);
    for (const h of [1, 2]) await runOk(['zfs', 'snapshot', `${data}/child@${point(h)}`]);

    repo = await mkdtemp(join(tmpdir(), 'bdr-restore-'));
    const docs = [
      // Two namespaces share the machine: default holds data and restore, every other namespace POOL/NAMESPACE.
      {
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Machine',
        metadata: { name: 'local' },
        spec: {
          connection: { type: 'local' },
          pools: [pool.name],
          allowedNamespaces: { names: ['default', 'other'] },
          datasetRoots: [{ root: '{pool}/{namespace}' }, { root: data, namespace: 'default' }, { root: `${pool.name}/restore`, namespace: 'default' }],
        },
      },
      policy,
      dataset('local', data),
    ];
    await writeFile(join(repo, 'bdr.yaml'), docs.map((d) => stringify(d)).join('---\n'));

    const { namespace: _ns, ...meta } = ssh.machine.metadata;
    tc.apply(ssh.secret);
    tc.apply({ ...ssh.machine, metadata: meta, spec: { ...ssh.machine.spec, pools: [pool.name], datasetRoots: [{ root: '{pool}', namespace: 'default' }] } });
    tc.apply(policy);
    tc.apply(dataset(ssh.name, data));
  });

  afterAll(async () => {
    await tc?.stop();
    if (repo) await rm(repo, { recursive: true, force: true });
    await bed.cleanup();
  });

  it('--at clones the newest restore point at or before the time, says which, with the data of that point', async () => {
    const target = `${pool.name}/restore/at`;
    const r = await runBdr(['restore', 'default/data', '--at', iso(T0 + 2.5 * HOUR), '--to', target, '--repo', repo]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`restore point ${data}@${point(2)} (${iso(T0 + 2 * HOUR)}, taken by bdr, the newest of 3 restore point(s) at or before ${iso(T0 + 2.5 * HOUR)})`);
    expect(r.stdout).toContain(`cloned into ${target} on Machine local: writable`);
    expect(await get('origin', target)).toBe(`${data}@${point(2)}`);
    expect(await get('readonly', target)).toBe('off');
    expect(await fileIn(target)).toBe('v2\n');
  });

  it('--snapshot needs no listing; --at lists only this dataset, once', async () => {
    const run = vi.spyOn(ZfsMachine.prototype, 'run');
    try {
      const target = `${pool.name}/restore/snap`;
      const r = await bdr(['restore', 'default/data', '--snapshot', point(1), '--to', target, '--repo', repo, '-o', 'json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ snapshot: `${data}@${point(1)}`, createdAt: iso(T0 + HOUR), ownedByBdr: true, target });
      expect(await fileIn(target)).toBe('v1\n');
      const argvs = run.mock.calls.map(([argv]) => argv.join(' '));
      expect(argvs.filter((a) => / -[rd] /.test(a))).toEqual([]);
      expect(argvs.some((a) => a.includes(`clone -p ${data}@${point(1)} ${target}`))).toBe(true);

      run.mockClear();
      const at = await bdr(['restore', 'default/data', '--at', iso(T0 + 10 * HOUR), '--to', `${pool.name}/restore/latest`, '--repo', repo]);
      expect(at.code, at.stderr).toBe(0);
      expect(at.stdout).toContain(`restore point ${data}@${point(3)} `);
      const listings = run.mock.calls.filter(([argv]) => argv.includes('-d') || argv.includes('-r'));
      expect(listings.map(([argv]) => argv.join(' '))).toEqual([expect.stringMatching(new RegExp(` -d 1 .* ${data}$`))]);
      const listed = await (run.mock.results[run.mock.calls.indexOf(listings[0] as never)]?.value as Promise<{ stdout: string }>);
      expect(listed.stdout).not.toContain(`${data}/child@`);
    } finally {
      run.mockRestore();
    }
  });

  it('restores through an SSH Machine read from the cluster (--kubeconfig)', async () => {
    const target = `${pool.name}/restore/ssh/deep`;
    const r = await bdr(['restore', 'default/data', '--snapshot', `${data}@${point(3)}`, '--to', target, '--kubeconfig', tc.cluster.kubeconfigPath]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`cloned into ${target} on Machine ${ssh.name}`);
    expect(await get('origin', target)).toBe(`${data}@${point(3)}`);
    expect(await fileIn(target)).toBe('v3\n');
  });

  it("--replica clones a Vector's replica on its paired storage machine, writable, mounted only where asked and allowed", async () => {
    const rep = `${pool.name}/rep`;
    const replica = `${rep}/data`;
    // The replica as two syncs leave it (1h full, then -i 1h 2h), with the properties the controller enforces.
    await runOk(['zfs', 'create', '-o', 'mountpoint=none', rep]);
    await runOk(['sh', '-c', `zfs send ${data}@${point(1)} | zfs receive -u ${replica}`]);
    await runOk(['sh', '-c', `zfs send -i ${data}@${point(1)} ${data}@${point(2)} | zfs receive -u ${replica}`]);
    for (const p of ['readonly=on', 'canmount=noauto', 'mountpoint=none']) await runOk(['zfs', 'set', p, replica]);
    const root = await mkdtemp(join(tmpdir(), 'bdr-restore-mnt-'));
    const { namespace: _ns, ...meta } = ssh.machine.metadata;
    // The same storage machine declared a second time, with a mountpointRoot: where a clone may be mounted.
    tc.apply({ ...ssh.machine, metadata: { ...meta, name: 'store-root' }, spec: { ...ssh.machine.spec, pools: [pool.name], mountpointRoot: root, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } });
    const client = new KubeClient(tc.kubeConfig);
    const vector = (name: string, machine: string) => {
      const applied = tc.apply({
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Vector',
        metadata: { name, namespace: 'default' },
        spec: { source: { datasetRef: { name: 'data' } }, target: { machineRef: { name: machine }, dataset: rep } },
      }) as unknown as Vector;
      return writeStatus(client, resourceOf(vectorKind), applied, { pairing: { machine, dataset: rep } });
    };
    await vector('offsite', ssh.name);
    await vector('offsite-root', 'store-root');
    try {
      const target = `${pool.name}/restore/replica`;
      const r = await bdr(['restore', 'default/offsite', '--replica', '--at', iso(T0 + 2.5 * HOUR), '--to', target, '--kubeconfig', tc.cluster.kubeconfigPath]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`restore point ${replica}@${point(2)} (${iso(T0 + 2 * HOUR)}`);
      expect(r.stdout).toContain(`cloned replica ${replica} into ${target} on Machine ${ssh.name}: writable, not mounted (mountpoint=none)`);
      expect(await get('origin', target)).toBe(`${replica}@${point(2)}`);
      expect([await get('readonly', target), await get('canmount', target), await get('mountpoint', target)]).toEqual(['off', 'on', 'none']);
      // The content came from the primary: nothing in it runs, set-uid or not, and no device node opens.
      expect([await get('setuid', target), await get('exec', target), await get('devices', target)]).toEqual(['off', 'off', 'off']);
      const trusted = `${pool.name}/restore/trusted`;
      const t = await bdr(['restore', 'default/offsite', '--replica', '--snapshot', point(1), '--to', trusted, '--trusted', '--kubeconfig', tc.cluster.kubeconfigPath]);
      expect(t.code, t.stderr).toBe(0);
      expect([await get('setuid', trusted), await get('exec', trusted), await get('devices', trusted)]).toEqual(['on', 'on', 'on']);
      await runOk(['zfs', 'destroy', trusted]);

      // A mountpoint needs the storage Machine's mountpointRoot; below it, the clone is mounted there with 2h's data.
      const refused = await bdr(['restore', 'default/offsite', '--replica', '--snapshot', point(1), '--to', `${pool.name}/restore/r2`, '--mountpoint', '/srv/x', '--kubeconfig', tc.cluster.kubeconfigPath]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`--mountpoint: mountpoint "/srv/x" is refused: Machine ${ssh.name} declares no spec.mountpointRoot`);
      const mounted = `${pool.name}/restore/r3`;
      const ok = await bdr(['restore', 'default/offsite-root', '--replica', '--snapshot', point(1), '--to', mounted, '--mountpoint', `${root}/web`, '--kubeconfig', tc.cluster.kubeconfigPath, '-o', 'json']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ vector: 'default/offsite-root', replica, machine: 'store-root', snapshot: `${replica}@${point(1)}`, target: mounted, mountpoint: `${root}/web` });
      expect(await get('readonly', mounted)).toBe('off');
      expect(await fileIn(mounted)).toBe('v1\n');
      await writeFile(join(root, 'web', 'written'), 'yes\n');

      // A repository holds no status: nothing is paired there.
      const fromRepo = await bdr(['restore', 'default/data', '--replica', '--at', '-1h', '--to', `${pool.name}/restore/n`, '--repo', repo]);
      expect(fromRepo.code).toBe(1);
      expect(fromRepo.stderr).toContain('Vector default/data is not declared in the repository');
    } finally {
      // -f unmounts a clone zfs-fuse still finds busy; -R takes any clone left with the replica, so a failed
      // cleanup never hides the test's own result.
      await runOk(['zfs', 'destroy', '-f', '-r', `${pool.name}/restore/replica`]).catch(() => undefined);
      await runOk(['zfs', 'destroy', '-f', '-r', `${pool.name}/restore/r3`]).catch(() => undefined);
      await runOk(['zfs', 'destroy', '-f', '-R', rep]);
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);

  it('refuses, with a one-line reason and a non-zero exit, what it must not do', async () => {
    const existing = `${pool.name}/restore/exists`;
    await runOk(['zfs', 'create', '-p', existing]);
    const before = await runOk(['zfs', 'list', '-H', '-t', 'all', '-r', '-o', 'name', pool.name]);
    const cases: Array<[string[], number, string]> = [
      [['--at', iso(T0 + 3 * HOUR), '--to', existing], 1, `--to ${existing} already exists; bdr restore never overwrites`],
      [['--at', iso(T0 + 3 * HOUR), '--to', 'otherpool/restore'], 1, `--to otherpool/restore is in pool otherpool, but ${data} is in pool ${pool.name}: a clone stays in its snapshot's pool; choose a target under ${pool.name}/`],
      [['--at', iso(T0 + 3 * HOUR), '--to', `${pool.name}/../etc`], 1, `--to "${pool.name}/../etc": must not contain ".."`],
      [['--at', iso(T0 + 3 * HOUR), '--to', `-o${pool.name}/x`], 1, 'no component may start with "-"'],
      [['--snapshot', 'bdr x', '--to', `${pool.name}/restore/n`], 1, '--snapshot "bdr x": may contain only'],
      [['--snapshot', 'bdr-20990101T000000Z', '--to', `${pool.name}/restore/n`], 1, `restore point ${data}@bdr-20990101T000000Z does not exist on Machine local`],
      [['--at', iso(T0), '--to', `${pool.name}/restore/n`], 1, `${data} has no restore point at or before ${iso(T0)}; the oldest is ${data}@${point(1)}`],
      [['--at', iso(T0), '--snapshot', point(1), '--to', `${pool.name}/restore/n`], 2, 'give exactly one of --at TIME or --snapshot NAME'],
      [['--to', `${pool.name}/restore/n`], 2, 'give exactly one of --at TIME or --snapshot NAME'],
      [['--at', 'yesterday', '--to', `${pool.name}/restore/n`], 2, '--at "yesterday" is not a time'],
      // Into another namespace's root, or above everyone's: not the namespace's to name.
      [['--at', iso(T0 + 3 * HOUR), '--to', `${pool.name}/other/x`], 1, `--to: ${pool.name}/other/x on Machine local: it is at or below ${pool.name}/other, the root {pool}/{namespace} grants to namespace other`],
      [['--at', iso(T0 + 3 * HOUR), '--to', `${pool.name}/x`], 1, `--to: ${pool.name}/x on Machine local: it is at or below ${pool.name}/x, the root {pool}/{namespace} grants to namespace x`],
    ];
    for (const [args, code, message] of cases) {
      const r = await bdr(['restore', 'default/data', ...args, '--repo', repo]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      const lines = r.stderr.trim().split('\n');
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0], args.join(' ')).toContain(message);
    }
    const missing = await bdr(['restore', 'default/nope', '--at', '-1h', '--to', `${pool.name}/restore/n`, '--repo', repo]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('Dataset default/nope is not declared in the repository');
    expect(await runOk(['zfs', 'list', '-H', '-t', 'all', '-r', '-o', 'name', pool.name])).toBe(before);
  });
});
