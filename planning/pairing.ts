/**
 * Pairing: which storage machine of a StorageTarget receives a Vector's replica (the seed's master server pairing a
 * backup aggregator with a storage server). Pure: the caller observes machines, capacities and current pairings and
 * acts on the decision; nothing here does I/O or reads a clock.
 *
 * Rules:
 * - Sticky: a vector keeps its current machine while that machine is still listed in the target (and still exists),
 *   whatever its capacity, weight or readiness says now. Moving a replica costs a full send, so capacity moving
 *   around never re-pairs; only a machine leaving the target (or being deleted) does.
 * - A new pairing (or a re-pairing) refuses: a target that is ReadOnly or suspended; a machine that does not exist,
 *   has weight 0, is not role Storage, is not Ready, is at or above `criticalPercent` allocated, (MostFree only)
 *   whose capacity is unknown, or that the caller marks `unavailable`. Every refusal is named in the decision.
 * - Strategies, and how `weight` (0..1000, default 100) acts in each:
 *   - MostFree: the machine offering the most weighted free space per vector, `weight × free / (vectors + 1)`:
 *     its free bytes shared among the vectors it holds plus the new one. With equal weights and no vectors this is
 *     simply the machine with the most free bytes; counting vectors keeps a batch from landing on one machine
 *     before its free space has had a chance to move. Weight 200 counts a machine's free space twice.
 *   - FewestVectors: the machine with the lowest `(vectors + 1) / weight`, its load after taking the vector
 *     relative to its weight: vector counts settle in proportion to weights (weight 200 holds twice as many).
 *   - RoundRobin: machines take turns in spec order, starting after the last machine picked (`roundRobinCursor`).
 *     A machine's turn lasts `round(weight / smallest eligible weight)` consecutive pairings (at least one), so
 *     weight 200 beside weight 100 takes two vectors per cycle; `roundRobinStreak` says how many pairings the
 *     cursor machine's current turn already had.
 *   Ties break by machine name (code-unit order), so the same input always gives the same answer.
 * - `pairVectors` decides a batch, counting each new pairing before the next decision: two vectors paired at the same
 *   time never both read a stale count.
 */

export type PairingStrategy = 'MostFree' | 'FewestVectors' | 'RoundRobin';

export interface PairingMachine {
  name: string;
  /** 0..1000; 0 takes no new vectors. */
  weight: number;
  role?: 'Source' | 'Aggregator' | 'Storage';
  ready: boolean;
  /** False when the name in spec.machines matches no Machine (deleted or never created). Default true. */
  exists?: boolean;
  /** Pool size, allocated and free bytes; free defaults to size - allocated. */
  sizeBytes?: number;
  allocatedBytes?: number;
  freeBytes?: number;
  /** Vectors currently paired with this machine through this target. */
  vectorCount: number;
  /** A reason the caller knows of why the machine cannot hold a new replica (e.g. it does not report the pool). */
  unavailable?: string;
}

export interface PairingTarget {
  strategy: PairingStrategy;
  accessMode: 'ReadWrite' | 'ReadOnly';
  criticalPercent: number;
  suspended?: boolean;
  /** In spec order (RoundRobin follows it). */
  machines: PairingMachine[];
  /** Last machine picked (RoundRobin). */
  roundRobinCursor?: string;
  /** Consecutive pairings the cursor machine has had in its current turn (RoundRobin); default 1. */
  roundRobinStreak?: number;
}

export interface VectorPairingRequest {
  /** namespace/name */
  key: string;
  /** Machine recorded in the vector's status.pairing, if any. */
  current?: string;
}

export interface PairingRefusal {
  machine: string;
  why: string;
}

export type PairingDecision =
  | { kind: 'keep'; machine: string }
  | { kind: 'pair'; machine: string; reason: string }
  | { kind: 'repair'; machine: string; previous: string; reason: string }
  | { kind: 'none'; reason: 'NoStorageAvailable'; message: string; refusals: PairingRefusal[]; previous?: string };

/** The free bytes the strategies compare; undefined when capacity is unknown. */
export function freeBytesOf(m: PairingMachine): number | undefined {
  if (m.freeBytes !== undefined) return m.freeBytes;
  if (m.sizeBytes !== undefined && m.allocatedBytes !== undefined) return Math.max(0, m.sizeBytes - m.allocatedBytes);
  return undefined;
}

