/**
 * How often a vector's key may rotate. Each rotation rewrites the storage machine's authorized_keys (as root)
 * twice and the primary's key files once, so an interval of milliseconds would turn every reconcile into a
 * rewrite of root's login file; an hour is the floor, 30 days the default. Pure.
 */
import { parseDuration } from './duration.ts';

export const DEFAULT_KEY_ROTATION = '720h';
export const MIN_KEY_ROTATION_MS = 3_600_000;

/** The interval in milliseconds, or why it is refused. */
export function keyRotationInterval(text: string | undefined): { ok: true; ms: number } | { ok: false; problem: string } {
  const parsed = parseDuration(text ?? DEFAULT_KEY_ROTATION);
  if (!parsed.ok) return { ok: false, problem: `spec.keyRotation.interval: ${parsed.problem}` };
  if (parsed.value < MIN_KEY_ROTATION_MS) {
    return { ok: false, problem: `spec.keyRotation.interval ${text ?? ''} is shorter than 1h: each rotation rewrites root's authorized_keys on the storage machine; use 1h or more (default ${DEFAULT_KEY_ROTATION})` };
  }
  return { ok: true, ms: parsed.value };
}
