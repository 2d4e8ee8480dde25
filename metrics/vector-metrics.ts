/**
 * Per-vector gauges read at scrape time from the Vectors' status in the informer cache (as the dataset gauges
 * are), so an alert on an overdue key rotation sees what `kubectl get` shows.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Vector } from '../api/types.ts';

export function registerVectorMetrics(registry: Registry, vectors: () => readonly Vector[], now: () => number): void {
  new Gauge({
    name: 'bdr_vector_key_age_seconds',
    help: "Seconds since the vector's current SSH key was authorized on its storage machine",
    labelNames: ['namespace', 'name'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const v of vectors()) {
        const at = v.status?.pairing?.authorizedAt;
        if (!at) continue;
        this.set({ namespace: v.metadata.namespace ?? 'default', name: v.metadata.name }, Math.max(0, (now() - Date.parse(at)) / 1000));
      }
    },
  });
}
