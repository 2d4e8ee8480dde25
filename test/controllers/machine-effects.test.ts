/**
 * Machine spec fields that act on the Datasets of the machine: `slots` bounds the ZFS work at once, and changes
 * with the Machine; `suspend` stops every Dataset on it and resuming starts them again. The operator runs with
 * an injected TaskRunner so that the test can watch the slots and what runs; the work itself is real (zfs-fuse).
 */
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineKind } from '../../api/kinds/index.ts';
import type { Machine } from '../../api/types.ts';
import { MachineConnections } from '../../controllers/machine-connections.ts';
import { MachineReconciler } from '../../controllers/machine-controller.ts';
import { systemClock } from '../../controllers/runtime/clock.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { datasetKind } from '../../api/kinds/index.ts';
import type { Dataset } from '../../api/types.ts';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { silentLogger } from '../../metrics/log.ts';
import { kubectlOk, requireKubectl } from '../cluster/helpers.ts';
import { runOk, TestBed, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

const DATASETS = resourceOf(datasetKind);

describe('Machine slots and suspend, through the operator on zfs-fuse', () => {
  const bed = new TestBed();
  let busyPool: TestPool;
  let pausedPool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let operator: Operator;
  const tasks = new TaskRunner();

  const machine = (name: string, pool: string, extra: object = {}) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name },
    spec: { connection: { type: 'local' }, pools: [pool], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }], ...extra },
  });
  const dataset = (name: string, machineName: string, zfsName: string, priority = 100) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name, namespace: 'default' },
    spec: { machineRef: { name: machineName }, name: zfsName, schedule: { interval: '1s' }, retentionPolicyRef: { name: 'one' }, managementPolicy: 'Create', priority },
  });
  const get = (name: string) => client.get<Dataset>(DATASETS, name, 'default');
  const newest = async (name: string) => (await get(name))?.status?.restorePoints?.newest?.name;
  const prunes = async (name: string) =>
    (await client.core.listNamespacedEvent({ namespace: 'default' })).items
      .filter((e) => e.involvedObject.name === name && e.reason === 'SnapshotsPruned')
      .reduce((n, e) => n + (e.count ?? 1), 0);
  const snapshotsOn = async (name: string) =>
    (await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-r', name])).trim().split('\n').filter(Boolean).sort();
  /** Waits until `name` has taken `n` more restore points (its newest changed n times): time passing, observed. */
  const restorePointsPass = async (name: string, n: number) => {
    let last = await newest(name);
    for (let i = 0; i < n; i++) {
      const seen = last;
      last = await eventually(async () => {
        const now = await newest(name);
        return now !== undefined && now !== seen ? now : undefined;
      }, `a new restore point of ${name}`, 60_000);
    }
  };
  const running = (m: string) => tasks.snapshot().running.filter((t) => t.machine === m);
  const queued = (m: string) => tasks.snapshot().queued.filter((t) => t.machine === m);

  beforeAll(async () => {
    requireKubectl();
    [busyPool, pausedPool] = await Promise.all([bed.pool(), bed.pool()]);
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    tc.apply(machine('busy', busyPool.name, { slots: { zfs: 1, transfer: 3 } }));
    tc.apply(machine('paused', pausedPool.name));
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'one', namespace: 'default' }, spec: { keepLast: 1 } });
    tc.apply(dataset('a1', 'busy', `${busyPool.name}/a1`, 300));
    tc.apply(dataset('a2', 'busy', `${busyPool.name}/a2`));
    tc.apply(dataset('p1', 'paused', `${pausedPool.name}/p1`));
    operator = await startOperator({ kubeConfig: tc.kubeConfig, leaderElection: false, metrics: false, probeIntervalMs: 1_000, log: silentLogger, tasks });
    await operator.ready;
  }, 120_000);

  afterAll(async () => {
    await operator?.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('runs one ZFS task at a time on a machine with slots {zfs: 1}, with two Datasets due together', async () => {
    await eventually(() => (tasks.slotsOf('busy').zfs === 1 ? true : undefined), 'the Machine slots in the task runner');
    expect(tasks.slotsOf('busy')).toEqual({ zfs: 1, transfer: 3 });
    // Both datasets are created, snapshotted each second in one command, and pruned each in its own task.
    await eventually(async () => ((await prunes('a1')) >= 3 && (await prunes('a2')) >= 3 ? true : undefined), 'both Datasets pruning', 90_000);
    expect(tasks.peakRunning('busy', 'zfs')).toBe(1);
  }, 120_000);

  it('holds waiting work while the single slot is taken, and starts it at once when the Machine raises slots', async () => {
    let release = () => {};
    const blocker = tasks.submit({ machine: 'busy', kind: 'zfs', action: 'other', priority: 1000, run: () => new Promise<void>((r) => (release = r)) });
    try {
      // Work of a1 (priority 300) waits behind the held slot, at a1's priority: the Dataset field reaches the queue.
      await eventually(
        () => {
          const now = running('busy');
          return now.length === 1 && now[0]?.id.includes('/other/') && queued('busy').some((t) => t.priority === 300) ? true : undefined;
        },
        'work of a1 waiting behind the held slot',
        60_000,
      );
      expect(running('busy')).toHaveLength(1);
      expect(queued('busy').every((t) => t.priority === 100 || t.priority === 300)).toBe(true);
      await kubectlOk(tc.cluster, ['patch', 'machine', 'busy', '--type', 'merge', '-p', '{"spec":{"slots":{"zfs":2}}}']);
      await eventually(() => (running('busy').length === 2 ? true : undefined), 'a second ZFS task beside the held one', 60_000);
      expect(tasks.slotsOf('busy').zfs).toBe(2);
    } finally {
      release();
      await blocker;
    }
  }, 120_000);

  it('stops snapshots of every Dataset on a suspended Machine within one reconcile, and resumes them', async () => {
    await eventually(async () => ((await newest('p1')) ? true : undefined), 'a first restore point of p1', 60_000);
    await kubectlOk(tc.cluster, ['patch', 'machine', 'paused', '--type', 'merge', '-p', '{"spec":{"suspend":true}}']);
    const suspended = await eventually(async () => {
      const c = (await get('p1'))?.status?.conditions?.find((x) => x.type === 'Suspended');
      return c?.status === 'True' ? c : undefined;
    }, 'p1 to report Suspended');
    expect(suspended.reason).toBe('MachineSuspended');
    const pausedMachine = await eventually(async () => {
      const m = await client.get<Machine>(resourceOf(machineKind), 'paused');
      return m?.status?.conditions?.some((c) => c.type === 'Suspended' && c.status === 'True') ? m : undefined;
    }, 'the Machine to report Suspended');
    expect(pausedMachine.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True'); // its last probe stands
    // A round that started before the change may still finish: let the other machine take one point first.
    await restorePointsPass('a1', 1);
    const frozen = await snapshotsOn(`${pausedPool.name}/p1`);
    await restorePointsPass('a1', 3);
    expect(await snapshotsOn(`${pausedPool.name}/p1`)).toEqual(frozen);
    expect((await get('p1'))?.status?.nextSnapshotTime).toBeUndefined();

    await kubectlOk(tc.cluster, ['patch', 'machine', 'paused', '--type', 'merge', '-p', '{"spec":{"suspend":false}}']);
    await eventually(async () => ((await snapshotsOn(`${pausedPool.name}/p1`)).some((s) => !frozen.includes(s)) ? true : undefined), 'a new restore point of p1', 60_000);
    await eventually(async () => ((await get('p1'))?.status?.conditions?.some((c) => c.type === 'Suspended') ? undefined : true), 'the Suspended condition to go');
    await eventually(
      async () => ((await client.get<Machine>(resourceOf(machineKind), 'paused'))?.status?.conditions?.some((c) => c.type === 'Suspended') ? undefined : true),
      'the Machine Suspended condition to go',
    );
  }, 180_000);

  it('probes a Machine again after its own spec.probeInterval', async () => {
    tc.apply(machine('interval', busyPool.name, { probeInterval: '7m' }));
    const machines = new Informer<Machine>(tc.kubeConfig, client, resourceOf(machineKind), silentLogger);
    await machines.start();
    const connections = new MachineConnections(client);
    try {
      await eventually(() => machines.get('interval'), 'the Machine in the cache');
      // No probeIntervalMs override here, unlike the operator of the other tests.
      const reconciler = new MachineReconciler({ client, machines, connections, events: new EventRecorder(client, 'bdr', 'default', silentLogger), clock: systemClock });
      const result = await reconciler.reconcile('interval', { key: 'interval', log: silentLogger, signal: new AbortController().signal });
      expect(result).toEqual({ requeueAfterMs: 7 * 60_000 });
    } finally {
      await machines.stop();
      await connections.closeAll();
    }
  });

  it('logs in as spec.connection.user: a user the host does not have is refused by sshd, by that name', async () => {
    const ssh = await bed.machine('someone');
    tc.apply(ssh.secret);
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Machine',
      metadata: { name: 'someone' },
      spec: { connection: { ...ssh.machine.spec.connection, user: 'bdrnosuchuser' } },
    });
    const ready = await eventually(async () => {
      const m = await client.get<Machine>(resourceOf(machineKind), 'someone');
      return m?.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'False' && c.reason === 'AuthenticationFailed');
    }, 'the Machine to be refused as bdrnosuchuser', 30_000);
    expect(ready.message).toContain('authorize the public key');
    // sshd saw the user bdr was told to use (as root, the same key is accepted: every other test here).
    expect(await readFile(ssh.sshd.logPath, 'utf8')).toMatch(/Invalid user bdrnosuchuser/);
  }, 60_000);

  it('gives up connecting after spec.connection.connectTimeout', async () => {
    // Accepts TCP and never says a word: only the timeout ends the attempt (the default would take 10 s per try).
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const ssh = await bed.machine('silent');
    try {
      tc.apply(ssh.secret);
      tc.apply({
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Machine',
        metadata: { name: 'silent' },
        spec: { connection: { ...ssh.machine.spec.connection, port: (silent.address() as AddressInfo).port, connectTimeout: '1s' } },
      });
      const reachable = await eventually(async () => {
        const m = await client.get<Machine>(resourceOf(machineKind), 'silent');
        return m?.status?.conditions?.find((c) => c.type === 'Reachable' && c.status === 'False');
      }, 'the silent Machine to be reported unreachable', 15_000);
      expect(reachable.reason).toBe('ConnectFailed');
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  }, 60_000);
});
