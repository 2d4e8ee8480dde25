/**
 * The RetentionPolicy controller: checks the policy (what a schema cannot) and reports who uses it, so that
 * `kubectl get retentionpolicies -o yaml` answers "what breaks if I change this?".
 */
import { retentionPolicyKind } from '../api/kinds/index.ts';
import type { Dataset, RetentionPolicy, RetentionPolicyStatus, Vector } from '../api/types.ts';
import { validateRetentionPolicy } from '../planning/retention.ts';
import { policyRules } from './dataset-snapshots.ts';
import type { Clock } from './runtime/clock.ts';
import { summarize } from './runtime/conditions.ts';
import type { Reconciler, ReconcileResult } from './runtime/controller.ts';
import type { Informer } from './runtime/informer.ts';
import { resourceOf, type KubeClient } from './runtime/kube.ts';
import { writeStatus } from './runtime/status.ts';

const POLICY = resourceOf(retentionPolicyKind);

export interface RetentionPolicyControllerDeps {
  client: KubeClient;
  policies: Informer<RetentionPolicy>;
  datasets: Informer<Dataset>;
  vectors?: Informer<Vector>;
  clock: Clock;
}

export class RetentionPolicyReconciler implements Reconciler {
  constructor(private readonly deps: RetentionPolicyControllerDeps) {}

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const policy = this.deps.policies.get(key);
    if (!policy) return;
    const ns = policy.metadata.namespace ?? 'default';
    const name = policy.metadata.name;
    const generation = policy.metadata.generation ?? 0;
    const datasets = this.deps.datasets
      .list()
      .filter((d) => (d.metadata.namespace ?? 'default') === ns && d.spec.retentionPolicyRef.name === name)
      .map((d) => d.metadata.name)
      .sort();
    const allVectors = this.deps.vectors?.list() ?? [];
    const allDatasets = this.deps.datasets.list();
    const vectors = allVectors
      .filter((v) => (v.metadata.namespace ?? 'default') === ns && vectorRetentionPolicy(v, allVectors, allDatasets) === name)
      .map((v) => v.metadata.name)
      .sort();
    const problems = validateRetentionPolicy(policyRules(policy));
    const status: RetentionPolicyStatus = { ...(policy.status ?? {}), usedBy: { datasets, vectors }, observedGeneration: generation };
    status.conditions = summarize(
      policy.status?.conditions,
      problems.length > 0
        ? { state: 'stalled', reason: 'InvalidSpec', message: problems.join('; ') }
        : { state: 'ready', reason: 'Succeeded', message: `used by ${datasets.length} dataset(s) and ${vectors.length} vector(s)` },
      generation,
      new Date(this.deps.clock.now()),
    );
    await writeStatus(this.deps.client, POLICY, policy, status);
  }
}

/**
 * The RetentionPolicy a Vector applies on its target: its own retentionPolicyRef, else its source's (the source
 * Dataset's policy, or, for a chain of vectors, the policy of the Vector it mirrors, and so on). Undefined when
 * the chain breaks (a missing source) or loops.
 */
export function vectorRetentionPolicy(vector: Vector, vectors: readonly Vector[], datasets: readonly Dataset[]): string | undefined {
  const ns = vector.metadata.namespace ?? 'default';
  const seen = new Set<string>();
  let cur: Vector | undefined = vector;
  while (cur && !seen.has(cur.metadata.name)) {
    seen.add(cur.metadata.name);
    if (cur.spec.retentionPolicyRef) return cur.spec.retentionPolicyRef.name;
    const source: Vector['spec']['source'] = cur.spec.source;
    if (source.datasetRef) {
      const dsName = source.datasetRef.name;
      return datasets.find((d) => (d.metadata.namespace ?? 'default') === ns && d.metadata.name === dsName)?.spec.retentionPolicyRef.name;
    }
    const next: string | undefined = source.vectorRef?.name;
    cur = vectors.find((v) => (v.metadata.namespace ?? 'default') === ns && v.metadata.name === next);
  }
  return undefined;
}
