import { mkdtempSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Registry } from './crd-registry.ts';
import { ApiError } from './errors.ts';
import { Faults } from './faults.ts';
import { ApiHandler, type RequestLogEntry } from './http.ts';
import { kubeconfigYaml } from './kubeconfig.ts';
import { OpenApi } from './openapi.ts';
import { DiskPersistence } from './persistence.ts';
import { apiVersionOf } from './resources.ts';
import { Store } from './store.ts';
import type { KubeObject } from './types.ts';
import { WatchHub } from './watch.ts';

export { ApiError } from './errors.ts';
export type { RequestLogEntry } from './http.ts';
export { Faults, type FaultFilter } from './faults.ts';
export type { KubeObject, ObjectMeta, Json, JsonObject } from './types.ts';

export interface ClusterOptions {
  /** TCP port on 127.0.0.1; 0 or unset picks a free one. */
  port?: number;
  /** Directory for durable state; without it the cluster lives in memory only. */
  dataDir?: string;
  /** Where to write the kubeconfig; defaults to `<dataDir>/kubeconfig`, or a fresh temporary directory. */
  kubeconfigPath?: string;
  /** How many past events a watch can resume from (default 20,000). */
  watchHistory?: number;
  /** How often watches that asked for bookmarks get one (default 5 s). */
  bookmarkIntervalMs?: number;
  /** Called for every request once its body is read: lets tests check what clients really send. */
  onRequest?: (entry: RequestLogEntry) => void;
}

export interface Cluster {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  kubeconfigPath: string;
  /** Test switches: failNext, delayNext, expireNextWatch, dropWatches, reset. */
  faults: Faults;
  /** The current global resourceVersion. */
  resourceVersion(): number;
  /**
   * Creates or replaces an object in-process (no HTTP), with the same validation and semantics as a
   * client's create/update: for seeding CRDs and fixtures. Throws ApiError.
   */
  apply(object: KubeObject): KubeObject;
  /** Stops serving, closes watches and persistence. Safe to call twice. */
  stop(): Promise<void>;
}

function writeFileAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

/** Starts an embedded Kubernetes API server on loopback. */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const registry = new Registry();
  const persistence = options.dataDir ? new DiskPersistence(join(options.dataDir, 'store')) : undefined;
  const store = new Store(registry, { persistence, historySize: options.watchHistory });
  const faults = new Faults();
  const watches = new WatchHub(store, faults, options.bookmarkIntervalMs ?? 5000);
  const openapi = new OpenApi(registry);
  let address = '127.0.0.1:0';
  const handler = new ApiHandler({ registry, store, openapi, watches, faults, serverAddress: () => address, onRequest: options.onRequest });

  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    void handler.handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    // Release the data directory, so that a retry on another port can use it.
    store.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  address = `127.0.0.1:${port}`;
  const url = `http://${address}`;

  let tempDir: string | undefined;
  let kubeconfigPath = options.kubeconfigPath;
  if (!kubeconfigPath) {
    if (options.dataDir) kubeconfigPath = join(options.dataDir, 'kubeconfig');
    else {
      tempDir = mkdtempSync(join(tmpdir(), 'bdr-cluster-'));
      kubeconfigPath = join(tempDir, 'kubeconfig');
    }
  }
  writeFileAtomic(kubeconfigPath, kubeconfigYaml(url));

  let stopped: Promise<void> | undefined;
  return {
    url,
    port,
    kubeconfigPath,
    faults,
    resourceVersion: () => store.resourceVersion,
    apply(object) {
      const rt = registry.byKind(object.apiVersion, object.kind);
      if (!rt) throw new ApiError(404, 'NotFound', `no resource type for ${object.apiVersion}, Kind=${object.kind}`);
      const ns = rt.namespaced ? (object.metadata.namespace ?? 'default') : undefined;
      const existing = store.get(rt.storageKey, ns, object.metadata.name ?? '');
      const body = { ...object, apiVersion: apiVersionOf(rt), metadata: { ...object.metadata } };
      delete body.metadata.resourceVersion;
      if (!existing) return store.create(rt, ns, body, { fieldValidation: 'Strict' }).object;
      return store.update(rt, ns, existing.metadata.name ?? '', body, { fieldValidation: 'Strict' }).object;
    },
    stop() {
      stopped ??= (async () => {
        watches.closeAll();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        for (const s of sockets) s.destroy();
        await closed;
        store.close();
        if (tempDir) rmSync(tempDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
