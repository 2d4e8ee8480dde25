/**
 * Go-style durations (`90s`, `15m`, `1h30m`, `1.5h`, `1d`, `2w`) as used by `interval` schedules and `rpo`.
 *
 * Units: ms, s, m, h, d (24 h), w (7 d). A day here is a fixed 24 hours of elapsed time, not a calendar day:
 * durations measure elapsed time; calendar-aware rules live in cron schedules and retention buckets.
 * Results are whole milliseconds (fractions are rounded to the nearest millisecond).
 */

/** The outcome of parsing user input: a value, or a message that can be shown as is by `bdr validate`. */
export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

// `ms` must be tried before `m`, which the alternation order guarantees.
const TERM = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)/y;

export function parseDuration(text: string): Parsed<number> {
  const source = text.trim();
  if (source === '') return { ok: false, problem: 'duration is empty (expected e.g. "15m", "1h30m", "1d")' };
  if (source === '0') return { ok: true, value: 0 };
  let total = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < source.length) {
    const at = TERM.lastIndex;
    const match = TERM.exec(source);
    if (match === null) {
      return {
        ok: false,
        problem: `duration "${text}" is invalid at "${source.slice(at)}" (expected number+unit terms, units ms, s, m, h, d, w; e.g. "1h30m")`,
      };
    }
    const [, amount, unit] = match;
    total += Number(amount) * (UNIT_MS[unit ?? ''] ?? Number.NaN);
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) {
    return { ok: false, problem: `duration "${text}" is too large` };
  }
  return { ok: true, value: Math.round(total) };
}

/** Renders milliseconds in the same grammar, largest units first (`5400000` → `1h30m`), for messages and status. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return String(ms);
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const unit of ['w', 'd', 'h', 'm', 's', 'ms'] as const) {
    const size = UNIT_MS[unit] ?? 1;
    const count = Math.floor(rest / size);
    if (count > 0) {
      out += `${count}${unit}`;
      rest -= count * size;
    }
  }
  return out;
}
