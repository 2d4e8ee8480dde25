/**
 * Per-vector gauges from the Vector objects in the informer cache, read at scrape time: what `kubectl get vector`
 * shows is what Prometheus sees, and a restart cannot freeze a stale value. Stalled is the vector that needs a
 * human (a diverged target, a refused pairing); its message says what to do. Suspension and the creation time
 * let the RPO alert stay silent for a paused vector and count from the Vector itself before a first replica; the
 * rotation interval lets the key alert judge each vector's key age against its own schedule.
 */
import type { Registry } from 'prom-client';
import type { Vector } from '../api/types.ts';
import { isTrue } from '../controllers/runtime/conditions.ts';
import { DEFAULT_KEY_ROTATION } from '../planning/key-rotation.ts';
import { parseDuration } from '../planning/duration.ts';
import { statusGauge } from './vector-metrics.ts';

export function registerVectorConditionMetrics(registry: Registry, vectors: () => readonly Vector[]): void {
  // The same scrape-time gauge over the informer cache as the sync metrics use.
  const gauge = (name: string, help: string, value: (v: Vector) => number | undefined) => statusGauge(registry, vectors, name, help, value);
  const flag = (b: boolean) => (b ? 1 : 0);
  gauge('bdr_vector_stalled', 'Whether the vector is Stalled (1: it needs a human, its Stalled condition says why) or not (0)', (v) =>
    flag(isTrue(v.status?.conditions, 'Stalled')),
  );
  gauge('bdr_vector_ready', 'Whether the vector is Ready (1) or not (0)', (v) => flag(isTrue(v.status?.conditions, 'Ready')));
  // A suspended Machine pauses its vectors too; the controller says so with the Suspended condition.
  gauge('bdr_vector_suspended', 'Whether the vector is suspended, by its spec or its machine (1) or not (0)', (v) =>
    flag(v.spec.suspend === true || isTrue(v.status?.conditions, 'Suspended')),
  );
  gauge('bdr_vector_created_timestamp_seconds', 'When the Vector object was created (the RPO alert counts from here until a first replica)', (v) =>
    v.metadata.creationTimestamp ? Date.parse(v.metadata.creationTimestamp) / 1000 : undefined,
  );
  gauge('bdr_vector_key_rotation_interval_seconds', "How often the vector's SSH key is replaced (spec.keyRotation.interval, default 720h)", (v) => {
    const interval = parseDuration(v.spec.keyRotation?.interval ?? DEFAULT_KEY_ROTATION);
    return interval.ok ? interval.value / 1000 : undefined;
  });
}
