/**
 * Records the StorageTarget and Vector Argo CD fixtures from real reconciles: the Machine, StorageTarget, Dataset
 * and Vector controllers against the embedded API server, zfs-fuse pools and test sshd machines (the setups of
 * test/controllers/storage-target.test.ts and vector-sync.test.ts; the Vector part runs a real sync through the
 * guard). Run as root: `npx tsx test/argocd/record-fixtures.ts [name …]`. Writes test/fixtures/argocd/
 * storagetarget-*.json and vector-*.json, or only the named ones (e.g. `vector-transferring`): the whole scenario
 * runs either way, each case needing the ones before it, but the other files keep their recordings. uid,
 * resourceVersion, timestamps of metadata and managedFields are left out, as in the other recordings. The Vector
 * part runs on a fake clock from 2026-12-01T09:00:00Z, so its times are the same on every run; pool names (bdrt…)
 * and key fingerprints are not.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { datasetKind, machineKind, retentionPolicyKind, storageTargetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, StorageTarget, Vector } from '../../api/types.ts';
import { DatasetReconciler } from '../../controllers/dataset-controller.ts';
import { InventoryCache } from '../../controllers/inventory-cache.ts';
import { MachineConnections } from '../../controllers/machine-connections.ts';
import { MachineReconciler } from '../../controllers/machine-controller.ts';
import { systemClock, type Clock } from '../../controllers/runtime/clock.ts';
import { findCondition } from '../../controllers/runtime/conditions.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf, type KubeObject } from '../../controllers/runtime/kube.ts';
import { StorageTargetReconciler } from '../../controllers/storage-target-controller.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { VectorReconciler } from '../../controllers/vector-controller.ts';
import { VectorKeyStore } from '../../controllers/vector-keys.ts';
import { VectorSync } from '../../controllers/vector-sync.ts';
import { silentLogger } from '../../metrics/log.ts';
import { eventually, startTestCluster, type TestCluster } from '../controllers/cluster-fixture.ts';
import { FakeClock } from '../controllers/fake-clock.ts';
import { REPO_ROOT } from '../helpers/run-bdr.ts';
import { run, runOk, TestBed, type TestMachine } from '../testbed/index.ts';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/argocd');
/** The fixtures to write (file names without .json); none named: all. */
const only = new Set(process.argv.slice(2));
const HOUR = 3_600_000;
const abort = new AbortController();
const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });

/** The object as the API server returns it, without the fields that change on every run. */
function recorded(obj: KubeObject & { spec?: unknown; status?: unknown }): unknown {
  const { name, namespace, generation } = obj.metadata as { name: string; namespace?: string; generation?: number };
  return { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name, ...(namespace ? { namespace } : {}), generation }, spec: obj.spec, status: obj.status };
}

function write(file: string, obj: (KubeObject & { status?: { conditions?: unknown } }) | undefined): void {
  if (!obj?.status) throw new Error(`${file}: the object has no status`);
  if (only.size > 0 && !only.has(file)) {
    process.stdout.write(`${file}: not written (not named)\n`);
    return;
  }
  writeFileSync(join(FIXTURES, `${file}.json`), `${JSON.stringify(recorded(obj), null, 2)}\n`);
  process.stdout.write(`${file}: ${JSON.stringify(obj.status.conditions)}\n`);
}

/** A Machine of the test bed as the controllers need it: its key Secret, and every path below its sshd directory. */
function machineObject(m: TestMachine, role: 'Source' | 'Storage', pools: string[]) {
  return {
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name: m.name },
    spec: {
      role,
      connection: { ...m.machine.spec.connection, privateKeySecretRef: { name: m.secret.metadata.name, namespace: 'bdr-system' } },
      pools,
      paths: { authorizedKeys: m.sshd.authorizedKeysPath, guard: join(m.sshd.dir, 'bin', 'zfs-guard'), vectorKeys: join(m.sshd.dir, 'vectors') },
      allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }],
    },
  };
}

interface Controllers {
  client: KubeClient;
  machines: Informer<Machine>;
  targets: Informer<StorageTarget>;
  vectors: Informer<Vector>;
  datasets: Informer<Dataset>;
  policies: Informer<RetentionPolicy>;
  connections: MachineConnections;
}

