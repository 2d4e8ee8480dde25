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
  // The operator's namespace, which manifests/ creates in a real cluster: its Secrets live there.
  cluster.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
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

export { eventually } from '../helpers/eventually.ts';
