/**
 * Properties of the pairing decision over random targets. The refusal rules, each strategy's order and the
 * round-robin cycle are re-derived here by independent oracles (exact BigInt arithmetic, an expanded turn
 * sequence), never by calling the functions under test.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decidePairing,
  pairVectors,
  type PairingDecision,
  type PairingMachine,
  type PairingStrategy,
  type PairingTarget,
  type VectorPairingRequest,
} from '../../planning/pairing.ts';

const NAMES = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'] as const;

/** Mostly eligible machines (so strategies get exercised), with every refusal cause drawn now and then. */
const machineArb = (name: string): fc.Arbitrary<PairingMachine> =>
  fc
    .record({
      weight: fc.oneof(fc.constant(100), fc.constant(0), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 1000 })),
      role: fc.constantFrom('Storage', 'Storage', 'Storage', 'Storage', 'Storage', 'Source', 'Aggregator', undefined),
      ready: fc.constantFrom(true, true, true, true, false),
      exists: fc.constantFrom(true, true, true, undefined, undefined, false),
      // Sizes up to 2^52 so weight × free × count overflows doubles and the exact comparison matters; sizes that
      // are multiples of 100 with a whole allocated percent land exactly on criticalPercent now and then.
      capacity: fc.oneof(
        fc.constant(undefined),
        fc.record({ size: fc.integer({ min: 0, max: 2 ** 52 }), alloc: fc.integer({ min: 0, max: 1000 }).map((f) => ({ per: 1000, f })) }),
        fc.record({ size: fc.integer({ min: 0, max: 2 ** 40 }).map((k) => k * 100), alloc: fc.integer({ min: 0, max: 100 }).map((f) => ({ per: 100, f })) }),
        fc.record({ size: fc.integer({ min: 0, max: 2 ** 52 }), alloc: fc.constant(undefined) }),
      ),
      freeOverride: fc.option(fc.integer({ min: 0, max: 2 ** 52 }), { nil: undefined, freq: 5 }),
      vectorCount: fc.integer({ min: 0, max: 50 }),
      unavailable: fc.constantFrom(undefined, undefined, undefined, undefined, 'pool not reported'),
    })
    .map(({ capacity, freeOverride, unavailable, ...rest }) => {
      const m: PairingMachine = { name, ...rest, role: rest.role as PairingMachine['role'] };
      if (unavailable !== undefined) m.unavailable = unavailable;
      if (capacity !== undefined) {
        m.sizeBytes = capacity.size;
        if (capacity.alloc !== undefined) m.allocatedBytes = Math.floor((capacity.size / capacity.alloc.per) * capacity.alloc.f);
      }
      if (freeOverride !== undefined) m.freeBytes = freeOverride;
      return m;
    });

const targetArb = (strategy?: PairingStrategy): fc.Arbitrary<PairingTarget> =>
  fc
    .record({
      strategy: strategy === undefined ? fc.constantFrom<PairingStrategy>('MostFree', 'FewestVectors', 'RoundRobin') : fc.constant(strategy),
      accessMode: fc.constantFrom<'ReadWrite' | 'ReadOnly'>('ReadWrite', 'ReadWrite', 'ReadWrite', 'ReadWrite', 'ReadOnly'),
      criticalPercent: fc.integer({ min: 1, max: 100 }),
      suspended: fc.constantFrom(undefined, undefined, false, false, true),
      names: fc.shuffledSubarray([...NAMES], { minLength: 0, maxLength: NAMES.length }),
      cursorPick: fc.integer({ min: -1, max: NAMES.length - 1 }),
      streak: fc.integer({ min: 1, max: 5 }),
    })
    .chain(({ names, cursorPick, streak, ...rest }) =>
      fc.tuple(...names.map((n) => machineArb(n))).map((machines): PairingTarget => {
        const t: PairingTarget = { ...rest, machines };
        if (cursorPick >= 0) {
          // Mostly a listed machine, sometimes one that left the target.
          t.roundRobinCursor = names.length > 0 && cursorPick % 4 !== 3 ? names[cursorPick % names.length] : NAMES[cursorPick];
          t.roundRobinStreak = streak;
        }
        return t;
      }),
    );

// ---- independent oracle ----

function oracleFree(m: PairingMachine): bigint | undefined {
  if (m.freeBytes !== undefined) return BigInt(m.freeBytes);
  if (m.sizeBytes !== undefined && m.allocatedBytes !== undefined) {
    const f = BigInt(m.sizeBytes) - BigInt(m.allocatedBytes);
    return f < 0n ? 0n : f;
  }
  return undefined;
}

