/**
 * The StorageTarget controller against the embedded cluster, real sshd machines and zfs-fuse.
 *
 * The test bed runs one zfs-fuse daemon, so the two storage machines (two sshd on this host) see the same pool:
 * parentDataset is created by the first machine's reconcile and found by the second, which is itself the
 * idempotence under test. Machine status comes from the real Machine controller probing over SSH.
 */
import { createServer, type AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineKind, storageTargetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Machine, StorageTarget, Vector } from '../../api/types.ts';
import { InventoryCache } from '../../controllers/inventory-cache.ts';
import { MachineConnections, type MachineHandle } from '../../controllers/machine-connections.ts';
import { MachineReconciler } from '../../controllers/machine-controller.ts';
import { systemClock } from '../../controllers/runtime/clock.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { pairingTargetOf, recordRoundRobin, StorageTargetReconciler } from '../../controllers/storage-target-controller.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { silentLogger } from '../../metrics/log.ts';
import { registerStorageTargetMetrics } from '../../metrics/storage-target-metrics.ts';
import type { NodeConnection } from '../../nodes/connection.ts';
import { pairVectors, refusalsOf } from '../../planning/pairing.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

const abort = new AbortController();
const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });

/** The operator's real connections, with every command the StorageTarget controller runs written down. */
class RecordingConnections extends MachineConnections {
  readonly commands: Array<{ machine: string; argv: readonly string[] }> = [];
  private readonly wrapped = new Map<NodeConnection, MachineHandle>();

  override async get(machine: Machine): Promise<MachineHandle> {
    const handle = await super.get(machine);
    const existing = this.wrapped.get(handle.connection);
    if (existing) return existing;
    const inner = handle.connection;
    const name = machine.metadata.name;
    const connection: NodeConnection = {
      description: inner.description,
      exec: (argv, options) => {
        this.commands.push({ machine: name, argv });
        return inner.exec(argv, options);
      },
      spawn: (argv, options) => {
        this.commands.push({ machine: name, argv });
        return inner.spawn(argv, options);
      },
      close: () => inner.close(),
    };
    const wrapped = { connection, zfs: new ZfsMachine(connection) };
    this.wrapped.set(inner, wrapped);
    return wrapped;
  }
}

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
/** `zpool list -H` prints "247M" on zfs-fuse (no -p there): read it the way the figure was printed. */
function zpoolBytes(text: string): number {
  const m = /^([\d.]+)([KMGT]?)$/.exec(text);
  if (!m) throw new Error(`unexpected zpool size ${text}`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? ''] as number));
}

