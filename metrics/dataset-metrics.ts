/**
 * Per-dataset metrics. Gauges are read at scrape time from the Datasets in the informer cache: what `kubectl
 * get` shows is what Prometheus sees, and a restart cannot freeze a stale value. Counters say what happened
 * (snapshots taken, snapshots that failed); they are incremented by the Dataset controller.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Dataset } from '../api/types.ts';
import { scheduleIntervalSeconds } from './dataset-schedule.ts';

export { scheduleIntervalSeconds } from './dataset-schedule.ts';

type DatasetLabel = 'namespace' | 'dataset' | 'machine';

/** What the Dataset controller counts. */
export interface DatasetCounters {
  readonly snapshotsCreated: Counter<DatasetLabel>;
  readonly snapshotFailures: Counter<DatasetLabel>;
  readonly snapshotsPruned: Counter<DatasetLabel>;
}

export function datasetLabels(d: Dataset): Record<DatasetLabel, string> {
  return { namespace: d.metadata.namespace ?? 'default', dataset: d.metadata.name, machine: d.spec.machineRef.name };
}

export function registerDatasetMetrics(registry: Registry, datasets: () => readonly Dataset[], now: () => number = Date.now): DatasetCounters {
  const registers = [registry];
  const labelNames = ['namespace', 'dataset', 'machine'] as const;
  const gauge = (name: string, help: string, value: (d: Dataset) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const d of datasets()) {
          const v = value(d);
          if (v !== undefined) this.set(datasetLabels(d), v);
        }
      },
    });
  const seconds = (at: string | undefined) => (at ? Date.parse(at) / 1000 : undefined);
  gauge('bdr_dataset_snapshots', "Number of bdr's restore points of the dataset", (d) => d.status?.restorePoints?.count);
  gauge('bdr_dataset_newest_snapshot_timestamp_seconds', 'When the newest restore point was taken', (d) => seconds(d.status?.restorePoints?.newest?.createdAt));
  gauge('bdr_dataset_created_timestamp_seconds', 'When the Dataset object was created (the overdue alert counts from here until a first restore point)', (d) =>
    seconds(d.metadata.creationTimestamp),
  );
  gauge('bdr_dataset_next_snapshot_timestamp_seconds', 'When the next restore point is due (absent while suspended)', (d) => seconds(d.status?.nextSnapshotTime));
  gauge('bdr_dataset_schedule_interval_seconds', 'Seconds between two scheduled restore points (for cron: the gap between the next two)', (d) =>
    scheduleIntervalSeconds(d, now()),
  );
  gauge('bdr_dataset_suspended', 'Whether the dataset is suspended (1) or not (0)', (d) => (d.spec.suspend ? 1 : 0));
  gauge('bdr_dataset_used_bytes', 'Bytes used by the dataset and its descendants', (d) => d.status?.usedBytes);
  gauge('bdr_dataset_used_by_snapshots_bytes', "Bytes only the dataset's snapshots hold", (d) => d.status?.usedBySnapshotsBytes);
  // Each dataset's counters exist at 0 from its first scrape, so increase() sees its first failure too.
  const counter = (name: string, help: string) =>
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        for (const d of datasets()) this.inc(datasetLabels(d), 0);
      },
    });
  return {
    snapshotsCreated: counter('bdr_dataset_snapshots_created_total', 'Restore points bdr took of the dataset'),
    snapshotFailures: counter('bdr_dataset_snapshot_failures_total', 'Scheduled restore points that ZFS failed to take'),
    snapshotsPruned: counter('bdr_dataset_snapshots_pruned_total', 'Restore points of the dataset that retention destroyed'),
  };
}
