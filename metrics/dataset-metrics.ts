/**
 * Per-dataset gauges read at scrape time from the Datasets' status in the informer cache: what `kubectl get`
 * shows is what Prometheus sees, and a restart cannot freeze a stale value.
 */
import { Gauge, type Registry } from 'prom-client';
import type { Dataset } from '../api/types.ts';

export function registerDatasetMetrics(registry: Registry, datasets: () => readonly Dataset[]): void {
  const registers = [registry];
  const labels = ['namespace', 'dataset', 'machine'] as const;
  const gauge = (name: string, help: string, value: (d: Dataset) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: labels,
      registers,
      collect() {
        this.reset();
        for (const d of datasets()) {
          const v = value(d);
          if (v === undefined) continue;
          this.set({ namespace: d.metadata.namespace ?? 'default', dataset: d.metadata.name, machine: d.spec.machineRef.name }, v);
        }
      },
    });
  gauge('bdr_dataset_snapshots', "Number of bdr's restore points of the dataset", (d) => d.status?.restorePoints?.count);
  gauge('bdr_dataset_newest_snapshot_timestamp_seconds', 'When the newest restore point was taken', (d) => {
    const at = d.status?.restorePoints?.newest?.createdAt;
    return at ? Date.parse(at) / 1000 : undefined;
  });
  gauge('bdr_dataset_used_bytes', 'Bytes used by the dataset and its descendants', (d) => d.status?.usedBytes);
  gauge('bdr_dataset_used_by_snapshots_bytes', "Bytes only the dataset's snapshots hold", (d) => d.status?.usedBySnapshotsBytes);
}
