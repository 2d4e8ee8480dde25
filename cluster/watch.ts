import type { ServerResponse } from 'node:http';
import { CRD_STORAGE_KEY } from './crd-registry.ts';
import { ApiError, gone } from './errors.ts';
import type { Faults } from './faults.ts';
import { apiVersionOf, present, type ResourceType } from './resources.ts';
import type { Store, StoreEvent } from './store.ts';
import { buildTable } from './table.ts';
import type { JsonObject, KubeObject } from './types.ts';

export interface WatchRequest {
  rt: ResourceType;
  namespace?: string;
  matches: (object: KubeObject) => boolean;
  resourceVersion?: string;
  allowBookmarks: boolean;
  timeoutSeconds?: number;
  table: boolean;
  sendInitialEvents: boolean;
}

interface ActiveWatch {
  res: ServerResponse;
  crdName?: string;
  close(abrupt: boolean): void;
}

/** Serves watch streams from the store's event history and live events. */
export class WatchHub {
  private readonly active = new Set<ActiveWatch>();

  constructor(
    private readonly store: Store,
    private readonly faults: Faults,
    private readonly bookmarkIntervalMs: number,
  ) {
    faults.attachWatchDropper((abrupt) => this.closeAll(abrupt));
    // A watch on a resource whose CRD is deleted ends, as kube-apiserver ends it; clients then see 404.
    store.subscribe((event) => {
      if (event.storageKey !== CRD_STORAGE_KEY || event.type !== 'DELETED') return;
      for (const w of [...this.active]) if (w.crdName === event.object.metadata.name) w.close(false);
    });
  }

  get size(): number {
    return this.active.size;
  }

  closeAll(abrupt = false): number {
    const n = this.active.size;
    for (const w of [...this.active]) w.close(abrupt);
    return n;
  }

  /** Starts a watch, or throws an ApiError the caller answers as a plain HTTP error. */
  serve(req: WatchRequest, res: ServerResponse): void {
    const { rt, store } = { rt: req.rt, store: this.store };
    const rvParam = req.resourceVersion ?? '';
    const forced = this.faults.takeExpire();
    const startRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (startRv !== undefined && !Number.isFinite(startRv)) throw new ApiError(400, 'BadRequest', `invalid resource version: ${rvParam}`);
    const expiredMessage = `too old resource version: ${rvParam || '0'} (${store.resourceVersion})`;
    if (forced === 'http') throw gone(expiredMessage);

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    // Without this Node holds the headers until the first event, and client-node's informer start hangs.
    res.flushHeaders();

    const render = (object: KubeObject): JsonObject => {
      return req.table ? buildTable(rt.table, [object], object.metadata.resourceVersion ?? '') : present(rt, object);
    };
    let corked = false;
    const send = (type: string, object: JsonObject): void => {
      // Events written in one tick go out in one chunk instead of one syscall each.
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(() => {
          corked = false;
          res.uncork();
        });
      }
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const sendError = (message: string): void => {
      send('ERROR', new ApiError(410, 'Expired', message).toStatus());
      res.end();
    };
    if (forced === 'stream') {
      sendError(expiredMessage);
      return;
    }
    const replay = startRv === undefined ? [] : store.eventsSince(startRv);
    if (replay === undefined) {
      sendError(expiredMessage);
      return;
    }

    const deliver = (event: StoreEvent): void => {
      if (event.storageKey !== rt.storageKey) return;
      const inScope = (o: KubeObject | undefined): boolean =>
        o !== undefined && (req.namespace === undefined || o.metadata.namespace === req.namespace) && req.matches(o);
      const now = inScope(event.object);
      const before = event.type !== 'ADDED' && inScope(event.previous);
      let type: string | undefined;
      if (event.type === 'ADDED') type = now ? 'ADDED' : undefined;
      else if (event.type === 'DELETED') type = now || before ? 'DELETED' : undefined;
      else if (now && before) type = 'MODIFIED';
      else if (now) type = 'ADDED';
      else if (before) type = 'DELETED';
      if (type) send(type, render(event.object));
    };
    const bookmark = (annotations?: Record<string, string>): void => {
      const metadata: JsonObject = { resourceVersion: String(store.resourceVersion) };
      if (annotations) metadata.annotations = annotations;
      send('BOOKMARK', { kind: rt.kind, apiVersion: apiVersionOf(rt), metadata });
    };

    if (startRv === undefined) {
      const current = store.list(rt.storageKey, req.namespace).filter(req.matches);
      for (const object of current) send('ADDED', render(object));
      if (req.sendInitialEvents && req.allowBookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else {
      for (const event of replay) deliver(event);
    }
    const unsubscribe = store.subscribe(deliver);
    const timers: NodeJS.Timeout[] = [];
    const watch: ActiveWatch = {
      res,
      crdName: rt.crdName,
      close: (abrupt) => {
        cleanup();
        if (abrupt) res.socket?.destroy();
        else res.end();
      },
    };
    const cleanup = (): void => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      this.active.delete(watch);
    };
    this.active.add(watch);
    res.on('close', cleanup);
    if (req.timeoutSeconds && req.timeoutSeconds > 0) timers.push(setTimeout(() => watch.close(false), req.timeoutSeconds * 1000));
    if (req.allowBookmarks) timers.push(setInterval(() => bookmark(), this.bookmarkIntervalMs));
  }
}
