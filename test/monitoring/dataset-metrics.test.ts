/** The gauges and counters that alerts and dashboards compute with: schedule interval, suspension, series at 0. */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../api/types.ts';
import { registerDatasetMetrics, scheduleIntervalSeconds } from '../../metrics/dataset-metrics.ts';
import { RuntimeMetrics } from '../../metrics/runtime-metrics.ts';

const dataset = (name: string, schedule: Dataset['spec']['schedule'], extra: Partial<Dataset['spec']> = {}): Dataset =>
  ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Dataset',
    metadata: { name, namespace: 'prod' },
    spec: { machineRef: { name: 'nas01' }, name: `tank/${name}`, schedule, retentionPolicyRef: { name: 'p' }, ...extra },
  }) as Dataset;

const NOW = Date.parse('2026-03-10T12:34:56Z');

describe('bdr_dataset_schedule_interval_seconds', () => {
  it('is the interval of an interval schedule', () => {
    expect(scheduleIntervalSeconds(dataset('a', { interval: '15m' }), NOW)).toBe(900);
    expect(scheduleIntervalSeconds(dataset('a', { interval: '1d' }), NOW)).toBe(86_400);
  });

  it('is the gap between the next two instants of a cron schedule', () => {
    expect(scheduleIntervalSeconds(dataset('a', { cron: '*/10 * * * *' }), NOW)).toBe(600);
    expect(scheduleIntervalSeconds(dataset('a', { cron: '0 2 * * *', timeZone: 'Europe/Berlin' }), NOW)).toBe(86_400);
    // Tuesday 12:34: the next weekday runs are Wednesday 02:00 and Thursday 02:00.
    expect(scheduleIntervalSeconds(dataset('a', { cron: '0 2 * * 1-5' }), NOW)).toBe(86_400);
    // Friday 12:34: Monday 02:00, then Tuesday 02:00.
    expect(scheduleIntervalSeconds(dataset('a', { cron: '0 2 * * 1-5' }), Date.parse('2026-03-13T12:34:56Z'))).toBe(86_400);
    expect(scheduleIntervalSeconds(dataset('a', { cron: '0 2 * * 1,4' }), NOW)).toBe(4 * 86_400);
  });

  it('is absent for a schedule that does not parse', () => {
    expect(scheduleIntervalSeconds(dataset('a', { interval: 'soon' }), NOW)).toBeUndefined();
  });

  it('is exported per dataset beside bdr_dataset_suspended', async () => {
    const registry = new Registry();
    registerDatasetMetrics(registry, () => [dataset('web', { interval: '1h' }), dataset('db', { interval: '5m' }, { suspend: true })], () => NOW);
    const text = await registry.metrics();
    expect(text).toContain('bdr_dataset_schedule_interval_seconds{namespace="prod",dataset="web",machine="nas01"} 3600');
    expect(text).toContain('bdr_dataset_schedule_interval_seconds{namespace="prod",dataset="db",machine="nas01"} 300');
    expect(text).toContain('bdr_dataset_suspended{namespace="prod",dataset="web",machine="nas01"} 0');
    expect(text).toContain('bdr_dataset_suspended{namespace="prod",dataset="db",machine="nas01"} 1');
    // Counters start at 0 for every dataset, so increase() sees the first failure.
    expect(text).toContain('bdr_dataset_snapshot_failures_total{namespace="prod",dataset="web",machine="nas01"} 0');
    expect(text).toContain('bdr_dataset_snapshots_created_total{namespace="prod",dataset="db",machine="nas01"} 0');
    // No status yet: no restore-point series rather than a misleading zero.
    expect(text).not.toMatch(/^bdr_dataset_newest_snapshot_timestamp_seconds\{/m);
  });
});

describe('runtime metrics', () => {
  it('start every controller\'s counters at 0', async () => {
    const registry = new Registry();
    new RuntimeMetrics(registry).watchQueue('dataset', () => new Map());
    const text = await registry.metrics();
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="dataset"} 0');
    for (const result of ['success', 'error', 'requeue', 'requeue_after']) expect(text).toContain(`controller_runtime_reconcile_total{controller="dataset",result="${result}"} 0`);
    expect(text).toContain('workqueue_retries_total{name="dataset",controller="dataset"} 0');
    expect(text).toContain('workqueue_depth{name="dataset",controller="dataset"} 0');
  });
});
