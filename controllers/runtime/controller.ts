/**
 * A level-based controller: informer events become keys in a work queue; workers reconcile one key at a time,
 * never the same key twice at once; errors back off per key; a result may ask to come back later. The
 * reconciler gets a key, never an event payload (controller-runtime's contract), so it always acts on the
 * current state from the cache.
 */
import { describeApiError } from '../../api/api-errors.ts';
import type { Logger } from '../../metrics/log.ts';
import type { RuntimeMetrics } from '../../metrics/runtime-metrics.ts';
import { systemClock, type Clock } from './clock.ts';
import type { Informer } from './informer.ts';
import { isConflict, type KubeObject } from './kube.ts';
import { WorkQueue } from './workqueue.ts';
import { objectKey } from './informer.ts';

/** Conflicts on one key in a row that are retried quietly before they are logged as failures. */
const CONFLICTS_BEFORE_WARNING = 3;

export interface ReconcileResult {
  /** Come back after this long even if nothing changes (schedules, probes). */
  requeueAfterMs?: number;
}

/** An error retrying cannot fix (invalid spec): logged, not retried until the object changes. */
export class TerminalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TerminalError';
  }
}

export interface ReconcileContext {
  key: string;
  log: Logger;
  /** Aborted when the operator stops or loses leadership. */
  signal: AbortSignal;
}

export interface Reconciler {
  reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void>;
}

export interface ControllerOptions<T extends KubeObject> {
  name: string;
  informer: Informer<T>;
  reconciler: Reconciler;
  workers?: number;
  metrics?: RuntimeMetrics;
  clock?: Clock;
  log: Logger;
}

export class Controller<T extends KubeObject> {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly workers: number;
  private readonly clock: Clock;
  private running: Array<Promise<void>> = [];
  private abort = new AbortController();
  private started = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly options: ControllerOptions<T>) {
    this.name = options.name;
    this.workers = options.workers ?? 2;
    this.clock = options.clock ?? systemClock;
    const hooks = options.metrics?.watchQueue(this.name, () => this.queue.processingSince());
    this.queue = new WorkQueue(this.clock, undefined, hooks);
    options.metrics?.maxWorkers.set({ controller: this.name }, this.workers);
    this.unsubscribe.push(options.informer.on((_event, obj) => this.queue.add(objectKey(obj))));
  }

  /** Also reconcile keys of this controller when another kind changes (e.g. a Dataset when its Machine does). */
  watch<U extends KubeObject>(informer: Informer<U>, toKeys: (obj: U) => string[]): void {
    this.unsubscribe.push(
      informer.on((_event, obj) => {
        for (const key of toKeys(obj)) this.queue.add(key);
      }),
    );
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Nothing queued and nothing being reconciled (work scheduled for later does not count). */
  isIdle(): boolean {
    return this.queue.length === 0 && this.queue.processingSince().size === 0;
  }

  /** Starts the workers and queues every object in the cache, as a resync after an election. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const obj of this.options.informer.list()) this.queue.add(objectKey(obj));
    for (let i = 0; i < this.workers; i++) this.running.push(this.work());
  }

  /** Stops taking keys; running reconciles are aborted and awaited up to the deadline. */
  async stop(deadlineMs = 10_000): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    this.queue.shutDown();
    this.abort.abort(new Error(`controller ${this.name} stopping`));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(this.running),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
        timer.unref?.();
      }),
    ]);
    if (timer) clearTimeout(timer);
    this.running = [];
  }

  private async work(): Promise<void> {
    const { metrics, reconciler, log } = this.options;
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const started = this.clock.now();
      metrics?.activeWorkers.inc({ controller: this.name });
      try {
        const result = await reconciler.reconcile(key, { key, log: log.child({ controller: this.name, key }), signal: this.abort.signal });
        this.queue.forget(key);
        if (result?.requeueAfterMs !== undefined) {
          this.queue.addAfter(key, result.requeueAfterMs);
          metrics?.reconcileTotal.inc({ controller: this.name, result: 'requeue_after' });
        } else {
          metrics?.reconcileTotal.inc({ controller: this.name, result: 'success' });
        }
      } catch (err) {
        if (this.abort.signal.aborted) {
          // Stopping: the next leader starts from the current state; nothing to retry here.
        } else if (isConflict(err) && this.queue.failuresOf(key) < CONFLICTS_BEFORE_WARNING) {
          // The object changed since the cache showed it (a finalizer patch or an update lost a race): routine for
          // a controller, not a failure. Again from the fresh cache, quietly; conflicts that keep coming are warned of.
          const delay = this.queue.addRateLimited(key);
          metrics?.reconcileTotal.inc({ controller: this.name, result: 'requeue' });
          log.debug('object changed meanwhile; reconciling again', { controller: this.name, key, retryInMs: delay });
        } else if (err instanceof TerminalError) {
          this.queue.forget(key);
          metrics?.reconcileErrors.inc({ controller: this.name });
          metrics?.reconcileTotal.inc({ controller: this.name, result: 'error' });
          log.error('reconcile failed; not retrying until the object changes', { controller: this.name, key, error: describeApiError(err) });
        } else {
          const delay = this.queue.addRateLimited(key);
          metrics?.reconcileErrors.inc({ controller: this.name });
          metrics?.reconcileTotal.inc({ controller: this.name, result: 'error' });
          log.warn('reconcile failed; retrying', { controller: this.name, key, error: describeApiError(err), retryInMs: delay });
        }
      } finally {
        metrics?.activeWorkers.dec({ controller: this.name });
        metrics?.reconcileTime.observe({ controller: this.name }, (this.clock.now() - started) / 1000);
        this.queue.done(key);
      }
    }
  }
}
