/**
 * The setting of the Vector sync fault tests (vector-sync-faults.test.ts's, as a helper): A primary, B storage,
 * each a real sshd on this host; a mounted zfs-fuse source pool on A and a replica pool on B; the embedded API
 * server; a fake clock; the real Dataset and Vector reconcilers (with the sync's protectedSnapshots hook), built
 * anew by `startOperator()` as a restarted operator would be. The tests drive reconciles themselves.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { datasetKind, machineKind, retentionPolicyKind, storageTargetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, StorageTarget, Vector } from '../../api/types.ts';
import { DatasetReconciler } from '../../controllers/dataset-controller.ts';
import { InventoryCache } from '../../controllers/inventory-cache.ts';
import { MachineConnections } from '../../controllers/machine-connections.ts';
import type { Clock } from '../../controllers/runtime/clock.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf, type KubeObject } from '../../controllers/runtime/kube.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { VectorReconciler } from '../../controllers/vector-controller.ts';
import { VectorKeyStore } from '../../controllers/vector-keys.ts';
import { VectorSync } from '../../controllers/vector-sync.ts';
import { silentLogger } from '../../metrics/log.ts';
import type { VectorSyncMetrics } from '../../metrics/vector-metrics.ts';
import { run, runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';
import { machineObject } from './vector-bed.ts';

const abort = new AbortController();
export const ctx = (key: string, signal: AbortSignal = abort.signal) => ({ key, log: silentLogger, signal });

/** `bdr-YYYYMMDDTHHMMSSZ` at `ms` (the Dataset controller's names). */
export const pointAt = (ms: number) => `bdr-${new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}`;

/** Writes Ready on a Machine through the status subresource, as the Machine controller's probe would. */
export async function markReady(client: KubeClient, name: string): Promise<void> {
  const m = await client.get<Machine>(resourceOf(machineKind), name);
  await client.patchStatus(resourceOf(machineKind), m ?? { metadata: { name } }, {
    conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message: 'test', lastTransitionTime: '2026-01-01T00:00:00Z' }],
  });
}

/** Waits until the cache holds what the API server holds, so each reconcile acts on the last write. */
export const caughtUp = async <T extends KubeObject>(
  client: KubeClient, informer: Informer<T>, resource: Parameters<KubeClient['get']>[0], name: string, namespace?: string,
): Promise<T> =>
  eventually(async () => {
    const server = await client.get<T>(resource, name, namespace);
    const cached = informer.get(namespace ? `${namespace}/${name}` : name);
    return server && cached?.metadata.resourceVersion === server.metadata.resourceVersion ? cached : undefined;
  }, `${name} in the cache`);

/**
 * The informers the sync tests read, started; added to `into` before they start, so that whoever stops `into`
 * stops them too when a start fails.
 */
export async function startInformers(tc: TestCluster, client: KubeClient, into: Array<{ stop(): Promise<void> }>) {
  const vectors = new Informer<Vector>(tc.kubeConfig, client, resourceOf(vectorKind), silentLogger);
  const machines = new Informer<Machine>(tc.kubeConfig, client, resourceOf(machineKind), silentLogger);
  const datasets = new Informer<Dataset>(tc.kubeConfig, client, resourceOf(datasetKind), silentLogger);
  const policies = new Informer<RetentionPolicy>(tc.kubeConfig, client, resourceOf(retentionPolicyKind), silentLogger);
  const targets = new Informer<StorageTarget>(tc.kubeConfig, client, resourceOf(storageTargetKind), silentLogger);
  const all = [vectors, machines, datasets, policies, targets];
  into.push(...all);
  await Promise.all(all.map((i) => i.start()));
  return { vectors, machines, datasets, policies, targets };
}

export const eventsOf = async (client: KubeClient, object: string, reason: string) =>
  (await client.core.listNamespacedEvent({ namespace: 'default' })).items.filter((e) => e.involvedObject.name === object && e.reason === reason);

export const snapshotsOn = async (dataset: string) =>
  (await runOk(['zfs', 'list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-r', dataset]))
    .split('\n')
    .filter((l) => l.startsWith(`${dataset}@`))
    .map((l) => l.slice(dataset.length + 1));

