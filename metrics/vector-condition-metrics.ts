/**
 * Per-vector condition gauges, read at scrape time from the Vectors in the informer cache: what `kubectl get
 * vector` shows is what Prometheus sees, and a restart cannot freeze a stale value. Stalled is the vector that
 * needs a human (a diverged target, a refused pairing); its message says what to do.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Vector } from '../api/types.ts';
import { isTrue } from '../controllers/runtime/conditions.ts';

export function registerVectorConditionMetrics(registry: Registry, vectors: () => readonly Vector[]): void {
  const gauge = (name: string, help: string, type: string) =>
    new Gauge({
      name,
      help,
      labelNames: ['namespace', 'name'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const v of vectors()) this.set({ namespace: v.metadata.namespace ?? 'default', name: v.metadata.name }, isTrue(v.status?.conditions, type) ? 1 : 0);
      },
    });
  gauge('bdr_vector_stalled', 'Whether the vector is Stalled (1: it needs a human, its Stalled condition says why) or not (0)', 'Stalled');
  gauge('bdr_vector_ready', 'Whether the vector is Ready (1) or not (0)', 'Ready');
}
