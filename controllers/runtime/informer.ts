/**
 * An informer that never gives up. client-node's ListWatch keeps a cache and relists on 410, but stops for good
 * on any other watch error; this wrapper restarts it with backoff. It also compares uids, because ListWatch
 * reports a delete followed by a re-create under the same name as an update.
 */
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../metrics/log.ts';
import { backoffDelay } from './backoff.ts';
import { systemClock, type Clock, type Timer } from './clock.ts';
import { apiPath, type KubeClient, type KubeObject, type ResourceType } from './kube.ts';

export type InformerEvent = 'add' | 'update' | 'delete' | 'recreate';
export type InformerHandler<T> = (event: InformerEvent, obj: T) => void;

export const objectKey = (obj: KubeObject): string =>
  obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;

export function splitKey(key: string): { namespace?: string; name: string } {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

export class Informer<T extends KubeObject> {
  // client-node types metadata with Date fields it never actually produces from JSON; the cache holds what the
  // API server sent, which is T.
  private listWatch: ListWatch<KubernetesObject> | undefined;
  private readonly uids = new Map<string, string>();
  private readonly handlers: Array<InformerHandler<T>> = [];
  private failures = 0;
  private restartTimer: Timer | undefined;
  private stopped = false;
  private synced = false;

  constructor(
    private readonly config: KubeConfig,
    private readonly client: KubeClient,
    readonly resource: ResourceType,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Subscribes to changes; returns the unsubscribe function. */
  on(handler: InformerHandler<T>): () => void {
    this.handlers.push(handler);
    return () => {
      const i = this.handlers.indexOf(handler);
      if (i >= 0) this.handlers.splice(i, 1);
    };
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves after the first successful list; later failures restart the watch in the background. */
  async start(): Promise<void> {
    const listFn = async () => (await this.client.list(this.resource)) as unknown as KubernetesListObject<KubernetesObject>;
    const lw = new ListWatch<KubernetesObject>(apiPath(this.resource), new Watch(this.config), listFn, false);
    this.listWatch = lw;
    lw.on('add', (o) => this.dispatch('add', o as unknown as T));
    lw.on('update', (o) => this.dispatch('update', o as unknown as T));
    lw.on('delete', (o) => this.dispatch('delete', o as unknown as T));
    lw.on('error', (err) => this.onError(err));
    lw.on('connect', () => {
      this.failures = 0;
    });
    for (;;) {
      try {
        await lw.start();
        this.synced = true;
        return;
      } catch (err) {
        if (this.stopped) return;
        this.failures++;
        const delay = backoffDelay(this.failures, { baseMs: 200, capMs: 30_000 });
        this.log.warn('initial list failed; retrying', { resource: this.resource.plural, error: err as Error, retryInMs: delay });
        await new Promise<void>((resolve) => this.clock.setTimeout(resolve, delay));
        if (this.stopped) return;
      }
    }
  }

  list(): T[] {
    return [...(this.listWatch?.list() ?? [])] as unknown as T[];
  }

  get(key: string): T | undefined {
    const { namespace, name } = splitKey(key);
    return this.listWatch?.get(name, namespace) as unknown as T | undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) this.clock.clearTimeout(this.restartTimer);
    await this.listWatch?.stop();
  }

  private dispatch(event: Exclude<InformerEvent, 'recreate'>, obj: T): void {
    const key = objectKey(obj);
    let kind: InformerEvent = event;
    const uid = obj.metadata.uid ?? '';
    if (event === 'delete') {
      this.uids.delete(key);
    } else {
      const previous = this.uids.get(key);
      if (previous !== undefined && previous !== uid) kind = 'recreate';
      this.uids.set(key, uid);
    }
    for (const h of this.handlers) h(kind, obj);
  }

  private onError(err: unknown): void {
    if (this.stopped) return;
    this.failures++;
    const delay = backoffDelay(this.failures, { baseMs: 200, capMs: 30_000 });
    this.log.warn('watch failed; restarting', { resource: this.resource.plural, error: err as Error, retryInMs: delay });
    this.restartTimer = this.clock.setTimeout(() => {
      if (this.stopped || !this.listWatch) return;
      this.listWatch.start().catch((e: unknown) => this.onError(e));
    }, delay);
  }
}
