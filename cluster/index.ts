import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from './crd-registry.ts';
import { CREDENTIALS_FILE, loadCredentials } from './credentials.ts';
import { ApiError } from './errors.ts';
import { Faults } from './faults.ts';
import { ApiHandler, type RequestLogEntry } from './http.ts';
import { kubeconfigYaml } from './kubeconfig.ts';
import { OpenApi } from './openapi.ts';
import { DiskPersistence } from './persistence.ts';
import { makePrivateDir, restrictTree, writePrivateFileAtomic } from './private-files.ts';
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
  /** `https://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** A kubeconfig (0600) holding the URL, the CA and the token: KubeConfig.loadFromFile and kubectl need nothing else. */
  kubeconfigPath: string;
  /** The bearer token every request needs, except GET of /healthz, /livez, /readyz and /version. */
  token: string;
  /** PEM of the CA that signed the serving certificate. */
  ca: string;
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

/**
 * Starts an embedded Kubernetes API server on loopback: HTTPS with a self-signed CA, and a bearer token,
 * both written into the kubeconfig (see README "Security").
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  if (options.dataDir) {
    makePrivateDir(options.dataDir);
    // Directories written by versions before the token existed were world-readable.
    restrictTree(join(options.dataDir, 'store'));
    restrictTree(join(options.dataDir, 'kubeconfig'));
    restrictTree(join(options.dataDir, CREDENTIALS_FILE));
  }
  const registry = new Registry();
  const persistence = options.dataDir ? new DiskPersistence(join(options.dataDir, 'store')) : undefined;
  const store = new Store(registry, { persistence, historySize: options.watchHistory });
  let credentials;
  try {
    // Only under the store's lock: a second server on the directory must not renew what the first one serves.
    credentials = await loadCredentials(options.dataDir);
  } catch (err) {
    store.close();
    throw err;
  }
  const faults = new Faults();
  const watches = new WatchHub(store, faults, options.bookmarkIntervalMs ?? 5000);
  const openapi = new OpenApi(registry);
  let address = '127.0.0.1:0';
  const handler = new ApiHandler({ registry, store, openapi, watches, faults, serverAddress: () => address, token: credentials.token, onRequest: options.onRequest });

  const sockets = new Set<Duplex>();
  const server: Server = createServer({ key: credentials.key, cert: credentials.cert }, (req, res) => {
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
  const url = `https://${address}`;

  let tempDir: string | undefined;
  let kubeconfigPath = options.kubeconfigPath;
  if (!kubeconfigPath) {
    if (options.dataDir) kubeconfigPath = join(options.dataDir, 'kubeconfig');
    else {
      tempDir = mkdtempSync(join(tmpdir(), 'bdr-cluster-'));
      kubeconfigPath = join(tempDir, 'kubeconfig');
    }
  }
  writePrivateFileAtomic(kubeconfigPath, kubeconfigYaml(url, credentials));

  let stopped: Promise<void> | undefined;
  return {
    url,
    port,
    kubeconfigPath,
    token: credentials.token,
    ca: credentials.ca,
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
