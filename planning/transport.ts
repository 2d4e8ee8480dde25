/**
 * The limits a Vector's `spec.transport` puts on one sync run: how long a stream may move no byte
 * (`stallTimeout`), how long a whole run may take (`syncTimeout`), and how fast the stream may go
 * (`bandwidthLimit`). Pure: `bdr validate` (api/semantics.ts) and the sync (controllers/vector-sync.ts) read the
 * same fields through this one function, with the same defaults and bounds.
 */
import { formatDuration, parseDuration, type Parsed } from './duration.ts';
import { parseSize } from './quota.ts';

/** zettarepl's stall monitor default: a healthy stream's progress (dd, about once a second) re-arms it long before. */
export const DEFAULT_STALL_TIMEOUT = '5m';
/**
 * A day. A run that takes longer cannot keep up with a daily schedule anyway, and meanwhile it holds both
 * machines' transfer slots (every other vector between them waits). An initial copy expected to take longer
 * (terabytes over a thin link) sets a larger value; the failure message says which field to raise.
 */
export const DEFAULT_SYNC_TIMEOUT = '24h';
/** dd reports progress about once a second: below this a healthy but briefly slow stream would be ended. */
export const MIN_STALL_TIMEOUT_MS = 10_000;
/** Listing both ends and moving holds takes seconds on a busy machine; a shorter deadline would end healthy runs. */
export const MIN_SYNC_TIMEOUT_MS = 60_000;

export interface TransportLimits {
  stallMs: number;
  syncMs: number;
  /** Bytes per second; undefined: unlimited. */
  bytesPerSecond: number | undefined;
}

export interface TransportLimitsSpec {
  stallTimeout?: string | undefined;
  syncTimeout?: string | undefined;
  bandwidthLimit?: string | undefined;
}

export interface LimitProblem {
  field: 'stallTimeout' | 'syncTimeout' | 'bandwidthLimit';
  problem: string;
}

/** The transport's limits with defaults, or every field that is wrong (named relative to spec.transport). */
export function transportLimits(spec: TransportLimitsSpec | undefined): { ok: true; value: TransportLimits } | { ok: false; problems: LimitProblem[] } {
  const problems: LimitProblem[] = [];
  const duration = (field: 'stallTimeout' | 'syncTimeout', text: string, min: number): number => {
    const d = parseDuration(text);
    if (!d.ok) problems.push({ field, problem: d.problem });
    else if (d.value < min) problems.push({ field, problem: `${text} is too short: at least ${formatDuration(min)}` });
    return d.ok ? d.value : 0;
  };
  const stallMs = duration('stallTimeout', spec?.stallTimeout ?? DEFAULT_STALL_TIMEOUT, MIN_STALL_TIMEOUT_MS);
  const syncMs = duration('syncTimeout', spec?.syncTimeout ?? DEFAULT_SYNC_TIMEOUT, MIN_SYNC_TIMEOUT_MS);
  let bytesPerSecond: number | undefined;
  if (spec?.bandwidthLimit !== undefined) {
    const size: Parsed<number> = parseSize(spec.bandwidthLimit);
    if (size.ok) bytesPerSecond = size.value;
    else problems.push({ field: 'bandwidthLimit', problem: size.problem.replace(/^size/, 'rate') });
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: { stallMs, syncMs, bytesPerSecond } };
}

/** A rate for messages, in the largest 1024-based unit that divides it (10485760 → "10 MiB/s"), else in bytes. */
export function describeRate(bytesPerSecond: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytesPerSecond >= size && bytesPerSecond % size === 0) return `${bytesPerSecond / size} ${unit}/s`;
  }
  return `${bytesPerSecond} B/s`;
}