async function probeMachine(c: Controllers, clock: Clock, name: string): Promise<void> {
  const probe = new MachineReconciler({ client: c.client, machines: c.machines, connections: c.connections, events: new EventRecorder(c.client, 'bdr', 'default', silentLogger, clock), clock });
  await eventually(() => c.machines.get(name), `Machine ${name} in the cache`);
  await probe.reconcile(name, ctx(name));
  await eventually(() => (c.machines.get(name)?.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ? true : undefined), `${name} Ready in the cache`);
}

/** Applies an object and waits until the informer holds that version, so the next reconcile acts on it. */
async function applied<T extends KubeObject>(tc: TestCluster, informer: Informer<T>, obj: object): Promise<void> {
  const o = tc.apply(obj);
  const name = o.metadata.name ?? '';
  const key = o.metadata.namespace ? `${o.metadata.namespace}/${name}` : name;
  await eventually(() => (informer.get(key)?.metadata.resourceVersion === o.metadata.resourceVersion ? true : undefined), `${key} in the cache`);
}

async function recordStorageTargets(tc: TestCluster, bed: TestBed, c: Controllers): Promise<void> {
  const pool = await bed.pool({ sizeMb: 256, mounted: true });
  const vault = await bed.machine('vault01');
  tc.apply(vault.secret);
  tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'vault01' }, spec: { connection: vault.machine.spec.connection, role: 'Storage', pools: [pool.name] } });
  // cold01: a storage machine whose sshd does not answer (nothing listens on port 1): never Ready.
  tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'cold01' }, spec: { connection: { ...vault.machine.spec.connection, port: 1, connectTimeout: '2s' }, role: 'Storage', pools: [pool.name] } });
  const clock = systemClock;
  const events = new EventRecorder(c.client, 'bdr', 'default', silentLogger);
  const reconciler = new StorageTargetReconciler({ client: c.client, targets: c.targets, machines: c.machines, vectors: c.vectors, connections: c.connections, inventories: new InventoryCache(-1, clock), tasks: new TaskRunner(clock), events, clock });
  await probeMachine(c, clock, 'vault01');
  const cold = new MachineReconciler({ client: c.client, machines: c.machines, connections: c.connections, events, clock });
  await eventually(() => c.machines.get('cold01'), 'Machine cold01 in the cache');
  await cold.reconcile('cold01', ctx('cold01')).catch(() => undefined);
  await eventually(() => (c.machines.get('cold01')?.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'False') ? true : undefined), 'cold01 not Ready in the cache');

  // A CapacityOK=False case is not recorded yet: a fresh 256 MB zfs-fuse pool stays below 1% allocated, so it
  // needs data written into the pool first.
  const cases: Array<[file: string, name: string, machine: string, suspend: boolean]> = [
    ['storagetarget-offsite', 'offsite', 'vault01', false],
    ['storagetarget-unreachable', 'coldstore', 'cold01', false],
    ['storagetarget-suspended', 'paused', 'vault01', true],
  ];
  for (const [file, name, machine, suspend] of cases) {
    await applied(tc, c.targets, {
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'StorageTarget',
      metadata: { name },
      spec: { machines: [{ name: machine }], parentDataset: `${pool.name}/replicas/${name}`, capacity: { warningPercent: 80, criticalPercent: 95 }, suspend },
    });
    await reconciler.reconcile(name, ctx(name));
    write(file, await c.client.get<StorageTarget>(resourceOf(storageTargetKind), name));
  }
}

/**
 * A (Source) takes hourly restore points of `web`; B (Storage) receives the Vectors' replicas through the guard,
 * each reconcile run as the operator runs it.
 */
