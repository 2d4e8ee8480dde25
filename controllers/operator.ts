/**
 * Wires the runtime together: informers, controllers, leader election, metrics endpoint. `bdr up` and `bdr run`
 * both start the controllers through here, so standalone mode and a real cluster run the same code.
 */
import { hostname } from 'node:os';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { datasetKind, machineKind, retentionPolicyKind, storageTargetKind, vectorKind } from '../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, StorageTarget, Vector } from '../api/types.ts';
import { registerBuildInfo } from '../metrics/build-info.ts';
import { registerDatasetMetrics } from '../metrics/dataset-metrics.ts';
import { createLogger } from '../metrics/log.ts';
import { MachineMetrics, type MachineSample } from '../metrics/machine-metrics.ts';
import { RuntimeMetrics } from '../metrics/runtime-metrics.ts';
import { registerVectorMetrics } from '../metrics/vector-metrics.ts';
import { registerStorageTargetMetrics } from '../metrics/storage-target-metrics.ts';
import { registerVectorConditionMetrics } from '../metrics/vector-condition-metrics.ts';
import { serveMetrics, type MetricsServer } from '../metrics/server.ts';
import { MachineConnections } from './machine-connections.ts';
import { DatasetReconciler } from './dataset-controller.ts';
import { InventoryCache } from './inventory-cache.ts';
import { MachineReconciler } from './machine-controller.ts';
import { RetentionPolicyReconciler } from './retention-policy-controller.ts';
import { StorageTargetReconciler } from './storage-target-controller.ts';
import { machineSlots, TaskRunner } from './task-runner.ts';
import { VectorReconciler } from './vector-controller.ts';
import { VectorKeyStore } from './vector-keys.ts';
import { VectorSweepReconciler } from './vector-sweep.ts';
import { VectorSync } from './vector-sync.ts';
import type { Operator, OperatorOptions } from './operator-options.ts';
import { systemClock } from './runtime/clock.ts';
import { Controller } from './runtime/controller.ts';
import { EventRecorder } from './runtime/events.ts';
import { Informer, objectKey } from './runtime/informer.ts';
import { KubeClient, NAMESPACES, resourceOf, type KubeObject } from './runtime/kube.ts';
import { DEFAULT_LEASE, LeaderElector } from './runtime/leader.ts';

export type { Operator, OperatorOptions } from './operator-options.ts';

export const LEASE_NAME = 'bdr-controller';
/** Kubernetes puts events about cluster-scoped objects (Nodes) in "default"; so does bdr for Machines. */
const CLUSTER_EVENTS_NAMESPACE = 'default';