/** Why this machine cannot take a new vector (empty when it can). Target-level refusals are included. */
export function refusalsOf(target: PairingTarget, m: PairingMachine): string[] {
  const why: string[] = [];
  if (target.suspended === true) why.push('StorageTarget is suspended');
  if (target.accessMode === 'ReadOnly') why.push('StorageTarget is ReadOnly');
  if (m.exists === false) {
    why.push('no such Machine');
    return why;
  }
  if (m.weight <= 0) why.push('weight 0');
  if (m.role !== 'Storage') why.push(m.role === undefined ? 'role unknown, not Storage' : `role ${m.role}, not Storage`);
  if (!m.ready) why.push('not Ready');
  if (m.unavailable !== undefined) why.push(m.unavailable);
  if (m.sizeBytes !== undefined && m.allocatedBytes !== undefined) {
    // allocated/size >= critical/100, in integers so 90% of an odd size is not rounded either way.
    if (m.sizeBytes <= 0) why.push('pool size 0');
    else if (m.allocatedBytes * 100 >= target.criticalPercent * m.sizeBytes) {
      why.push(`${percentText(m.allocatedBytes, m.sizeBytes)} allocated, at or above criticalPercent ${target.criticalPercent}%`);
    }
  } else if (target.strategy === 'MostFree' && freeBytesOf(m) === undefined) {
    why.push('capacity unknown');
  }
  return why;
}

/** One decimal, rounded down, so 89.99% never shows as the 90.0% it did not reach. */
function percentText(allocated: number, size: number): string {
  return `${(Math.floor((allocated * 1000) / size) / 10).toFixed(1)}%`;
}

