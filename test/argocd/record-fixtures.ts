/**
 * Records the StorageTarget Argo CD fixtures from real reconciles: the Machine and StorageTarget controllers
 * against the embedded API server, a zfs-fuse pool and a test sshd (the setup of
 * test/controllers/storage-target.test.ts). Run as root: `npx tsx test/argocd/record-fixtures.ts`.
 * Writes test/fixtures/argocd/storagetarget-*.json; uid, resourceVersion, timestamps of metadata and
 * managedFields are left out, as in the other recordings.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { machineKind, storageTargetKind, vectorKind } from '../../api/kinds/index.ts';
import type { Machine, StorageTarget, Vector } from '../../api/types.ts';
import { InventoryCache } from '../../controllers/inventory-cache.ts';
import { MachineConnections } from '../../controllers/machine-connections.ts';
import { MachineReconciler } from '../../controllers/machine-controller.ts';
import { systemClock } from '../../controllers/runtime/clock.ts';
import { EventRecorder } from '../../controllers/runtime/events.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { StorageTargetReconciler } from '../../controllers/storage-target-controller.ts';
import { TaskRunner } from '../../controllers/task-runner.ts';
import { silentLogger } from '../../metrics/log.ts';
import { eventually, startTestCluster } from '../controllers/cluster-fixture.ts';
import { REPO_ROOT } from '../helpers/run-bdr.ts';
import { TestBed } from '../testbed/index.ts';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/argocd');
const abort = new AbortController();
const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });

/** The object as the API server returns it, without the fields that change on every run. */
function recorded(obj: StorageTarget): unknown {
  const { name, namespace, generation } = obj.metadata as { name: string; namespace?: string; generation?: number };
  return { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name, ...(namespace ? { namespace } : {}), generation }, spec: obj.spec, status: obj.status };
}

const bed = new TestBed();
const tc = await startTestCluster();
const informers: Array<Informer<Machine> | Informer<StorageTarget> | Informer<Vector>> = [];
const connections = new MachineConnections(new KubeClient(tc.kubeConfig));
try {
  const pool = await bed.pool({ sizeMb: 256, mounted: true });
  const vault = await bed.machine('vault01');
  const client = new KubeClient(tc.kubeConfig);
  tc.apply(vault.secret);
  tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'vault01' }, spec: { connection: vault.machine.spec.connection, role: 'Storage', pools: [pool.name] } });
  const machines = new Informer<Machine>(tc.kubeConfig, client, resourceOf(machineKind), silentLogger);
  const targets = new Informer<StorageTarget>(tc.kubeConfig, client, resourceOf(storageTargetKind), silentLogger);
  const vectors = new Informer<Vector>(tc.kubeConfig, client, resourceOf(vectorKind), silentLogger);
  informers.push(machines, targets, vectors);
  await Promise.all(informers.map((i) => i.start()));
  const events = new EventRecorder(client, 'bdr', 'default', silentLogger);
  const clock = systemClock;
  const probe = new MachineReconciler({ client, machines, connections: new MachineConnections(client), events, clock });
  const reconciler = new StorageTargetReconciler({ client, targets, machines, vectors, connections, inventories: new InventoryCache(-1, clock), tasks: new TaskRunner(clock), events, clock });
  await eventually(() => machines.get('vault01'), 'Machine vault01 in the cache');
  await probe.reconcile('vault01', ctx('vault01'));
  await eventually(() => (machines.get('vault01')?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined), 'vault01 Ready in the cache');

  // A CapacityOK=False case is not recorded yet: a fresh 256 MB zfs-fuse pool stays below 1% allocated, so it
  // needs data written into the pool first.
  for (const [file, name, warningPercent] of [['storagetarget-offsite', 'offsite', 80]] as const) {
    const rv = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'StorageTarget',
      metadata: { name },
      spec: { machines: [{ name: 'vault01' }], parentDataset: `${pool.name}/replicas/${name}`, capacity: { warningPercent, criticalPercent: 95 } },
    }).metadata.resourceVersion;
    await eventually(() => (targets.get(name)?.metadata.resourceVersion === rv ? true : undefined), `StorageTarget ${name} in the cache`);
    await reconciler.reconcile(name, ctx(name));
    const obj = await client.get<StorageTarget>(resourceOf(storageTargetKind), name);
    if (!obj?.status) throw new Error(`StorageTarget ${name} has no status`);
    writeFileSync(join(FIXTURES, `${file}.json`), `${JSON.stringify(recorded(obj), null, 2)}\n`);
    process.stdout.write(`${file}: ${JSON.stringify(obj.status.conditions)}\n`);
  }
} finally {
  for (const i of informers) await i.stop();
  await connections.closeAll();
  await tc.stop();
  await bed.cleanup();
}
