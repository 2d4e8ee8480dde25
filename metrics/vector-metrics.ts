/** What the sync observes as it runs (a histogram cannot be rebuilt from status at scrape time). */
export interface VectorSyncMetrics {
  syncDuration: { observe(labels: { namespace: string; name: string }, seconds: number): void };
}

/**
 * Per-vector metrics read at scrape time: gauges from the Vectors' status in the informer cache (as the dataset
 * gauges are), so an alert sees what `kubectl get` shows; counters from the sync's running totals.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Vector } from '../api/types.ts';
import type { SyncTotals } from '../controllers/vector-sync.ts';
import { parseDuration } from '../planning/duration.ts';

type Labels = { namespace: string; name: string };
const labelsOf = (v: Vector): Labels => ({ namespace: v.metadata.namespace ?? 'default', name: v.metadata.name });

/** A gauge computed at scrape time from each Vector in the cache (a restart cannot freeze a value). */
export function statusGauge(registry: Registry, vectors: () => readonly Vector[], name: string, help: string, value: (v: Vector) => number | undefined): void {
  new Gauge({
    name,
    help,
    labelNames: ['namespace', 'name'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const v of vectors()) {
        const x = value(v);
        if (x !== undefined && Number.isFinite(x)) this.set(labelsOf(v), x);
      }
    },
  });
}

const seconds = (iso: string | undefined): number | undefined => (iso ? Date.parse(iso) / 1000 : undefined);

export function registerVectorMetrics(
  registry: Registry,
  vectors: () => readonly Vector[],
  now: () => number,
  totals: () => Iterable<SyncTotals> = () => [],
): VectorSyncMetrics {
  statusGauge(registry, vectors, 'bdr_vector_key_age_seconds', "Seconds since the vector's current SSH key was authorized on its storage machine", (v) => {
    const at = v.status?.pairing?.authorizedAt;
    return at ? Math.max(0, (now() - Date.parse(at)) / 1000) : undefined;
  });
  statusGauge(registry, vectors, 'bdr_vector_newest_replica_timestamp_seconds', 'Creation time of the newest restore point replicated to the target (Unix seconds)', (v) =>
    seconds(v.status?.lastSyncedSnapshot?.createdAt),
  );
  statusGauge(registry, vectors, 'bdr_vector_rpo_seconds', "The vector's recovery point objective (spec.rpo), in seconds", (v) => {
    const rpo = v.spec.rpo ? parseDuration(v.spec.rpo) : undefined;
    return rpo?.ok ? rpo.value / 1000 : undefined;
  });
  statusGauge(registry, vectors, 'bdr_vector_last_sync_timestamp_seconds', 'When the last successful sync ended (Unix seconds)', (v) => seconds(v.status?.lastSyncTime));
  statusGauge(registry, vectors, 'bdr_vector_consecutive_failures', 'Sync runs that failed or were refused in a row since the last success', (v) => v.status?.consecutiveFailures ?? 0);
  new Gauge({
    name: 'bdr_vector_transfer_bytes',
    help: 'Bytes sent so far by the stream running now (0 between runs)',
    labelNames: ['namespace', 'name'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const t of totals()) this.set({ namespace: t.namespace, name: t.name }, t.transferBytes);
    },
  });
  new Counter({
    name: 'bdr_vector_sent_bytes_total',
    help: 'Bytes of replication streams sent by this operator process, counted on the primary',
    labelNames: ['namespace', 'name'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const t of totals()) this.inc({ namespace: t.namespace, name: t.name }, t.sentBytes);
    },
  });
  new Counter({
    name: 'bdr_vector_syncs_total',
    help: 'Sync runs by result: succeeded, failed (retried with backoff) or stalled (refused, needs a human)',
    labelNames: ['namespace', 'name', 'result'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const t of totals()) {
        for (const result of ['succeeded', 'failed', 'stalled'] as const) this.inc({ namespace: t.namespace, name: t.name, result }, t[result]);
      }
    },
  });
  const syncDuration = new Histogram({
    name: 'bdr_vector_sync_duration_seconds',
    help: 'How long successful sync runs took, from planning to the last release',
    labelNames: ['namespace', 'name'] as const,
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600],
    registers: [registry],
  });
  return { syncDuration };
}