function oracleEligible(t: PairingTarget, m: PairingMachine): boolean {
  if (t.suspended === true || t.accessMode === 'ReadOnly') return false;
  if (m.exists === false || m.weight === 0 || m.role !== 'Storage' || !m.ready || m.unavailable !== undefined) return false;
  if (m.sizeBytes !== undefined && m.allocatedBytes !== undefined) {
    if (m.sizeBytes === 0) return false;
    // allocated / size < critical / 100  <=>  100·allocated < critical·size
    return 100n * BigInt(m.allocatedBytes) < BigInt(t.criticalPercent) * BigInt(m.sizeBytes);
  }
  return t.strategy !== 'MostFree' || oracleFree(m) !== undefined;
}

/** Rational score as [numerator, denominator]; larger is better. */
function oracleScore(t: PairingTarget, m: PairingMachine, count: number): [bigint, bigint] {
  if (t.strategy === 'MostFree') return [BigInt(m.weight) * (oracleFree(m) ?? 0n), BigInt(count + 1)];
  return [BigInt(m.weight), BigInt(count + 1)]; // FewestVectors: weight/(n+1) largest = (n+1)/weight smallest
}

function oracleBest(t: PairingTarget, counts: Map<string, number>): string | undefined {
  const eligible = t.machines.filter((m) => oracleEligible(t, m));
  if (eligible.length === 0) return undefined;
  const scored = eligible.map((m) => ({ name: m.name, s: oracleScore(t, m, counts.get(m.name) ?? m.vectorCount) }));
  scored.sort((x, y) => {
    const l = x.s[0] * y.s[1];
    const r = y.s[0] * x.s[1];
    if (l !== r) return l > r ? -1 : 1;
    return x.name < y.name ? -1 : 1;
  });
  return scored[0]?.name;
}

/** Round robin as one expanded cycle: each eligible machine repeated round(weight / min weight) times, in spec order. */
function oracleRoundRobin(t: PairingTarget, cursor: string | undefined, streak: number): string | undefined {
  const eligible = t.machines.filter((m) => oracleEligible(t, m));
  if (eligible.length === 0) return undefined;
  const min = Math.min(...eligible.map((m) => m.weight));
  const cycle: { name: string; turn: number }[] = [];
  for (const m of eligible) {
    const turns = Math.max(1, Math.round(m.weight / min));
    for (let k = 1; k <= turns; k++) cycle.push({ name: m.name, turn: k });
  }
  if (cursor === undefined) return cycle[0]?.name;
  const at = cycle.findIndex((e) => e.name === cursor && e.turn === Math.min(streak, cycle.filter((c) => c.name === cursor).length));
  if (at >= 0) return cycle[(at + 1) % cycle.length]?.name;
  // Cursor not eligible: the next eligible machine after its spec position, or the first one.
  const specIndex = t.machines.findIndex((m) => m.name === cursor);
  if (specIndex < 0) return cycle[0]?.name;
  const after = eligible.find((m) => t.machines.indexOf(m) > specIndex);
  return (after ?? eligible[0])?.name;
}

const machineOf = (d: PairingDecision): string | undefined => (d.kind === 'none' ? undefined : d.machine);

