/**
 * Times given on the command line (`--at`): an RFC 3339 timestamp (`2026-11-26T10:00:00Z`,
 * `2026-11-26T11:00:00+01:00`), `now`, or a duration relative to now (`+2h`, `-1d`, `-90m`, grammar of
 * planning/duration.ts). Injected, never waited for.
 */
import { formatDuration, parseDuration } from '../planning/duration.ts';
import { EXIT, UserError } from './errors.ts';

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

const HINT = 'give an RFC 3339 time such as 2026-11-26T10:00:00Z, or one relative to now such as +2h or -1d';

/** Epoch ms for `text`, relative forms against `now`; a usage error that says what to write otherwise. */
export function parseTimeArg(text: string, now: number, option = '--at'): number {
  const t = text.trim();
  if (t === 'now') return now;
  if (t.startsWith('+') || t.startsWith('-')) {
    const d = parseDuration(t.slice(1));
    if (!d.ok) throw new UserError(`${option} ${JSON.stringify(text)}: ${d.problem}; ${HINT}`, EXIT.usage);
    return t.startsWith('+') ? now + d.value : now - d.value;
  }
  if (!RFC3339.test(t)) throw new UserError(`${option} ${JSON.stringify(text)} is not a time: ${HINT}`, EXIT.usage);
  const ms = Date.parse(t.replace(' ', 'T'));
  if (Number.isNaN(ms)) throw new UserError(`${option} ${JSON.stringify(text)} is not a valid date: ${HINT}`, EXIT.usage);
  return ms;
}

/** `2026-11-26T10:00:00Z` (whole seconds, UTC), the form every bdr output uses. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** `in 1h30m`, `2h ago`, `now`, rounded to seconds. */
export function relative(ms: number, from: number): string {
  const diff = Math.round((ms - from) / 1000) * 1000;
  if (diff === 0) return 'now';
  return diff > 0 ? `in ${formatDuration(diff)}` : `${formatDuration(-diff)} ago`;
}
