/**
 * The schedule interval that the overdue alert and `bdr status` measure a Dataset's newest restore point
 * against. Kept apart from the prom-client definitions so the CLI can use it without loading prom-client.
 */
import type { Dataset } from '../api/types.ts';
import { nextScheduledAfter, parseSchedule } from '../planning/schedule.ts';

/**
 * Seconds between two scheduled restore points: the interval itself, or for a cron schedule the gap between
 * the next two instants after `now` (so "no restore point for twice the schedule" can be computed either way).
 * Undefined for a schedule that does not parse (the Dataset is Stalled then, which its condition says).
 */
export function scheduleIntervalSeconds(d: Dataset, now: number): number | undefined {
  const parsed = parseSchedule(d.spec.schedule);
  if (!parsed.ok) return undefined;
  if (parsed.value.kind === 'interval') return parsed.value.intervalMs / 1000;
  const first = nextScheduledAfter(parsed.value, now);
  return (nextScheduledAfter(parsed.value, first) - first) / 1000;
}