/** Compares a1·a2·a3 with b1·b2·b3 exactly (byte counts times weights overflow 2^53). */
function compareProducts(a1: number, a2: number, a3: number, b1: number, b2: number, b3: number): number {
  const a = a1 * a2 * a3;
  const b = b1 * b2 * b3;
  if (Number.isSafeInteger(a) && Number.isSafeInteger(b)) return a - b;
  // Each rounded product is within 2 ulps (relative 2^-52) of the exact one: a gap wider than that decides.
  if (Math.abs(a - b) > (Math.abs(a) + Math.abs(b)) * 2 ** -50) return a - b;
  const big = (x: number): bigint => BigInt(Math.trunc(x));
  const ab = big(a1) * big(a2) * big(a3);
  const bb = big(b1) * big(b2) * big(b3);
  return ab === bb ? 0 : ab > bb ? 1 : -1;
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Machine state the strategies read, with the count that batch pairing updates. */
interface Candidate {
  readonly name: string;
  readonly weight: number;
  readonly free: number;
  readonly index: number;
  count: number;
}

/** Negative when `a` should be picked before `b`. */
type Better = (a: Candidate, b: Candidate) => number;

/** weight·free/(count+1) greatest first: a.w·a.free·(b.count+1) vs b.w·b.free·(a.count+1). */
const mostFreeBetter: Better = (a, b) =>
  compareProducts(b.weight, b.free, a.count + 1, a.weight, a.free, b.count + 1) || byName(a.name, b.name);

/** (count+1)/weight smallest first. */
const fewestVectorsBetter: Better = (a, b) =>
  (a.count + 1) * b.weight - (b.count + 1) * a.weight || byName(a.name, b.name);

function describe(strategy: PairingStrategy, c: Candidate): string {
  switch (strategy) {
    case 'MostFree':
      return `MostFree: ${c.name} offers the most free space per vector (${c.free} bytes free, ${c.count} vectors, weight ${c.weight})`;
    case 'FewestVectors':
      return `FewestVectors: ${c.name} has the fewest vectors for its weight (${c.count} vectors, weight ${c.weight})`;
    case 'RoundRobin':
      return `RoundRobin: ${c.name} is next in turn (weight ${c.weight})`;
  }
}

interface Eligibility {
  candidates: Candidate[];
  refusals: PairingRefusal[];
}

function eligibility(target: PairingTarget): Eligibility {
  const candidates: Candidate[] = [];
  const refusals: PairingRefusal[] = [];
  target.machines.forEach((m, index) => {
    const why = refusalsOf(target, m);
    if (why.length > 0) refusals.push({ machine: m.name, why: why.join(', ') });
    else candidates.push({ name: m.name, weight: m.weight, free: freeBytesOf(m) ?? 0, index, count: m.vectorCount });
  });
  return { candidates, refusals };
}

function noneDecision(target: PairingTarget, key: string, refusals: PairingRefusal[], previous: string | undefined): PairingDecision {
  const detail =
    target.machines.length === 0
      ? 'the StorageTarget lists no machines'
      : refusals.map((r) => `${r.machine}: ${r.why}`).join('; ');
  const message = `no machine can take vector ${key}: ${detail}`;
  return previous === undefined
    ? { kind: 'none', reason: 'NoStorageAvailable', message, refusals }
    : { kind: 'none', reason: 'NoStorageAvailable', message, refusals, previous };
}

/** Whether `current` still pins the vector (listed in the target and still an existing Machine). */
function stillListed(target: PairingTarget, current: string): boolean {
  return target.machines.some((m) => m.name === current && m.exists !== false);
}

/** Round-robin state: the machine picked last and how many consecutive pairings its current turn has had. */
interface RoundRobinState {
  cursor: string | undefined;
  streak: number;
}

/** Consecutive pairings each candidate gets per turn, from weights relative to the smallest eligible weight. */
function turnLengths(candidates: readonly Candidate[]): Map<string, number> {
  let min = Infinity;
  for (const c of candidates) min = Math.min(min, c.weight);
  const turns = new Map<string, number>();
  for (const c of candidates) turns.set(c.name, Math.max(1, Math.round(c.weight / min)));
  return turns;
}

/**
 * Next round-robin pick among `candidates` (spec order). The cursor machine continues while its turn lasts;
 * otherwise the first candidate after the cursor's spec position (wrapping) starts a turn. A cursor that is no
 * longer listed counts from where it would be: unknown, so the first candidate.
 */
function roundRobinPick(
  target: PairingTarget,
  candidates: readonly Candidate[],
  turns: ReadonlyMap<string, number>,
  state: RoundRobinState,
  index: RoundRobinIndex = roundRobinIndex(target, candidates),
): Candidate {
  const first = candidates[0] as Candidate;
  if (state.cursor === undefined) return first;
  const cursorIndex = index.specIndex.get(state.cursor);
  if (cursorIndex === undefined) return first;
  const cursorCandidate = index.bySpecIndex[cursorIndex];
  if (cursorCandidate !== undefined && state.streak < (turns.get(cursorCandidate.name) ?? 1)) return cursorCandidate;
  return index.nextAfter[cursorIndex] ?? first;
}

/** Lookups for roundRobinPick, built once per batch: spec positions, and the next candidate after each position. */
interface RoundRobinIndex {
  specIndex: Map<string, number>;
  bySpecIndex: (Candidate | undefined)[];
  nextAfter: (Candidate | undefined)[];
}

function roundRobinIndex(target: PairingTarget, candidates: readonly Candidate[]): RoundRobinIndex {
  const n = target.machines.length;
  const specIndex = new Map<string, number>();
  target.machines.forEach((m, i) => {
    if (!specIndex.has(m.name)) specIndex.set(m.name, i);
  });
  const bySpecIndex = new Array<Candidate | undefined>(n).fill(undefined);
  for (const c of candidates) bySpecIndex[c.index] = c;
  const nextAfter = new Array<Candidate | undefined>(n).fill(undefined);
  let next: Candidate | undefined;
  for (let i = n - 1; i >= 0; i--) {
    nextAfter[i] = next;
    next = bySpecIndex[i] ?? next;
  }
  return { specIndex, bySpecIndex, nextAfter };
}

function advance(state: RoundRobinState, picked: string): void {
  state.streak = state.cursor === picked ? state.streak + 1 : 1;
  state.cursor = picked;
}

function decide(
  target: PairingTarget,
  request: VectorPairingRequest,
  pick: () => Candidate | undefined,
  refusals: PairingRefusal[],
): PairingDecision {
  const previous = request.current;
  if (previous !== undefined && stillListed(target, previous)) return { kind: 'keep', machine: previous };
  const chosen = pick();
  if (chosen === undefined) return noneDecision(target, request.key, refusals, previous);
  const reason = describe(target.strategy, chosen);
  return previous === undefined
    ? { kind: 'pair', machine: chosen.name, reason }
    : { kind: 'repair', machine: chosen.name, previous, reason };
}

/** The decision for one vector, against the counts in `target` as given. */
export function decidePairing(target: PairingTarget, request: VectorPairingRequest): PairingDecision {
  const { candidates, refusals } = eligibility(target);
  const pick = (): Candidate | undefined => {
    if (candidates.length === 0) return undefined;
    if (target.strategy === 'RoundRobin') {
      return roundRobinPick(target, candidates, turnLengths(candidates), {
        cursor: target.roundRobinCursor,
        streak: target.roundRobinStreak ?? 1,
      });
    }
    const better = target.strategy === 'MostFree' ? mostFreeBetter : fewestVectorsBetter;
    let best = candidates[0] as Candidate;
    for (const c of candidates) if (better(c, best) < 0) best = c;
    return best;
  };
  return decide(target, request, pick, refusals);
}

/** A binary min-heap under `better`, so a batch costs O(log machines) per vector rather than a scan. */
class Heap {
  private readonly items: Candidate[];
  constructor(
    items: readonly Candidate[],
    private readonly better: Better,
  ) {
    this.items = [...items];
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }
  get top(): Candidate | undefined {
    return this.items[0];
  }
  /** Restores order after the top's count changed. */
  topChanged(): void {
    this.down(0);
  }
  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.better(items[l] as Candidate, items[m] as Candidate) < 0) m = l;
      if (r < n && this.better(items[r] as Candidate, items[m] as Candidate) < 0) m = r;
      if (m === i) return;
      [items[i], items[m]] = [items[m] as Candidate, items[i] as Candidate];
      i = m;
    }
  }
}