describe('decidePairing properties', () => {
  it('a new pairing never lands on a refused machine, and refuses only when no machine is eligible', () => {
    fc.assert(
      fc.property(targetArb(), (t) => {
        const d = decidePairing(t, { key: 'ns/v' });
        const eligible = t.machines.filter((m) => oracleEligible(t, m)).map((m) => m.name);
        if (d.kind === 'none') {
          expect(eligible).toEqual([]);
          expect(d.refusals.map((r) => r.machine)).toEqual(t.machines.map((m) => m.name));
          for (const r of d.refusals) expect(d.message).toContain(`${r.machine}: ${r.why}`);
        } else {
          expect(d.kind).toBe('pair');
          expect(eligible).toContain(d.machine);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('is sticky: a listed current machine is kept under any capacity, weight, readiness or access change', () => {
    fc.assert(
      fc.property(targetArb(), fc.nat(), (t, i) => {
        const listed = t.machines.filter((m) => m.exists !== false);
        fc.pre(listed.length > 0);
        const current = (listed[i % listed.length] as PairingMachine).name;
        expect(decidePairing(t, { key: 'ns/v', current })).toEqual({ kind: 'keep', machine: current });
        expect(pairVectors(t, [{ key: 'ns/v', current }]).get('ns/v')).toEqual({ kind: 'keep', machine: current });
      }),
      { numRuns: 1000 },
    );
  });

  it('re-pairs (never keeps) when the current machine left the target or no longer exists', () => {
    fc.assert(
      fc.property(targetArb(), (t) => {
        const gone = t.machines.find((m) => m.exists === false)?.name ?? 'departed';
        const d = decidePairing(t, { key: 'ns/v', current: gone });
        expect(d.kind === 'repair' || d.kind === 'none').toBe(true);
        if (d.kind === 'repair') expect(d.previous).toBe(gone);
        if (d.kind === 'none') expect(d.previous).toBe(gone);
      }),
      { numRuns: 500 },
    );
  });

  it('MostFree and FewestVectors pick the best machine by the exact weighted score, ties by name', () => {
    fc.assert(
      fc.property(fc.constantFrom<PairingStrategy>('MostFree', 'FewestVectors').chain(targetArb), (t) => {
        expect(machineOf(decidePairing(t, { key: 'ns/v' }))).toBe(oracleBest(t, new Map()));
      }),
      { numRuns: 2000 },
    );
  });

  it('RoundRobin follows the expanded turn cycle after the cursor', () => {
    fc.assert(
      fc.property(targetArb('RoundRobin'), (t) => {
        const d = decidePairing(t, { key: 'ns/v' });
        expect(machineOf(d)).toBe(oracleRoundRobin(t, t.roundRobinCursor, t.roundRobinStreak ?? 1));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('pairVectors properties', () => {
  const batchArb = fc.tuple(targetArb(), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 10 }));

  it('matches the oracle decided one vector at a time with counts (and the cursor) updated in between', () => {
    fc.assert(
      fc.property(batchArb, ([t, fresh, kept]) => {
        const listed = t.machines.filter((m) => m.exists !== false).map((m) => m.name);
        const requests: VectorPairingRequest[] = [
          ...Array.from({ length: fresh }, (_, i) => ({ key: `ns/new-${String(i).padStart(3, '0')}` })),
          ...Array.from({ length: listed.length > 0 ? kept : 0 }, (_, i) => ({ key: `keep/${i}`, current: listed[i % listed.length] })),
        ];
        const out = pairVectors(t, [...requests].reverse());
        const counts = new Map<string, number>();
        let cursor = t.roundRobinCursor;
        let streak = t.roundRobinStreak ?? 1;
        for (const r of [...requests].filter((q) => q.current === undefined).sort((x, y) => (x.key < y.key ? -1 : 1))) {
          const expected = t.strategy === 'RoundRobin' ? oracleRoundRobin(t, cursor, streak) : oracleBest(t, counts);
          expect(machineOf(out.get(r.key) as PairingDecision)).toBe(expected);
          if (expected !== undefined) {
            const m = t.machines.find((x) => x.name === expected) as PairingMachine;
            counts.set(expected, (counts.get(expected) ?? m.vectorCount) + 1);
            streak = cursor === expected ? streak + 1 : 1;
            cursor = expected;
          }
        }
        for (const r of requests.filter((q) => q.current !== undefined)) {
          expect(out.get(r.key)).toEqual({ kind: 'keep', machine: r.current });
        }
        expect(out.size).toBe(requests.length);
      }),
      { numRuns: 500 },
    );
  });

  it('never overloads: every machine that took a new vector was the best choice when it took its last one', () => {
    fc.assert(
      fc.property(fc.constantFrom<PairingStrategy>('MostFree', 'FewestVectors').chain(targetArb), fc.integer({ min: 1, max: 200 }), (t, n) => {
        const out = pairVectors(t, Array.from({ length: n }, (_, i) => ({ key: `ns/${i}` })));
        const final = new Map(t.machines.map((m) => [m.name, m.vectorCount]));
        for (const d of out.values()) if (d.kind === 'pair') final.set(d.machine, (final.get(d.machine) ?? 0) + 1);
        const eligible = t.machines.filter((m) => oracleEligible(t, m));
        for (const a of eligible) {
          const took = (final.get(a.name) ?? 0) - a.vectorCount;
          if (took === 0) continue;
          // a's last vector was chosen at count final-1; every other machine b then held at most its final count,
          // so a's score at final-1 is at least b's score at b's final count.
          const [an, ad] = oracleScore(t, a, (final.get(a.name) ?? 0) - 1);
          for (const b of eligible) {
            if (b === a) continue;
            const [bn, bd] = oracleScore(t, b, final.get(b.name) ?? 0);
            expect(an * bd >= bn * ad).toBe(true);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('spreads a batch over equal machines within one vector of each other (FewestVectors)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 500 }), (machines, n) => {
        const t: PairingTarget = {
          strategy: 'FewestVectors',
          accessMode: 'ReadWrite',
          criticalPercent: 90,
          machines: Array.from({ length: machines }, (_, i) => ({ name: `m${i}`, weight: 100, role: 'Storage', ready: true, vectorCount: 0 })),
        };
        const counts = new Map<string, number>();
        for (const d of pairVectors(t, Array.from({ length: n }, (_, i) => ({ key: `ns/${i}` }))).values()) {
          if (d.kind === 'pair') counts.set(d.machine, (counts.get(d.machine) ?? 0) + 1);
        }
        const values = t.machines.map((m) => counts.get(m.name) ?? 0);
        expect(Math.max(...values) - Math.min(...values)).toBeLessThanOrEqual(1);
        expect(values.reduce((s, v) => s + v, 0)).toBe(n);
      }),
    );
  });
});
