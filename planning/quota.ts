/**
 * The quota of a vector's replica: one vector must not fill a storage pool it shares with others. The
 * StorageTarget sets it for all its vectors (spec.replicaQuota), a Vector may override it
 * (spec.target.quota, "none" to lift it); without either, the replica has no quota. Pure.
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
  from: 'Vector' | 'StorageTarget' | 'none';
}

/** The quota a replica gets from the target's `replicaQuota` and the vector's `target.quota` override. */
export function replicaQuota(targetQuota: string | undefined, vectorQuota: string | undefined): Parsed<ReplicaQuota> {
  if (vectorQuota === 'none') return { ok: true, value: { bytes: undefined, from: 'Vector' } };
  const [text, from] = vectorQuota !== undefined ? [vectorQuota, 'Vector' as const] : targetQuota !== undefined ? [targetQuota, 'StorageTarget' as const] : [undefined, 'none' as const];
  if (text === undefined) return { ok: true, value: { bytes: undefined, from } };
  const parsed = parseSize(text);
  if (!parsed.ok) return { ok: false, problem: `${from === 'Vector' ? 'spec.target.quota' : "the StorageTarget's spec.replicaQuota"}: ${parsed.problem}` };
  return { ok: true, value: { bytes: parsed.value, from } };
}