async function recordVectors(tc: TestCluster, bed: TestBed, c: Controllers): Promise<void> {
  const [a, b, sourcePool, replicaPool] = await Promise.all([bed.machine('src01'), bed.machine('vault02'), bed.pool({ mounted: true }), bed.pool()]);
  const clock = new FakeClock(Date.UTC(2026, 11, 1, 9, 0, 0));
  for (const m of [a, b]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
  tc.apply(machineObject(a, 'Source', [sourcePool.name]));
  tc.apply(machineObject(b, 'Storage', [replicaPool.name]));
  await probeMachine(c, clock, 'src01');
  await probeMachine(c, clock, 'vault02');
  await runOk(['zfs', 'create', `${sourcePool.name}/web`]);
  // More than the pipes and ssh windows between the two hold, so that the first sync can be caught mid-stream.
  await writeFile(join(sourcePool.mountpoint ?? '', 'web', 'data.bin'), randomBytes(32 * 1024 * 1024));
  await applied(tc, c.policies, { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'hourly', namespace: 'default' }, spec: { hourly: 24 } });
  await applied(tc, c.policies, { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'offsite', namespace: 'default' }, spec: { daily: 7 } });
  await applied(tc, c.datasets, {
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name: 'web', namespace: 'default' },
    spec: { machineRef: { name: 'src01' }, name: `${sourcePool.name}/web`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'hourly' } },
  });
  // Its only machine, cold01, never answers: no machine of it can take a vector.
  await applied(tc, c.targets, { apiVersion: 'bdr.dev/v1alpha1', kind: 'StorageTarget', metadata: { name: 'elsewhere' }, spec: { machines: [{ name: 'cold01' }], parentDataset: `${replicaPool.name}/replicas` } });

  const events = new EventRecorder(c.client, 'bdr', 'default', silentLogger, clock);
  const tasks = new TaskRunner(clock);
  const sync = new VectorSync({ client: c.client, vectors: c.vectors, datasets: c.datasets, policies: c.policies, connections: c.connections, tasks, events, clock });
  const dataset = new DatasetReconciler({
    client: c.client, datasets: c.datasets, policies: c.policies, machines: c.machines, connections: c.connections, tasks, events, clock,
    inventories: new InventoryCache(2_000, clock),
    protectedSnapshots: (m) => sync.protectedSnapshots(m),
  });
  const reconciler = new VectorReconciler({
    client: c.client, vectors: c.vectors, datasets: c.datasets, machines: c.machines, storageTargets: c.targets, connections: c.connections, events, clock, tasks, sync,
    keys: new VectorKeyStore(c.client, 'bdr-system', clock),
  });
  const takeRestorePoint = async () => {
    const before = c.datasets.get('default/web')?.status?.restorePoints?.newest?.name;
    await dataset.reconcile('default/web', ctx('default/web'));
    await eventually(() => {
      const newest = c.datasets.get('default/web')?.status?.restorePoints?.newest?.name;
      return newest !== undefined && newest !== before ? true : undefined;
    }, 'a new restore point in the cache');
  };
  /** The Vector once the cache holds what the API server holds (a reconcile must not act on an older copy). */
  const caughtUp = (name: string): Promise<Vector> =>
    eventually(async () => {
      const server = await c.client.get<Vector>(resourceOf(vectorKind), name, 'default');
      return server && c.vectors.get(`default/${name}`)?.metadata.resourceVersion === server.metadata.resourceVersion ? server : undefined;
    }, `default/${name} in the cache`);
  /** Reconciles until the Vector satisfies `done`. */
  const reconcileUntil = async (name: string, done: (v: Vector) => boolean): Promise<Vector> => {
    const key = `default/${name}`;
    return eventually(async () => {
      await caughtUp(name);
      await reconciler.reconcile(key, ctx(key));
      const v = await caughtUp(name);
      return done(v) ? v : undefined;
    }, `${key} to settle`, 120_000, 200);
  };
  const vector = (name: string, spec: object) => applied(tc, c.vectors, { apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name, namespace: 'default' }, spec });
  const is = (v: Vector, type: string, status: string, reason?: string) => {
    const x = findCondition(v.status?.conditions, type);
    return x?.status === status && (reason === undefined || x.reason === reason);
  };

  await takeRestorePoint();

  // Progressing: the source Vector is not paired yet (the controller waits, DependencyNotReady).
  await vector('web-geo', { source: { vectorRef: { name: 'web-offsite' } }, target: { machineRef: { name: 'vault02' }, dataset: `${replicaPool.name}/geo` }, retentionPolicyRef: { name: 'offsite' } });
  await vector('web-offsite', {
    source: { datasetRef: { name: 'web' } },
    target: { machineRef: { name: 'vault02' }, dataset: `${replicaPool.name}/replicas/web-offsite` },
    schedule: { interval: '1h' },
    retentionPolicyRef: { name: 'offsite' },
    rpo: '2h',
    suspend: true,
  });
  write('vector-waiting', await reconcileUntil('web-geo', (v) => is(v, 'Ready', 'False', 'DependencyNotReady')));
  // Progressing: no machine of its StorageTarget can take it (NoStorageAvailable, retried).
  await vector('web-nostorage', { source: { datasetRef: { name: 'web' } }, target: { storageTargetRef: { name: 'elsewhere' } } });
  write('vector-nostorage', await reconcileUntil('web-nostorage', (v) => is(v, 'Ready', 'False', 'NoStorageAvailable')));
  // Suspended: spec.suspend, never paired.
  write('vector-suspended', await reconcileUntil('web-offsite', (v) => is(v, 'Ready', 'True', 'Suspended')));

  // Healthy: resumed, paired, key authorized, synced through the guard, within its RPO.
  await vector('web-offsite', {
    source: { datasetRef: { name: 'web' } },
    target: { machineRef: { name: 'vault02' }, dataset: `${replicaPool.name}/replicas/web-offsite` },
    schedule: { interval: '1h' },
    retentionPolicyRef: { name: 'offsite' },
    rpo: '2h',
  });
  // The first sync, caught mid-stream: B's zfs receive is stopped until status.transfer (and with it
  // Reconciling=True, Transferring) has been read.
  await reconcileUntil('web-offsite', (v) => is(v, 'KeyAuthorized', 'True'));
  const target = `${replicaPool.name}/replicas/web-offsite/web`;
  const running = reconciler.reconcile('default/web-offsite', ctx('default/web-offsite'));
  const receive = await eventually(async () => {
    const r = await run(['pgrep', '-f', `^zfs receive -u ${target}$`]);
    const pid = Number(r.stdout.trim().split('\n')[0]);
    return pid > 0 ? pid : undefined;
  }, "vault02's zfs receive", 60_000, 20);
  process.kill(receive, 'SIGSTOP');
  try {
    write('vector-transferring', await eventually(async () => {
      const v = await c.client.get<Vector>(resourceOf(vectorKind), 'web-offsite', 'default');
      return v?.status?.transfer ? v : undefined;
    }, 'status.transfer'));
  } finally {
    process.kill(receive, 'SIGCONT');
  }
  await running;
  const synced = await caughtUp('web-offsite');
  if (!(is(synced, 'Ready', 'True', 'Synced') && is(synced, 'InSync', 'True'))) throw new Error(`the first sync did not end Synced: ${JSON.stringify(synced.status?.conditions)}`);
  write('vector-insync', synced);

  // Suspended by its Machine: vault02 suspended, the vector runs nothing (condition Suspended, MachineSuspended).
  const vault = machineObject(b, 'Storage', [replicaPool.name]);
  await applied(tc, c.machines, { ...vault, spec: { ...vault.spec, suspend: true } });
  write('vector-machine-suspended', await reconcileUntil('web-offsite', (v) => is(v, 'Suspended', 'True', 'MachineSuspended')));
  await applied(tc, c.machines, vault);
  await reconcileUntil('web-offsite', (v) => findCondition(v.status?.conditions, 'Suspended') === undefined && is(v, 'Ready', 'True'));

  // Degraded: a snapshot made on the replica by hand; the next scheduled run refuses (Stalled, TargetDiverged).
  await runOk(['zfs', 'snapshot', `${replicaPool.name}/replicas/web-offsite/web@by-hand`]);
  clock.advance(HOUR);
  await takeRestorePoint();
  write('vector-diverged', await reconcileUntil('web-offsite', (v) => is(v, 'Stalled', 'True', 'TargetDiverged')));
  await c.connections.closeAll();
}

const bed = new TestBed();
const tc = await startTestCluster();
const client = new KubeClient(tc.kubeConfig);
const c: Controllers = {
  client,
  machines: new Informer<Machine>(tc.kubeConfig, client, resourceOf(machineKind), silentLogger),
  targets: new Informer<StorageTarget>(tc.kubeConfig, client, resourceOf(storageTargetKind), silentLogger),
  vectors: new Informer<Vector>(tc.kubeConfig, client, resourceOf(vectorKind), silentLogger),
  datasets: new Informer<Dataset>(tc.kubeConfig, client, resourceOf(datasetKind), silentLogger),
  policies: new Informer<RetentionPolicy>(tc.kubeConfig, client, resourceOf(retentionPolicyKind), silentLogger),
  connections: new MachineConnections(client),
};
const informers = [c.machines, c.targets, c.vectors, c.datasets, c.policies];
try {
  await Promise.all(informers.map((i) => i.start()));
  await recordStorageTargets(tc, bed, c);
  await recordVectors(tc, bed, c);
} finally {
  for (const i of informers) await i.stop();
  await c.connections.closeAll();
  await tc.stop();
  await bed.cleanup();
}
