import { describe, expect, it } from 'vitest';
import { metricNames } from './promql.ts';

describe('metricNames', () => {
  it('finds the metrics of an expression, not its functions, labels, ranges or grouping', () => {
    expect(metricNames('histogram_quantile(0.95, sum by (machine, le) (rate(bdr_machine_probe_duration_seconds_bucket[$__rate_interval])))')).toEqual([
      'bdr_machine_probe_duration_seconds_bucket',
    ]);
    expect(
      metricNames('(time() - bdr_dataset_newest_snapshot_timestamp_seconds)\n > 2 * bdr_dataset_schedule_interval_seconds\nunless on (namespace, dataset, machine) bdr_dataset_suspended == 1'),
    ).toEqual(['bdr_dataset_newest_snapshot_timestamp_seconds', 'bdr_dataset_schedule_interval_seconds', 'bdr_dataset_suspended']);
    expect(metricNames('max(leader_election_master_status{name="bdr-controller", x=~"a|b"}) < 1')).toEqual(['leader_election_master_status']);
    expect(metricNames('absent(bdr_build_info)')).toEqual(['bdr_build_info']);
    expect(metricNames('count by (version) (bdr_build_info) and ignoring(job) up offset 5m')).toEqual(['bdr_build_info', 'up']);
    expect(metricNames('a_total / b_total > 1e3')).toEqual(['a_total', 'b_total']);
  });
});