/**
 * Decides many vectors at once. Vectors that keep their machine change nothing; the others are decided one at a
 * time in key order, each new pairing counted (and, for RoundRobin, advancing the cursor) before the next.
 * The result is the same as calling `decidePairing` for each in that order with the counts updated in between.
 */
export function pairVectors(target: PairingTarget, requests: VectorPairingRequest[]): Map<string, PairingDecision> {
  const out = new Map<string, PairingDecision>();
  const pending: VectorPairingRequest[] = [];
  const listed = new Set(target.machines.filter((m) => m.exists !== false).map((m) => m.name));
  for (const r of requests) {
    if (r.current !== undefined && listed.has(r.current)) out.set(r.key, { kind: 'keep', machine: r.current });
    else pending.push(r);
  }
  pending.sort((a, b) => byName(a.key, b.key));
  const { candidates, refusals } = eligibility(target);
  let pick: () => Candidate | undefined;
  if (candidates.length === 0) {
    pick = () => undefined;
  } else if (target.strategy === 'RoundRobin') {
    const turns = turnLengths(candidates);
    const index = roundRobinIndex(target, candidates);
    const state: RoundRobinState = { cursor: target.roundRobinCursor, streak: target.roundRobinStreak ?? 1 };
    pick = () => {
      const c = roundRobinPick(target, candidates, turns, state, index);
      advance(state, c.name);
      c.count += 1;
      return c;
    };
  } else {
    const heap = new Heap(candidates, target.strategy === 'MostFree' ? mostFreeBetter : fewestVectorsBetter);
    pick = () => {
      const c = heap.top as Candidate;
      c.count += 1;
      heap.topChanged();
      return c;
    };
  }
  for (const r of pending) out.set(r.key, decideCounted(target, r, pick, refusals));
  return out;
}

/** decide() for batches: the reason quotes the counts the choice was made on, not the incremented ones. */
function decideCounted(
  target: PairingTarget,
  request: VectorPairingRequest,
  pick: () => Candidate | undefined,
  refusals: PairingRefusal[],
): PairingDecision {
  return decide(
    target,
    request,
    () => {
      const c = pick();
      return c === undefined ? undefined : { ...c, count: c.count - 1 };
    },
    refusals,
  );
}

/**
 * The round-robin cursor and streak after applying `decisions` in order (as pairVectors returns them), for the
 * caller to persist so the next batch continues the turn. Keeps and refusals do not move the cursor.
 */
export function roundRobinAfter(
  target: Pick<PairingTarget, 'roundRobinCursor' | 'roundRobinStreak'>,
  decisions: Iterable<PairingDecision>,
): { cursor?: string; streak: number } {
  let cursor = target.roundRobinCursor;
  let streak = target.roundRobinStreak ?? 1;
  for (const d of decisions) {
    if (d.kind !== 'pair' && d.kind !== 'repair') continue;
    streak = cursor === d.machine ? streak + 1 : 1;
    cursor = d.machine;
  }
  return cursor === undefined ? { streak } : { cursor, streak };
}
