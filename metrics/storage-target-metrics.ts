/**
 * Per-machine gauges of each StorageTarget, read at scrape time from the StorageTargets' status in the informer
 * cache: what `kubectl get -o yaml` shows is what Prometheus sees, and a restart cannot freeze a stale value.
 */
import { Gauge, type Registry } from 'prom-client';
import type { StorageTarget, StorageTargetStatus } from '../api/types.ts';

type MachineFigures = NonNullable<StorageTargetStatus['machines']>[number];

export function registerStorageTargetMetrics(registry: Registry, targets: () => readonly StorageTarget[]): void {
  const registers = [registry];
  const gauge = (name: string, help: string, value: (m: MachineFigures) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['target', 'machine'],
      registers,
      collect() {
        this.reset();
        for (const t of targets()) {
          for (const m of t.status?.machines ?? []) {
            const v = value(m);
            if (v !== undefined) this.set({ target: t.metadata.name, machine: m.name }, v);
          }
        }
      },
    });
  gauge('bdr_storage_target_machine_size_bytes', "Size of the pool holding the target's parentDataset on the machine", (m) => m.sizeBytes);
  gauge('bdr_storage_target_machine_used_bytes', 'Bytes allocated in that pool', (m) => m.usedBytes);
  gauge('bdr_storage_target_machine_free_bytes', 'Free bytes in that pool', (m) => m.freeBytes);
  gauge('bdr_storage_target_vectors', 'Vectors paired with the machine through the target', (m) => m.vectorCount);
}
