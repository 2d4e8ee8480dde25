/**
 * The controller runtime's metrics, under controller-runtime's names so that existing kubebuilder dashboards
 * and alerts work unchanged. Histograms, not summaries, so they aggregate across replicas.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The `result` label values of controller_runtime_reconcile_total (controller-runtime's; `requeue`: a conflict). */
export const RECONCILE_RESULTS = ['success', 'error', 'requeue', 'requeue_after'] as const;
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class RuntimeMetrics {
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly activeWorkers: Gauge<'controller'>;
  readonly maxWorkers: Gauge<'controller'>;
  readonly depth: Gauge<'name' | 'controller'>;
  readonly adds: Counter<'name' | 'controller'>;
  readonly retries: Counter<'name' | 'controller'>;
  readonly queueDuration: Histogram<'name' | 'controller'>;
  readonly workDuration: Histogram<'name' | 'controller'>;
  readonly unfinishedWork: Gauge<'name' | 'controller'>;
  readonly longestRunning: Gauge<'name' | 'controller'>;
  readonly leader: Gauge<'name'>;
  private readonly queues = new Map<string, () => ReadonlyMap<string, number>>();

  constructor(readonly registry: Registry, private readonly now: () => number = Date.now) {
    const registers = [registry];
    this.reconcileTotal = new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.activeWorkers = new Gauge({
      name: 'controller_runtime_active_workers',
      help: 'Number of currently used workers per controller',
      labelNames: ['controller'],
      registers,
    });
    this.maxWorkers = new Gauge({
      name: 'controller_runtime_max_concurrent_reconciles',
      help: 'Maximum number of concurrent reconciles per controller',
      labelNames: ['controller'],
      registers,
    });
    const q = ['name', 'controller'] as const;
    this.depth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames: q, registers });
    this.adds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames: q, registers });
    this.retries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames: q, registers });
    this.queueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames: q,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.workDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes',
      labelNames: q,
      buckets: DURATION_BUCKETS,
      registers,
    });
    // Computed at scrape time from the queues' processing sets, so they are right even while a reconcile hangs.
    const queues = this.queues;
    const nowFn = this.now;
    this.unfinishedWork = new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: 'How many seconds of work has been done that is in progress and has not been observed by work_duration',
      labelNames: q,
      registers,
      collect() {
        for (const [name, processing] of queues) {
          const now = nowFn();
          let total = 0;
          for (const since of processing().values()) total += (now - since) / 1000;
          this.set({ name, controller: name }, total);
        }
      },
    });
    this.longestRunning = new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running',
      labelNames: q,
      registers,
      collect() {
        for (const [name, processing] of queues) {
          const now = nowFn();
          let longest = 0;
          for (const since of processing().values()) longest = Math.max(longest, (now - since) / 1000);
          this.set({ name, controller: name }, longest);
        }
      },
    });
    this.leader = new Gauge({
      name: 'leader_election_master_status',
      help: 'Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master',
      labelNames: ['name'],
      registers,
    });
  }

  /** Hooks a controller's queue into the workqueue metrics. */
  watchQueue(controller: string, processing: () => ReadonlyMap<string, number>) {
    this.queues.set(controller, processing);
    const labels = { name: controller, controller };
    // Every series exists from the start at 0, as controller-runtime does: rate() and increase() then see the
    // first error, and a dashboard shows 0 rather than "no data".
    for (const result of RECONCILE_RESULTS) this.reconcileTotal.inc({ controller, result }, 0);
    this.reconcileErrors.inc({ controller }, 0);
    this.adds.inc(labels, 0);
    this.retries.inc(labels, 0);
    this.depth.set(labels, 0);
    return {
      depth: (d: number) => this.depth.set(labels, d),
      added: () => this.adds.inc(labels),
      retried: () => this.retries.inc(labels),
      waited: (s: number) => this.queueDuration.observe(labels, s),
      worked: (s: number) => this.workDuration.observe(labels, s),
    };
  }
}