/** Every dataset below (and with) `dataset`, snapshots excluded. */
export const datasetsUnder = async (dataset: string) => (await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', dataset])).trim().split('\n');

export const userrefs = async (snapshot: string) => Number((await runOk(['zfs', 'get', '-H', '-p', '-o', 'value', 'userrefs', snapshot])).trim());

/** The snapshots of `dataset` that carry any user hold (zfs-fuse has no `zfs holds`; userrefs counts them). */
export const heldOn = async (dataset: string) => {
  const held = new Set(
    (await runOk(['zfs', 'get', '-H', '-p', '-r', '-o', 'name,value', 'userrefs', dataset]))
      .split('\n')
      .map((l) => l.split('\t'))
      .filter(([name, refs]) => name?.startsWith(`${dataset}@`) && Number(refs) > 0)
      .map(([name]) => (name as string).slice(dataset.length + 1)),
  );
  return (await snapshotsOn(dataset)).filter((s) => held.has(s));
};

/**
 * The operator's in-process parts (connections, the sync, the Dataset and Vector reconcilers), built anew as a
 * restarted operator would: nothing carried over but the cluster and the informers passed in.
 */
export function startOperator(deps: {
  client: KubeClient;
  vectors: Informer<Vector>;
  datasets: Informer<Dataset>;
  policies: Informer<RetentionPolicy>;
  machines: Informer<Machine>;
  targets: Informer<StorageTarget>;
  clock: Clock;
  metrics?: VectorSyncMetrics;
}) {
  const { client, vectors, datasets, policies, machines, targets, clock, metrics } = deps;
  const connections = new MachineConnections(client);
  const events = new EventRecorder(client, 'bdr', 'default', silentLogger, clock);
  const tasks = new TaskRunner(clock);
  const sync = new VectorSync({ client, vectors, datasets, policies, connections, tasks, events, clock, ...(metrics ? { metrics } : {}) });
  const dsReconciler = new DatasetReconciler({
    client, datasets, policies, machines, connections, tasks, events, clock,
    inventories: new InventoryCache(2_000, clock),
    protectedSnapshots: (m) => sync.protectedSnapshots(m),
  });
  const reconciler = new VectorReconciler({
    client, vectors, datasets, machines, storageTargets: targets, connections, events, clock, tasks, sync,
    keys: new VectorKeyStore(client, 'bdr-system', clock),
  });
  return { connections, sync, dsReconciler, reconciler, tasks };
}

export interface SyncBedOptions {
  start: number;
  /** The source Dataset's RetentionPolicy spec (named `local`). */
  local: Record<string, unknown>;
  /** The vector's remote RetentionPolicy spec (named `remote`). */
  remote: Record<string, unknown>;
  /** The source Dataset's snapshot interval. */
  interval: string;
  /** The source pool's size (MiB). */
  sourceMb?: number;
  replicaMb?: number;
}

export class SyncBed {
  readonly bed = new TestBed();
  a!: TestMachine;
  b!: TestMachine;
  sourcePool!: TestPool;
  replicaPool!: TestPool;
  tc!: TestCluster;
  client!: KubeClient;
  clock!: FakeClock;
  vectors!: Informer<Vector>;
  datasets!: Informer<Dataset>;
  policies!: Informer<RetentionPolicy>;
  machines!: Informer<Machine>;
  targets!: Informer<StorageTarget>;
  connections!: MachineConnections;
  dsReconciler!: DatasetReconciler;
  reconciler!: VectorReconciler;
  sync!: VectorSync;
  /** The operator's task runner (its Machine controller is not running here: slots are set on it directly). */
  tasks!: TaskRunner;
  private readonly informers: Array<{ start(): Promise<void>; stop(): Promise<void> }> = [];

  constructor(readonly options: SyncBedOptions) {}

  source = () => `${this.sourcePool.name}/data`;
  /** The vector's dataset on B (the guard's prefix). */
  replica = () => `${this.replicaPool.name}/replicas/v`;
  /** The replica itself. */
  target = () => `${this.replica()}/data`;
  files = () => join(this.sourcePool.mountpoint ?? '', 'data');
  idFile = () => join(this.a.sshd.dir, 'vectors', 'default', 'v', 'id');

  async start(): Promise<void> {
    const { options } = this;
    [this.a, this.b, this.sourcePool, this.replicaPool] = await Promise.all([
      this.bed.machine('a'), this.bed.machine('b'),
      this.bed.pool({ mounted: true, sizeMb: options.sourceMb ?? 256 }), this.bed.pool({ sizeMb: options.replicaMb ?? 256 }),
    ]);
    this.tc = await startTestCluster();
    const { tc } = this;
    this.client = new KubeClient(tc.kubeConfig);
    this.clock = new FakeClock(options.start);
    for (const m of [this.a, this.b]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
    tc.apply(this.machineObject(this.a, 'Source'));
    tc.apply(this.machineObject(this.b, 'Storage'));
    for (const m of ['a', 'b']) await markReady(this.client, m);
    await runOk(['zfs', 'create', this.source()]);
    await mkdir(this.files(), { recursive: true });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'local', namespace: 'default' }, spec: options.local });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'remote', namespace: 'default' }, spec: options.remote });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'src', namespace: 'default' },
      spec: { machineRef: { name: 'a' }, name: this.source(), schedule: { interval: options.interval }, retentionPolicyRef: { name: 'local' } },
    });
    ({ vectors: this.vectors, machines: this.machines, datasets: this.datasets, policies: this.policies, targets: this.targets } =
      await startInformers(tc, this.client, this.informers));
    await eventually(
      () => (this.machines.list().filter((m) => m.status?.conditions).length === 2 && this.datasets.get('default/src') && this.policies.list().length === 2 ? true : undefined),
      'the cache',
    );
    this.startOperator();
  }

  async stop(): Promise<void> {
    for (const i of this.informers) await i.stop();
    await this.connections?.closeAll();
    await this.tc?.stop();
    await this.bed.cleanup();
  }

  /** The operator's in-process parts, built anew as a restarted operator would: nothing carried over but the cluster. */
  startOperator(): void {
    ({ connections: this.connections, sync: this.sync, dsReconciler: this.dsReconciler, reconciler: this.reconciler, tasks: this.tasks } = startOperator(this));
  }

  machineObject = (m: TestMachine, role: 'Source' | 'Storage') => machineObject(m, role);

  /** Waits until the cache holds what the API server holds, so each reconcile acts on the last write. */
  caughtUp = <T extends KubeObject>(informer: Informer<T>, resource: Parameters<KubeClient['get']>[0], name: string, namespace?: string): Promise<T> =>
    caughtUp(this.client, informer, resource, name, namespace);

  vector = (name = 'v') => this.caughtUp(this.vectors, resourceOf(vectorKind), name, 'default');

  async applyVector(spec: Record<string, unknown>, name = 'v'): Promise<void> {
    const applied = this.tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name, namespace: 'default' },
      spec: { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: this.replica() }, retentionPolicyRef: { name: 'remote' }, ...spec },
    });
    await eventually(() => (this.vectors.get(`default/${name}`)?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the vector in the cache');
  }

  eventsOf = (object: string, reason: string) => eventsOf(this.client, object, reason);
  snapshotsOn = snapshotsOn;
  datasetsUnder = datasetsUnder;
  userrefs = userrefs;
  heldOn = heldOn;

  /** An independent measure of a stream: `zfs send [-i from] to | wc -c` on the source. */
  streamBytes = async (from: string | undefined, to: string) => {
    const send = from ? `zfs send -i ${this.source()}@${from} ${this.source()}@${to}` : `zfs send ${this.source()}@${to}`;
    return Number((await runOk(['sh', '-c', `${send} | wc -c`])).trim());
  };

  /** The Dataset controller takes its point (and prunes) at the clock's now. */
  snapshotSource = async () => {
    await this.dsReconciler.reconcile('default/src', ctx('default/src'));
    return this.caughtUp(this.datasets, resourceOf(datasetKind), 'src', 'default');
  };

  requestSync = async (value: string, name = 'v') => {
    const current = await this.vector(name);
    const applied = this.tc.apply({ ...current, metadata: { ...current.metadata, annotations: { 'bdr.dev/sync-requested': value } }, status: undefined } as unknown as KubeObject);
    await eventually(() => (this.vectors.get(`default/${name}`)?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the annotation in the cache');
  };

  syncUntil = (done: (v: Vector) => boolean, what: string, name = 'v') =>
    eventually(async () => {
      await this.reconciler.reconcile(`default/${name}`, ctx(`default/${name}`));
      const v = await this.vector(name);
      return done(v) ? v : undefined;
    }, what, 120_000, 200);
}

export const condition = (v: Vector | undefined, type: string) => v?.status?.conditions?.find((x) => x.type === type);

/** Every process id whose whole command line matches `pattern` (pgrep -f). */
export async function pidsOf(pattern: string): Promise<number[]> {
  const r = await run(['pgrep', '-f', pattern]);
  return r.stdout.trim().split('\n').map(Number).filter((p) => p > 0);
}

export const pidOf = async (pattern: string) => (await pidsOf(pattern))[0];

export const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return undefined;
  } catch {
    return true;
  }
};

/** The parent process id of `pid` (undefined once it is gone). */
export async function parentOf(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // The command name (2nd field) is in parentheses and may hold spaces: the fields after it are fixed.
  const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : NaN;
  return ppid > 0 ? ppid : undefined;
}

/** Whether `pid` or one of its ancestors has `needle` in its command line. */
export async function descendsFrom(pid: number, needle: string): Promise<boolean> {
  for (let p: number | undefined = pid, depth = 0; p !== undefined && p > 1 && depth < 8; p = await parentOf(p), depth++) {
    const cmdline = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.replaceAll('\0', ' ').includes(needle)) return true;
  }
  return false;
}

/**
 * The bytes the metering `dd` of the pipeline whose command line names `needle` has read so far (from
 * /proc/<pid>/io, so also before dd prints its first progress line); undefined while there is none.
 */
export async function meteredBytes(needle: string): Promise<number | undefined> {
  for (const pid of await pidsOf('^dd bs=131072 status=progress$')) {
    if (!(await descendsFrom(pid, needle))) continue;
    const io = await readFile(`/proc/${pid}/io`, 'utf8').catch(() => '');
    const m = /^rchar: (\d+)$/m.exec(io);
    if (m) return Number(m[1]);
  }
  return undefined;
}
