import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { allCrdFiles } from '../../api/crd.ts';
import { startCluster, type Cluster, type KubeObject } from '../../cluster/index.ts';
import type { RequestLogEntry } from '../../cluster/http.ts';

export interface TestCluster {
  cluster: Cluster;
  kubeConfig: KubeConfig;
  requests: RequestLogEntry[];
  apply(obj: object): KubeObject;
  stop(): Promise<void>;
}

/** An embedded API server with bdr's CRDs installed and every request recorded. */
export async function startTestCluster(options: { dataDir?: string } = {}): Promise<TestCluster> {
  const requests: RequestLogEntry[] = [];
  const cluster = await startCluster({ ...options, onRequest: (e) => requests.push(e) });
  for (const text of allCrdFiles().values()) cluster.apply(parse(text) as KubeObject);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(cluster.kubeconfigPath);
  return {
    cluster,
    kubeConfig,
    requests,
    apply: (obj) => cluster.apply(obj as KubeObject),
    stop: () => cluster.stop(),
  };
}

/** Polls until `check` returns a value (not undefined), or fails after the timeout with the last state. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
