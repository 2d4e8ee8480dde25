/**
 * The setting the Vector controller's integration tests share: an embedded cluster, machines A (Source), B and C
 * (Storage), each a real sshd on this host, two zfs-fuse pools (source, replicas), the informers, and the real
 * Vector, StorageTarget and sweep reconcilers, driven by the test (no Machine controller runs: Machine status is
 * written by the test, see `setPool`). Vector keys are used by the real OpenSSH client with the files the
 * controller wrote on A.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { datasetKind, machineKind, storageTargetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Dataset, Machine, StorageTarget, Vector } from '../../api/types.ts';
import { InventoryCache } from '../../controllers/inventory-cache.ts';
import { MachineConnections } from '../../controllers/machine-connections.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf, type KubeObject } from '../../controllers/runtime/kube.ts';
import { StorageTargetReconciler } from '../../controllers/storage-target-controller.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { VectorReconciler } from '../../controllers/vector-controller.ts';
import { VectorKeyStore } from '../../controllers/vector-keys.ts';
import { VectorSweepReconciler } from '../../controllers/vector-sweep.ts';
import { silentLogger } from '../../metrics/log.ts';
import { run, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';

export const GiB = 2 ** 30;
const abort = new AbortController();
export const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });

export interface VectorBed {
  bed: TestBed;
  a: TestMachine;
  b: TestMachine;
  c: TestMachine;
  sourcePool: TestPool;
  replicaPool: TestPool;
  tc: TestCluster;
  client: KubeClient;
  clock: FakeClock;
  vectors: Informer<Vector>;
  machines: Informer<Machine>;
  targets: Informer<StorageTarget>;
  reconciler: VectorReconciler;
  targetReconciler: StorageTargetReconciler;
  sweep: VectorSweepReconciler;
  stop(): Promise<void>;
}

export const guardOf = (m: TestMachine) => join(m.sshd.dir, 'bin', 'zfs-guard');

export function machineObject(m: TestMachine, role: 'Source' | 'Storage', extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name: m.name },
    spec: {
      role,
      connection: { ...m.machine.spec.connection, privateKeySecretRef: { name: m.secret.metadata.name, namespace: 'bdr-system' } },
      paths: { authorizedKeys: m.sshd.authorizedKeysPath, guard: guardOf(m), vectorKeys: join(m.sshd.dir, 'vectors') },
      allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }],
      ...extra,
    },
  };
}

/** The informers the Vector controller reads, started; added to `into` first, so stopping `into` stops them after a failed start. */
export async function startVectorInformers(tc: TestCluster, client: KubeClient, into: Array<{ start(): Promise<void>; stop(): Promise<void> }>) {
  const vectors = new Informer<Vector>(tc.kubeConfig, client, resourceOf(vectorKind), silentLogger);
  const machines = new Informer<Machine>(tc.kubeConfig, client, resourceOf(machineKind), silentLogger);
  const datasets = new Informer<Dataset>(tc.kubeConfig, client, resourceOf(datasetKind), silentLogger);
  const targets = new Informer<StorageTarget>(tc.kubeConfig, client, resourceOf(storageTargetKind), silentLogger);
  into.push(vectors, machines, datasets, targets);
  await Promise.all([vectors, machines, datasets, targets].map((i) => i.start()));
  return { vectors, machines, datasets, targets };
}

/** The Vector and sweep reconcilers (no sync) over those informers, with the parts they share. */
export function startVectorOperator(deps: {
  client: KubeClient;
  vectors: Informer<Vector>;
  datasets: Informer<Dataset>;
  machines: Informer<Machine>;
  targets: Informer<StorageTarget>;
  clock: FakeClock;
}) {
  const { client, vectors, datasets, machines, targets, clock } = deps;
  const connections = new MachineConnections(client);
  const keys = new VectorKeyStore(client, 'bdr-system', clock);
  const events = new EventRecorder(client, 'bdr', 'default', silentLogger, clock);
  const tasks = new TaskRunner(clock);
  const reconciler = new VectorReconciler({ client, vectors, datasets, machines, storageTargets: targets, connections, keys, events, clock, tasks });
  const sweep = new VectorSweepReconciler({ machines, vectors, connections, keys, events, clock, appliedOf: (v) => reconciler.appliedOf(v), isBusy: (k) => reconciler.isBusy(k) });
  return { connections, keys, events, tasks, reconciler, sweep };
}