describe('StorageTarget controller on zfs-fuse and real sshd', () => {
  const bed = new TestBed();
  let pool: TestPool;
  let b: TestMachine;
  let c: TestMachine;
  let tc: TestCluster;
  let client: KubeClient;
  let connections: RecordingConnections;
  let machines: Informer<Machine>;
  let targets: Informer<StorageTarget>;
  let vectors: Informer<Vector>;
  let probe: MachineReconciler;
  let reconciler: StorageTargetReconciler;
  let parent: string;

  const target = (warningPercent: number) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'StorageTarget',
    metadata: { name: 'st' },
    spec: {
      machines: [{ name: 'b' }, { name: 'c', weight: 200 }, { name: 'src' }, { name: 'ghost' }, { name: 'down' }],
      parentDataset: parent,
      capacity: { warningPercent, criticalPercent: 95 },
    },
  });
  const applyTarget = async (warningPercent: number) => {
    const rv = tc.apply(target(warningPercent)).metadata.resourceVersion;
    await eventually(() => (targets.get('st')?.metadata.resourceVersion === rv ? true : undefined), 'the StorageTarget in the cache');
  };
  const reconcile = () => reconciler.reconcile('st', ctx('st'));
  /** Probes the machines as the Machine controller does and waits until the cache holds the new status. */
  const probeAll = async () => {
    for (const name of ['b', 'c', 'src', 'down']) {
      await probe.reconcile(name, ctx(name));
      const current = await client.get<Machine>(resourceOf(machineKind), name);
      const rv = current?.metadata.resourceVersion;
      await eventually(() => (machines.get(name)?.metadata.resourceVersion === rv ? true : undefined), `Machine ${name} in the cache`);
    }
  };
  const status = async () => (await client.get<StorageTarget>(resourceOf(storageTargetKind), 'st'))?.status;
  const writes = () => tc.requests.filter((r) => r.method !== 'GET').length;

  beforeAll(async () => {
    pool = await bed.pool({ sizeMb: 256, mounted: true });
    parent = `${pool.name}/replicas/bdr`;
    [b, c] = await Promise.all([bed.machine('b'), bed.machine('c')]);
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    for (const m of [b, c]) {
      tc.apply(m.secret);
      tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: m.name }, spec: { connection: m.machine.spec.connection, role: 'Storage', pools: [pool.name] } });
    }
    // A storage machine whose sshd is gone: its probe fails, so it is not Ready.
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const port = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Machine',
      metadata: { name: 'down' },
      spec: { connection: { ...b.machine.spec.connection, port: closed, connectTimeout: '2s' }, role: 'Storage', pools: [pool.name] },
    });
    // A protected server listed by mistake: reported, never used.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'src' }, spec: { connection: { type: 'local' }, role: 'Source', pools: [pool.name] } });
    for (const [name, via, machine] of [['v1', 'st', 'b'], ['v2', 'st', 'b'], ['v3', 'st', 'c'], ['v4', 'other', 'b']] as const) {
      tc.apply({
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Vector',
        metadata: { name, namespace: 'default' },
        spec: { source: { datasetRef: { name: 'd' } }, target: { storageTargetRef: { name: via } } },
      });
      const v = await client.get<Vector>(resourceOf(vectorKind), name, 'default');
      await client.patchStatus(resourceOf(vectorKind), v ?? { metadata: { name, namespace: 'default' } }, { pairing: { machine } });
    }
    machines = new Informer<Machine>(tc.kubeConfig, client, resourceOf(machineKind), silentLogger);
    targets = new Informer<StorageTarget>(tc.kubeConfig, client, resourceOf(storageTargetKind), silentLogger);
    vectors = new Informer<Vector>(tc.kubeConfig, client, resourceOf(vectorKind), silentLogger);
    await Promise.all([machines.start(), targets.start(), vectors.start()]);
    const events = new EventRecorder(client, 'bdr', 'default', silentLogger);
    connections = new RecordingConnections(client);
    const clock = systemClock;
    probe = new MachineReconciler({ client, machines, connections: new MachineConnections(client), events, clock });
    // An inventory cache that never reuses: only the controller itself can avoid commands when idle.
    const inventories = new InventoryCache(-1, clock);
    reconciler = new StorageTargetReconciler({ client, targets, machines, vectors, connections, inventories, tasks: new TaskRunner(clock), events, clock });
    await eventually(() => (machines.list().length === 4 ? true : undefined), 'the Machines in the cache');
    await probeAll();
    await eventually(() => (vectors.list().filter((v) => v.status?.pairing?.machine).length === 4 ? true : undefined), 'the paired Vectors in the cache');
    await applyTarget(80);
  }, 300_000);

  afterAll(async () => {
    for (const i of [machines, targets, vectors]) await i?.stop();
    await connections?.closeAll();
    await tc?.stop();
    await bed.cleanup();
  }, 120_000);

  it('creates parentDataset unmounted with canmount=off, once per machine, and only on storage machines', async () => {
    await reconcile();
    const [canmount, mounted] = (await runOk(['zfs', 'get', '-H', '-p', '-o', 'value', 'canmount,mounted', parent])).trim().split('\n');
    expect(canmount).toBe('off');
    expect(mounted).toBe('no');
    // b and c are handled in parallel and, on this test bed, share the pool: each may find the parent missing
    // and create it (the loser's create of an existing dataset is not an error). Each creates at most once.
    const creates = connections.commands.filter((cmd) => cmd.argv[1] === 'create');
    expect(creates.length).toBeGreaterThanOrEqual(1);
    expect(new Set(creates.map((cmd) => cmd.machine)).size).toBe(creates.length);
    for (const cmd of creates) {
      expect(['b', 'c']).toContain(cmd.machine);
      expect(cmd.argv).toEqual(['zfs', 'create', '-p', '-o', 'canmount=off', parent]);
    }
    expect(connections.commands.filter((cmd) => cmd.machine === 'src')).toEqual([]);
    const created = tc.requests.filter((r) => r.method === 'POST' && r.url.includes('/events') && r.body.includes('ParentDatasetCreated'));
    expect(created.length).toBeGreaterThanOrEqual(1);
    // Settled: a second reconcile creates nothing.
    await reconcile();
    expect(connections.commands.filter((cmd) => cmd.argv[1] === 'create')).toHaveLength(creates.length);
  }, 120_000);

  it('reports pool figures as the Machines measured them, vector counts, and the machines it cannot use', async () => {
    // Creating the parent changed the pool: wait until a fresh probe, the status and zpool agree.
    const st = await eventually(async () => {
      await probeAll();
      await reconcile();
      const s = await status();
      const [size, allocated, free] = (await runOk(['zpool', 'list', '-H', '-o', 'size,allocated,free', pool.name])).trim().split('\t').map(zpoolBytes);
      const fig = s?.machines?.find((m) => m.name === 'b');
      return fig?.sizeBytes === size && fig?.usedBytes === allocated && fig?.freeBytes === free ? s : undefined;
    }, 'status figures to match zpool list', 60_000);
    const poolEntry = machines.get('c')?.status?.pools?.find((p) => p.name === pool.name);
    expect(st.machines).toEqual([
      { name: 'b', sizeBytes: poolEntry?.sizeBytes, usedBytes: poolEntry?.allocatedBytes, freeBytes: poolEntry?.freeBytes, vectorCount: 2 },
      { name: 'c', sizeBytes: poolEntry?.sizeBytes, usedBytes: poolEntry?.allocatedBytes, freeBytes: poolEntry?.freeBytes, vectorCount: 1 },
      { name: 'src', sizeBytes: poolEntry?.sizeBytes, usedBytes: poolEntry?.allocatedBytes, freeBytes: poolEntry?.freeBytes, vectorCount: 0 },
      { name: 'ghost', vectorCount: 0 },
      { name: 'down', vectorCount: 0 },
    ]);
    expect(st.observedGeneration).toBe(targets.get('st')?.metadata.generation);
    const ready = st.conditions?.find((x) => x.type === 'Ready');
    expect(ready?.status).toBe('True');
    expect(ready?.message).toMatch(/^2 of 5 machine\(s\) usable; src: role Source, not Storage; ghost: no such Machine; down: not Ready \(MachineUnreachable: .+\)$/);
    expect(connections.commands.filter((cmd) => cmd.machine !== 'b' && cmd.machine !== 'c')).toEqual([]);
    expect(st.conditions?.find((x) => x.type === 'CapacityOK')?.status).toBe('True');

    // The pairing input the Vector controller gets from the same caches refuses the same two machines.
    const pairing = pairingTargetOf(targets.get('st') as StorageTarget, (n) => machines.get(n), vectors.list());
    expect(pairing.machines.map((m) => [m.name, m.weight, m.vectorCount, refusalsOf(pairing, m).join(', ')])).toEqual([
      ['b', 100, 2, ''],
      ['c', 200, 1, ''],
      ['src', 100, 0, 'role Source, not Storage'],
      ['ghost', 100, 0, 'no such Machine'],
      ['down', 100, 0, `not Ready, does not report pool ${pool.name}, capacity unknown`],
    ]);

    const registry = new Registry();
    registerStorageTargetMetrics(registry, () => targets.list());
    await eventually(() => (targets.get('st')?.status?.machines?.[0]?.vectorCount === 2 ? true : undefined), 'the status in the cache');
    const text = await registry.metrics();
    expect(text).toContain('bdr_storage_target_vectors{target="st",machine="b"} 2');
    expect(text).toContain('bdr_storage_target_vectors{target="st",machine="c"} 1');
    expect(text).toContain(`bdr_storage_target_machine_size_bytes{target="st",machine="b"} ${poolEntry?.sizeBytes}`);
    expect(text).toContain(`bdr_storage_target_machine_free_bytes{target="st",machine="c"} ${poolEntry?.freeBytes}`);
    // ghost has no pool to measure: a vector count, but no byte gauges.
    expect(text).toContain('bdr_storage_target_vectors{target="st",machine="ghost"} 0');
    expect(text).not.toMatch(/_bytes\{target="st",machine="ghost"\}/);
  }, 120_000);

  it('is idle once settled: no command on any machine and no API write', async () => {
    await reconcile(); // settles whatever the last probe changed
    const commands = connections.commands.length;
    const before = writes();
    await reconcile();
    await reconcile();
    expect(connections.commands.length).toBe(commands);
    expect(writes()).toBe(before);
  });

  it('turns CapacityOK False when warningPercent drops below the measured allocation, naming the machines', async () => {
    await runOk(['zfs', 'create', `${pool.name}/fill`]);
    await runOk(['dd', 'if=/dev/urandom', `of=${pool.mountpoint}/fill/data`, 'bs=1M', 'count=40', 'conv=fsync']);
    const st = await eventually(async () => {
      await probeAll();
      await reconcile();
      const s = await status();
      const fig = s?.machines?.find((m) => m.name === 'b');
      return fig?.usedBytes !== undefined && fig.sizeBytes !== undefined && fig.usedBytes * 100 >= 10 * fig.sizeBytes ? s : undefined;
    }, 'the filled pool to show in status', 60_000);
    const fig = st.machines?.find((m) => m.name === 'b') as { sizeBytes: number; usedBytes: number };
    expect(st.conditions?.find((x) => x.type === 'CapacityOK')?.status).toBe('True');

    // e.g. 40 MiB of 248 MiB: 16.1% allocated; warn from 16%.
    const measured = (fig.usedBytes * 100) / fig.sizeBytes;
    const warning = Math.floor(measured);
    await applyTarget(warning);
    await reconcile();
    const after = await status();
    const capacity = after?.conditions?.find((x) => x.type === 'CapacityOK');
    expect(capacity?.status).toBe('False');
    expect(capacity?.reason).toBe('AboveWarning');
    const shown = `${(Math.floor(measured * 10) / 10).toFixed(1)}%`;
    expect(capacity?.message).toBe(`b at ${shown} allocated (warningPercent ${warning}%); c at ${shown} allocated (warningPercent ${warning}%); src at ${shown} allocated (warningPercent ${warning}%)`);
    expect(capacity?.observedGeneration).toBe(targets.get('st')?.metadata.generation);
    expect(tc.requests.some((r) => r.method === 'POST' && r.url.includes('/events') && r.body.includes('CapacityWarning'))).toBe(true);

    await applyTarget(80);
    await reconcile();
    expect((await status())?.conditions?.find((x) => x.type === 'CapacityOK')?.status).toBe('True');
  }, 180_000);

  it('keeps the RoundRobin turn in status between batches of pairings', async () => {
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'StorageTarget', metadata: { name: 'rr' }, spec: { machines: [{ name: 'b' }, { name: 'c', weight: 200 }], parentDataset: parent, pairing: { strategy: 'RoundRobin' } } });
    const fresh = await eventually(() => targets.get('rr'), 'the RoundRobin target in the cache');
    // Weights 100 and 200: b takes one turn, c two. Three vectors: b, c, c.
    const first = pairVectors(pairingTargetOf(fresh, (n) => machines.get(n), []), [{ key: 'ns/1' }, { key: 'ns/2' }, { key: 'ns/3' }]);
    expect([...first.values()].map((d) => (d.kind === 'pair' ? d.machine : d.kind))).toEqual(['b', 'c', 'c']);
    await recordRoundRobin(client, fresh, first.values());
    const recorded = await eventually(() => (targets.get('rr')?.status?.roundRobin ? targets.get('rr') : undefined), 'the turn in status');
    expect(recorded.status?.roundRobin).toEqual({ lastMachine: 'c', streak: 2 });
    // The next batch starts where the first left off: c's turn is over, so b.
    const second = pairVectors(pairingTargetOf(recorded, (n) => machines.get(n), []), [{ key: 'ns/4' }]);
    expect(second.get('ns/4')).toMatchObject({ kind: 'pair', machine: 'b' });
  });
});