export async function startOperator(options: OperatorOptions): Promise<Operator> {
  const clock = options.clock ?? systemClock;
  const log = options.log ?? createLogger();
  const namespace = options.namespace ?? 'bdr-system';
  const identity = options.identity ?? `${hostname()}-${process.pid}`;
  const client = new KubeClient(options.kubeConfig);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerBuildInfo(registry);
  const runtimeMetrics = new RuntimeMetrics(registry, () => clock.now());

  const machines = new Informer<Machine>(options.kubeConfig, client, resourceOf(machineKind), log, clock);
  const datasets = new Informer<Dataset>(options.kubeConfig, client, resourceOf(datasetKind), log, clock);
  const policies = new Informer<RetentionPolicy>(options.kubeConfig, client, resourceOf(retentionPolicyKind), log, clock);
  const vectors = new Informer<Vector>(options.kubeConfig, client, resourceOf(vectorKind), log, clock);
  const storageTargets = new Informer<StorageTarget>(options.kubeConfig, client, resourceOf(storageTargetKind), log, clock);
  // Only labels are read, for Machines whose allowedNamespaces selects namespaces by label.
  const namespaces = new Informer<KubeObject>(options.kubeConfig, client, NAMESPACES, log, clock);
  const namespaceLabels = (ns: string) => namespaces.get(ns)?.metadata.labels ?? {};
  const informers = [machines, datasets, policies, vectors, storageTargets, namespaces];
  const connections = new MachineConnections(client, namespace);
  const events = new EventRecorder(client, 'bdr', CLUSTER_EVENTS_NAMESPACE, log, clock);
  // Gauges read the reconciler's probe results at scrape time, after both exist.
  // Only the leader reports objects: a standby's samples would be stale, and every alert would fire once per replica.
  const machineMetrics: MachineMetrics = new MachineMetrics(registry, (): Iterable<MachineSample> => (leading ? machineReconciler.probeSamples() : []));
  const machineReconciler: MachineReconciler = new MachineReconciler({
    client,
    machines,
    connections,
    events,
    clock,
    metrics: machineMetrics,
    ...(options.probeIntervalMs !== undefined ? { probeIntervalMs: options.probeIntervalMs } : {}),
  });

  const datasetMetrics = registerDatasetMetrics(registry, () => (leading ? datasets.list() : []), () => clock.now());
  registerStorageTargetMetrics(registry, () => (leading ? storageTargets.list() : []));
  registerVectorConditionMetrics(registry, () => (leading ? vectors.list() : []));
  const tasks = options.tasks ?? new TaskRunner(clock);
  // spec.slots reaches the task runner as soon as the Machine changes, probed or not.
  machines.on((event, m) => (event === 'delete' ? tasks.forgetSlots(m.metadata.name) : tasks.setSlots(m.metadata.name, machineSlots(m))));
  // The totals are read at scrape time, after the sync exists; the sync observes its durations as it runs.
  const vectorMetrics = registerVectorMetrics(registry, () => (leading ? vectors.list() : []), () => clock.now(), () => (leading ? vectorSync.metricsTotals() : []));
  const vectorSync: VectorSync = new VectorSync({ client, vectors, datasets, policies, connections, tasks, events, clock, metrics: vectorMetrics });
  const vectorKeys = new VectorKeyStore(client, namespace, clock);
  const inventories = new InventoryCache(2_000, clock);
  const policyReconciler = new RetentionPolicyReconciler({ client, policies, datasets, vectors, clock });

  // Controllers live for one term of leadership; a new term starts from a fresh queue and a full resync.
  let controllers: Array<{ start(): void; stop(deadlineMs?: number): Promise<void>; isIdle(): boolean }> = [];
  const startControllers = () => {
    const machineController = new Controller({ name: 'machine', informer: machines, reconciler: machineReconciler, workers: 4, metrics: runtimeMetrics, clock, log });
    const datasetReconciler = new DatasetReconciler({
      client,
      datasets,
      policies,
      machines,
      storageTargets,
      connections,
      inventories,
      tasks,
      events,
      clock,
      namespaceLabels,
      enqueue: (key) => datasetController.enqueue(key),
      // A vector's incremental base is never pruned by local retention (its hold would refuse it anyway).
      protectedSnapshots: (machine) => vectorSync.protectedSnapshots(machine),
      metrics: datasetMetrics,
    });
    const datasetController: Controller<Dataset> = new Controller({ name: 'dataset', informer: datasets, reconciler: datasetReconciler, workers: 4, metrics: runtimeMetrics, clock, log });
    datasetController.watch(machines, (m) => datasets.list().filter((d) => d.spec.machineRef.name === m.metadata.name).map(objectKey));
    datasetController.watch(namespaces, (n) => datasets.list().filter((d) => d.metadata.namespace === n.metadata.name).map(objectKey));
    datasetController.watch(policies, (p) =>
      datasets
        .list()
        .filter((d) => d.metadata.namespace === p.metadata.namespace && d.spec.retentionPolicyRef.name === p.metadata.name)
        .map(objectKey),
    );
    const policyController = new Controller({ name: 'retentionpolicy', informer: policies, reconciler: policyReconciler, workers: 1, metrics: runtimeMetrics, clock, log });
    // Every policy of the namespace: the one an object left must drop it from usedBy too.
    const policiesIn = (ns: string | undefined) => policies.list().filter((p) => p.metadata.namespace === (ns ?? 'default')).map(objectKey);
    policyController.watch(datasets, (d) => policiesIn(d.metadata.namespace));
    policyController.watch(vectors, (v) => policiesIn(v.metadata.namespace));
    const targetReconciler = new StorageTargetReconciler({ client, targets: storageTargets, machines, vectors, connections, inventories, tasks, events, clock });
    const targetController = new Controller({ name: 'storagetarget', informer: storageTargets, reconciler: targetReconciler, workers: 2, metrics: runtimeMetrics, clock, log });
    targetController.watch(machines, (m) => storageTargets.list().filter((t) => t.spec.machines.some((e) => e.name === m.metadata.name)).map(objectKey));
    // A vector that moved between targets must update both counts; the event carries only its new state.
    targetController.watch(vectors, () => storageTargets.list().map(objectKey));
    const vectorReconciler = new VectorReconciler({ client, vectors, datasets, machines, storageTargets, connections, keys: vectorKeys, events, clock, tasks, namespaceLabels, sync: vectorSync });
    const vectorController: Controller<Vector> = new Controller({ name: 'vector', informer: vectors, reconciler: vectorReconciler, workers: 4, metrics: runtimeMetrics, clock, log });
    const vectorsOf = (match: (v: Vector) => boolean) => vectors.list().filter(match).map(objectKey);
    const onTarget = (v: Vector, machine: string) =>
      v.spec.target.machineRef?.name === machine ||
      (storageTargets.get(v.spec.target.storageTargetRef?.name ?? '')?.spec.machines.some((m) => m.name === machine) ?? false);
    // A vector waiting for a machine, a target or its source is retried when that changes.
    vectorController.watch(storageTargets, (st) => vectorsOf((v) => v.spec.target.storageTargetRef?.name === st.metadata.name));
    vectorController.watch(machines, (m) => vectorsOf((v) => onTarget(v, m.metadata.name) || vectorReconciler.primaryOf(v)?.name === m.metadata.name));
    vectorController.watch(datasets, (d) => vectorsOf((v) => v.metadata.namespace === d.metadata.namespace && v.spec.source.datasetRef?.name === d.metadata.name));
    vectorController.watch(namespaces, (n) => vectorsOf((v) => v.metadata.namespace === n.metadata.name));
    vectorController.watch(vectors, (src) => vectorsOf((v) => v.metadata.namespace === src.metadata.namespace && v.spec.source.vectorRef?.name === src.metadata.name));
    // Drift of vector keys and files, per machine, every probe interval and at every start.
    const sweep = new VectorSweepReconciler({
      machines,
      vectors,
      connections,
      keys: vectorKeys,
      events,
      appliedOf: (v) => vectorReconciler.appliedOf(v),
      isBusy: (k) => vectorReconciler.isBusy(k),
      enqueueVector: (k) => vectorController.enqueue(k),
      clock,
      ...(options.probeIntervalMs !== undefined ? { intervalMs: options.probeIntervalMs } : {}),
    });
    const sweepController = new Controller({ name: 'vectorsweep', informer: machines, reconciler: sweep, workers: 2, metrics: runtimeMetrics, clock, log });
    controllers = [machineController, datasetController, policyController, targetController, vectorController, sweepController];
    for (const c of controllers) c.start();
  };
  const stopControllers = async (deadlineMs?: number) => {
    const running = controllers;
    controllers = [];
    await Promise.all(running.map((c) => c.stop(deadlineMs)));
  };

  let leading = false;
  const electionEnabled = options.leaderElection !== false;
  const electionConfig = typeof options.leaderElection === 'object' ? options.leaderElection : {};
  const elector = electionEnabled
    ? new LeaderElector(
        client,
        {
          namespace,
          leaseName: electionConfig.leaseName ?? LEASE_NAME,
          identity,
          leaseDurationMs: electionConfig.leaseDurationMs ?? DEFAULT_LEASE.leaseDurationMs,
          renewDeadlineMs: electionConfig.renewDeadlineMs ?? DEFAULT_LEASE.renewDeadlineMs,
          retryPeriodMs: electionConfig.retryPeriodMs ?? DEFAULT_LEASE.retryPeriodMs,
        },
        {
          onStartedLeading: () => {
            leading = true;
            runtimeMetrics.leader.set({ name: LEASE_NAME }, 1);
            startControllers();
          },
          onStoppedLeading: () => {
            leading = false;
            runtimeMetrics.leader.set({ name: LEASE_NAME }, 0);
            void stopControllers();
          },
        },
        log,
        clock,
      )
    : undefined;
  if (elector) runtimeMetrics.leader.set({ name: LEASE_NAME }, 0);

  let server: MetricsServer | undefined;
  if (options.metrics !== false) {
    const m = options.metrics ?? { port: 9464 };
    server = await serveMetrics(registry, { host: m.host, port: m.port, ready: () => informers.every((i) => i.hasSynced()) });
  }

  const ready = (async () => {
    await Promise.all(informers.map((i) => i.start()));
    if (elector) elector.start();
    else {
      leading = true;
      runtimeMetrics.leader.set({ name: LEASE_NAME }, 1);
      startControllers();
    }
  })();

  let stopping: Promise<void> | undefined;
  return {
    ready,
    ...(server ? { metricsUrl: server.url } : {}),
    isLeader: () => leading,
    waitIdle: async (timeoutMs = 60_000) => {
      await ready;
      const deadline = clock.now() + timeoutMs;
      // Idle must hold twice in a row: a reconcile that just finished may be about to queue its dependents.
      let quiet = 0;
      while (clock.now() < deadline) {
        quiet = controllers.length > 0 && controllers.every((c) => c.isIdle()) ? quiet + 1 : 0;
        if (quiet >= 2) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    },
    stop: (deadlineMs = 10_000) =>
      (stopping ??= (async () => {
        await elector?.stop();
        await stopControllers(deadlineMs);
        await Promise.all(informers.map((i) => i.stop()));
        await connections.closeAll();
        await server?.close();
        log.info('operator stopped', { identity });
      })()),
  };
}