export async function startVectorBed(): Promise<VectorBed> {
  const bed = new TestBed();
  const [a, b, c, sourcePool, replicaPool] = await Promise.all([bed.machine('a'), bed.machine('b'), bed.machine('c'), bed.pool(), bed.pool()]);
  const tc = await startTestCluster();
  const client = new KubeClient(tc.kubeConfig);
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  for (const m of [a, b, c]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
  tc.apply(machineObject(a, 'Source'));
  tc.apply(machineObject(b, 'Storage'));
  tc.apply(machineObject(c, 'Storage'));
  tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: 'default' }, spec: { keepLast: 1 } });
  tc.apply({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name: 'src', namespace: 'default' },
    spec: { machineRef: { name: 'a' }, name: `${sourcePool.name}/data`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' } },
  });
  const informers: Array<{ start(): Promise<void>; stop(): Promise<void> }> = [];
  const { vectors, machines, datasets, targets } = await startVectorInformers(tc, client, informers);
  await eventually(() => (machines.list().length === 3 && datasets.get('default/src') ? true : undefined), 'the cache');
  const { connections, events, tasks, reconciler, sweep } = startVectorOperator({ client, vectors, datasets, machines, targets, clock });
  const targetReconciler = new StorageTargetReconciler({ client, targets, machines, vectors, connections, inventories: new InventoryCache(2_000, clock), tasks, events, clock });
  return {
    bed, a, b, c, sourcePool, replicaPool, tc, client, clock, vectors, machines, targets, reconciler, targetReconciler, sweep,
    stop: async () => {
      for (const i of informers) await i.stop();
      await connections.closeAll();
      await tc.stop();
      await bed.cleanup();
    },
  };
}

/** Waits until the informer holds the object as applied. */
export const inCache = async <T extends KubeObject>(informer: Informer<T>, key: string, applied: { metadata: { resourceVersion?: string } }) =>
  eventually(() => (informer.get(key)?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), `${key} in the cache`);

/**
 * Writes a Machine's probe result (Ready, and one pool's figures) through the status subresource, as the
 * Machine controller would. Used because every machine on this host sees the one zfs-fuse daemon's pools:
 * B and C would report identical figures (see the capacity test for why no real mechanism separates them).
 */
export async function setPool(t: VectorBed, name: string, pool: string, sizeBytes: number, allocatedBytes: number): Promise<void> {
  const m = await t.client.get<Machine>(resourceOf(machineKind), name);
  const written = await t.client.patchStatus(resourceOf(machineKind), m ?? { metadata: { name } }, {
    conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message: 'simulated probe', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    pools: [{ name: pool, health: 'ONLINE', sizeBytes, allocatedBytes, freeBytes: sizeBytes - allocatedBytes }],
  });
  await inCache(t.machines, name, written as { metadata: { resourceVersion?: string } });
}

export async function applyVector(t: Pick<VectorBed, 'tc' | 'vectors'>, name: string, spec: object): Promise<void> {
  const applied = t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name, namespace: 'default' }, spec });
  await inCache(t.vectors, `default/${name}`, applied);
}

/** Reconciles until the vector in the cache satisfies `done` (each reconcile acts on the cache as it is). */
export const reconcileUntil = (t: Pick<VectorBed, 'reconciler' | 'vectors'>, name: string, done: (v: Vector) => boolean, what: string) =>
  eventually(async () => {
    let failure: unknown;
    await t.reconciler.reconcile(`default/${name}`, ctx(`default/${name}`)).catch((e: unknown) => {
      failure = e;
    });
    const v = t.vectors.get(`default/${name}`);
    if (v && done(v)) return v;
    if (failure) throw failure;
    return undefined;
  }, what, 60_000, 200);

export const condition = (v: Vector | StorageTarget | undefined, type: string) => v?.status?.conditions?.find((x) => x.type === type);

/** `ssh`'s options with the vector's files on the primary, as the primary would use them. */
export const sshOptions = (m: TestMachine, identity: string, knownHosts: string) => [
  '-i', identity,
  '-o', `UserKnownHostsFile=${knownHosts}`,
  '-o', 'StrictHostKeyChecking=yes',
  '-o', 'IdentitiesOnly=yes',
  '-o', 'BatchMode=yes',
  '-o', 'ConnectTimeout=10',
  '-p', String(m.sshd.port),
  `root@${m.sshd.host}`,
];

/** `ssh` with the vector's files on the primary, as the primary would run it. */
export const sshAs = (m: TestMachine, identity: string, knownHosts: string, command: string) => run(['ssh', ...sshOptions(m, identity, knownHosts), command]);

/** The vector's key files on primary A. */
export const keyFiles = (t: VectorBed, name: string) => {
  const dir = join(t.a.sshd.dir, 'vectors', 'default', name);
  return { id: join(dir, 'id'), knownHosts: join(dir, 'known_hosts') };
};

export const vectorLines = async (m: TestMachine, vectorKey: string) =>
  (await readFile(m.sshd.authorizedKeysPath, 'utf8')).split('\n').filter((l) => l.endsWith(`=${vectorKey}`));

export const eventsOf = async (t: Pick<VectorBed, 'client'>, name: string, reason: string) =>
  (await t.client.core.listNamespacedEvent({ namespace: 'default' })).items.filter((e) => e.involvedObject.name === name && e.reason === reason);
