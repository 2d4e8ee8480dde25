/**
 * A keyed work queue with the guarantees of client-go's: a key is queued at most once however often it is added
 * (deduplication), a key is never processed by two workers at once (a key added while processing is queued again
 * when the worker calls done), delayed adds keep the earliest due time, and failures back off per key.
 */
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.ts';
import { systemClock, type Clock, type Timer } from './clock.ts';

export interface WorkQueueHooks {
  depth?(depth: number): void;
  added?(): void;
  retried?(): void;
  /** Time a key waited in the queue before a worker took it. */
  waited?(seconds: number): void;
  /** Time a worker spent on a key. */
  worked?(seconds: number): void;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly dirty = new Set<string>();
  private readonly processing = new Map<string, number>();
  private readonly addedAt = new Map<string, number>();
  private readonly delayed = new Map<string, { due: number; timer: Timer }>();
  private readonly failures = new Map<string, number>();
  private waiters: Array<(key: string | undefined) => void> = [];
  private shuttingDown = false;

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly backoff: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly hooks: WorkQueueHooks = {},
  ) {}

  get length(): number {
    return this.queue.length;
  }

  /** Keys being processed now and since when (ms), for the longest-running-processor metric. */
  processingSince(): ReadonlyMap<string, number> {
    return this.processing;
  }

  add(key: string): void {
    if (this.shuttingDown) return;
    this.hooks.added?.();
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    this.addedAt.set(key, this.clock.now());
    if (this.processing.has(key)) return;
    this.push(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const due = this.clock.now() + delayMs;
    const existing = this.delayed.get(key);
    if (existing && existing.due <= due) return;
    if (existing) this.clock.clearTimeout(existing.timer);
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    this.delayed.set(key, { due, timer });
  }

  /** Re-queues a failed key after its backoff; the delay grows until forget(key). */
  addRateLimited(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    this.hooks.retried?.();
    const delay = backoffDelay(n, this.backoff);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue shuts down. */
  get(): Promise<string | undefined> {
    const key = this.queue.shift();
    if (key !== undefined) return Promise.resolve(this.take(key));
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  done(key: string): void {
    const started = this.processing.get(key);
    this.processing.delete(key);
    if (started !== undefined) this.hooks.worked?.((this.clock.now() - started) / 1000);
    if (this.dirty.has(key)) this.push(key);
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer);
    this.delayed.clear();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(undefined);
  }

  private push(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter(this.take(key));
    } else {
      this.queue.push(key);
      this.hooks.depth?.(this.queue.length);
    }
  }

  private take(key: string): string {
    this.dirty.delete(key);
    const now = this.clock.now();
    this.processing.set(key, now);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.hooks.waited?.((now - added) / 1000);
    this.hooks.depth?.(this.queue.length);
    return key;
  }
}
