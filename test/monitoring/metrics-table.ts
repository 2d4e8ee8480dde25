/** The metric table in metrics/README.md, parsed: the catalogue that alerts, dashboards and tests check against. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/run-bdr.ts';

export interface MetricRow {
  name: string;
  type: string;
  labels: string[];
  help: string;
}

export function metricTable(): MetricRow[] {
  const text = readFileSync(join(REPO_ROOT, 'metrics/README.md'), 'utf8');
  const rows: MetricRow[] = [];
  for (const line of text.split('\n')) {
    const m = /^\| `([a-z_:]+)` \| (\w+) \| ([^|]*) \| (.*) \|$/.exec(line);
    if (!m) continue;
    const labels = [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((l) => l[1]!);
    rows.push({ name: m[1]!, type: m[2]!, labels, help: m[4]! });
  }
  return rows;
}

/**
 * The series names Prometheus stores for a metric: a histogram's _bucket, _sum and _count, a counter's own
 * name (prom-client names counters with _total already).
 */
export function seriesNames(row: MetricRow): string[] {
  return row.type === 'histogram' ? [`${row.name}_bucket`, `${row.name}_sum`, `${row.name}_count`] : [row.name];
}

/** prom-client's default process and Node.js metrics, which bdr exports but does not document one by one. */
export const DEFAULT_METRIC = /^(process_|nodejs_)/;
