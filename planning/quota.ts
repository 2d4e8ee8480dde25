/**
 * The quota of a vector's replica: one vector must not fill a storage pool it shares with others. The
 * StorageTarget sets it for all its vectors (spec.replicaQuota), or the storage Machine for vectors that target
 * it directly; a Vector may ask for less (spec.target.quota), never more. Without a ceiling the replica has the
 * Vector's quota, or none. Pure.
 */
import type { Parsed } from './duration.ts';

const UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** "500G" → 536870912000 (1024-based, as `zfs` prints sizes); a figure beyond 2^53 bytes is refused. */
export function parseSize(text: string): Parsed<number> {
  const m = /^([1-9][0-9]{0,17})([KMGTP]?)$/.exec(text);
  if (!m) return { ok: false, problem: `size ${JSON.stringify(text)} is invalid (expected digits with an optional K, M, G, T or P suffix, 1024-based, e.g. "500G")` };
  const digits = m[1] ?? '';
  const unit = UNITS[m[2] ?? ''] ?? 1;
  // BigInt: the product must be checked before it loses precision as a double.
  const bytes = BigInt(digits) * BigInt(unit);
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, problem: `size ${JSON.stringify(text)} is too large (at most 2^53 - 1 bytes, just under 8P)` };
  return { ok: true, value: Number(bytes) };
}

export interface ReplicaQuota {
  /** Bytes; undefined: no quota. */
  bytes: number | undefined;
  /** Where the figure comes from, for messages. */
  from: 'Vector' | 'StorageTarget' | 'Machine' | 'none';
}

/** An administrator's ceiling: a StorageTarget's replicaQuota, or the storage Machine's. */
export interface QuotaCeiling {
  text: string | undefined;
  from: 'StorageTarget' | 'Machine';
  /** The object's name, for messages. */
  name: string;
}

export const QUOTA_ABOVE_CEILING = 'QuotaAboveCeiling';

/**
 * The quota a replica gets. The administrators' ceiling (the lower of the StorageTarget's and the storage
 * Machine's, where set) applies unless the Vector asks for less; a Vector may never ask for more, nor for none,
 * where a ceiling is set: a namespace cannot lift the limit that keeps it from filling a pool shared with
 * others. Without a ceiling the Vector's own figure (or none) applies.
 */
export function replicaQuota(ceilings: readonly QuotaCeiling[], vectorQuota: string | undefined): Parsed<ReplicaQuota> & { reason?: string } {
  let cap: number | undefined;
  let ceiling: QuotaCeiling | undefined;
  for (const c of ceilings) {
    if (c.text === undefined) continue;
    const parsed = parseSize(c.text);
    if (!parsed.ok) return { ok: false, problem: `${c.from} ${c.name}'s spec.replicaQuota: ${parsed.problem}` };
    if (cap === undefined || parsed.value < cap) [cap, ceiling] = [parsed.value, c];
  }
  const where = ceiling ? `${ceiling.from} ${ceiling.name}'s spec.replicaQuota` : '';
  const from = ceiling ? ceiling.from : 'none';
  if (vectorQuota === undefined) return { ok: true, value: { bytes: cap, from } };
  if (vectorQuota === 'none') {
    if (cap === undefined) return { ok: true, value: { bytes: undefined, from: 'Vector' } };
    return { ok: false, reason: QUOTA_ABOVE_CEILING, problem: `spec.target.quota none would lift the ceiling ${ceiling?.text ?? ''} set by ${where}; ask for at most that, or omit it` };
  }
  const parsed = parseSize(vectorQuota);
  if (!parsed.ok) return { ok: false, problem: `spec.target.quota: ${parsed.problem}` };
  if (cap !== undefined && parsed.value > cap) {
    return { ok: false, reason: QUOTA_ABOVE_CEILING, problem: `spec.target.quota ${vectorQuota} is above the ceiling ${ceiling?.text ?? ''} set by ${where}; ask for at most that, or omit it` };
  }
  return { ok: true, value: { bytes: parsed.value, from: 'Vector' } };
}
