/** Hand-computed pairing cases: each expected machine is worked out in the comment beside it. */
import { describe, expect, it } from 'vitest';
import { decidePairing, pairVectors, roundRobinAfter, type PairingMachine, type PairingTarget, type VectorPairingRequest } from '../../planning/pairing.ts';

const GiB = 1024 ** 3;

function machine(name: string, over: Partial<PairingMachine> = {}): PairingMachine {
  return { name, weight: 100, role: 'Storage', ready: true, sizeBytes: 100 * GiB, allocatedBytes: 0, vectorCount: 0, ...over };
}

function target(machines: PairingMachine[], over: Partial<PairingTarget> = {}): PairingTarget {
  return { strategy: 'MostFree', accessMode: 'ReadWrite', criticalPercent: 90, machines, ...over };
}

describe('decidePairing', () => {
  it('MostFree picks the machine with most free bytes', () => {
    // b: 100-10 = 90 GiB free, c: 100-40 = 60 GiB free -> b.
    const t = target([machine('c', { allocatedBytes: 40 * GiB }), machine('b', { allocatedBytes: 10 * GiB })]);
    expect(decidePairing(t, { key: 'ns/v' })).toMatchObject({ kind: 'pair', machine: 'b' });
  });

  it('MostFree shares free space among vectors and scales it by weight', () => {
    // b: 90 GiB / (2+1) = 30 GiB per vector; c: 60 GiB / (0+1) = 60 -> c.
    const t = target([machine('b', { allocatedBytes: 10 * GiB, vectorCount: 2 }), machine('c', { allocatedBytes: 40 * GiB })]);
    expect(decidePairing(t, { key: 'ns/v' })).toMatchObject({ kind: 'pair', machine: 'c' });
    // weight 300 on b: 3 × 30 = 90 > 60 -> b.
    const w = target([machine('b', { allocatedBytes: 10 * GiB, vectorCount: 2, weight: 300 }), machine('c', { allocatedBytes: 40 * GiB })]);
    expect(decidePairing(w, { key: 'ns/v' })).toMatchObject({ kind: 'pair', machine: 'b' });
  });

  it('MostFree compares weighted free space exactly beyond 2^53', () => {
    // z: 3 × (2^53 + 1)/3 = 2^53 + 1; a: 2 × 2^52 = 2^53. As doubles both are 2^53 (a tie a would win by name);
    // exactly, z has one byte more.
    const t = target([
      machine('a', { weight: 2, freeBytes: 2 ** 52 }),
      machine('z', { weight: 3, freeBytes: 3_002_399_751_580_331 }),
    ]);
    expect(3 * 3_002_399_751_580_331).toBe(2 ** 53); // the double product really does tie
    expect(decidePairing(t, { key: 'ns/v' })).toMatchObject({ kind: 'pair', machine: 'z' });
  });

  it('a machine at criticalPercent takes no new vector but keeps its own', () => {
    // b is at exactly 90% of 1000 GiB (100 GiB free): refused although c, at 50% of 100 GiB, has only 50 GiB free.
    const t = target([machine('b', { sizeBytes: 1000 * GiB, allocatedBytes: 900 * GiB }), machine('c', { allocatedBytes: 50 * GiB })]);
    expect(decidePairing(t, { key: 'ns/new' })).toMatchObject({ kind: 'pair', machine: 'c' });
    expect(decidePairing(t, { key: 'ns/old', current: 'b' })).toEqual({ kind: 'keep', machine: 'b' });
  });

  it('re-pairs only when the current machine left the target', () => {
    const t = target([machine('c')]);
    expect(decidePairing(t, { key: 'ns/v', current: 'b' })).toMatchObject({ kind: 'repair', machine: 'c', previous: 'b' });
    const gone = target([machine('b', { exists: false }), machine('c')]);
    expect(decidePairing(gone, { key: 'ns/v', current: 'b' })).toMatchObject({ kind: 'repair', machine: 'c', previous: 'b' });
  });

  it('names every refusal', () => {
    const t = target([
      machine('a', { weight: 0 }),
      machine('b', { role: 'Source' }),
      machine('c', { ready: false }),
      machine('d', { allocatedBytes: 95 * GiB }),
      machine('e', { sizeBytes: undefined, allocatedBytes: undefined }),
    ]);
    const d = decidePairing(t, { key: 'ns/v' });
    expect(d.kind).toBe('none');
    if (d.kind !== 'none') return;
    expect(d.refusals).toEqual([
      { machine: 'a', why: 'weight 0' },
      { machine: 'b', why: 'role Source, not Storage' },
      { machine: 'c', why: 'not Ready' },
      { machine: 'd', why: '95.0% allocated, at or above criticalPercent 90%' },
      { machine: 'e', why: 'capacity unknown' },
    ]);
    expect(d.message).toBe(
      'no machine can take vector ns/v: a: weight 0; b: role Source, not Storage; c: not Ready; ' +
        'd: 95.0% allocated, at or above criticalPercent 90%; e: capacity unknown',
    );
  });

  it('refuses a machine the caller marks unavailable, under every strategy', () => {
    for (const strategy of ['MostFree', 'FewestVectors', 'RoundRobin'] as const) {
      const t = target([machine('a', { unavailable: 'does not report pool tank' }), machine('b', { allocatedBytes: 99 * GiB, sizeBytes: 1000 * GiB })], { strategy });
      expect(decidePairing(t, { key: 'ns/v' })).toMatchObject({ kind: 'pair', machine: 'b' });
    }
    const only = decidePairing(target([machine('a', { unavailable: 'does not report pool tank' })]), { key: 'ns/v' });
    expect(only).toMatchObject({ kind: 'none', refusals: [{ machine: 'a', why: 'does not report pool tank' }] });
  });

  it('refuses everything on a ReadOnly or suspended target', () => {
    const ro = decidePairing(target([machine('a')], { accessMode: 'ReadOnly' }), { key: 'ns/v' });
    expect(ro).toMatchObject({ kind: 'none', refusals: [{ machine: 'a', why: 'StorageTarget is ReadOnly' }] });
    const su = decidePairing(target([machine('a')], { suspended: true }), { key: 'ns/v', current: 'gone' });
    expect(su).toMatchObject({ kind: 'none', previous: 'gone', refusals: [{ machine: 'a', why: 'StorageTarget is suspended' }] });
  });

  it('FewestVectors weighs counts by weight', () => {
    // a: (4+1)/100 = 0.05, b: (7+1)/200 = 0.04 -> b.
    const t = target([machine('a', { vectorCount: 4 }), machine('b', { vectorCount: 7, weight: 200 })], { strategy: 'FewestVectors' });
    expect(decidePairing(t, { key: 'ns/v' })).toMatchObject({ kind: 'pair', machine: 'b' });
  });

  it('RoundRobin follows spec order after the cursor, skipping refused machines', () => {
    const ms = [machine('z'), machine('a', { ready: false }), machine('m')];
    expect(decidePairing(target(ms, { strategy: 'RoundRobin' }), { key: 'ns/v' })).toMatchObject({ machine: 'z' });
    expect(decidePairing(target(ms, { strategy: 'RoundRobin', roundRobinCursor: 'z' }), { key: 'ns/v' })).toMatchObject({ machine: 'm' });
    expect(decidePairing(target(ms, { strategy: 'RoundRobin', roundRobinCursor: 'm' }), { key: 'ns/v' })).toMatchObject({ machine: 'z' });
  });
});

describe('pairVectors', () => {
  it('counts each new pairing before the next', () => {
    // Equal machines, FewestVectors: 4 new vectors alternate a, b, a, b (ties by name).
    const t = target([machine('b'), machine('a')], { strategy: 'FewestVectors' });
    const out = pairVectors(t, ['ns/1', 'ns/2', 'ns/3', 'ns/4'].map((key) => ({ key })));
    expect([...out.entries()].map(([k, d]) => [k, d.kind === 'none' ? '' : d.machine])).toEqual([
      ['ns/1', 'a'],
      ['ns/2', 'b'],
      ['ns/3', 'a'],
      ['ns/4', 'b'],
    ]);
  });

  it('RoundRobin gives a weight-200 machine two turns per cycle', () => {
    // turns: a = round(100/100) = 1, b = round(200/100) = 2 -> a b b a b b
    const t = target([machine('a'), machine('b', { weight: 200 })], { strategy: 'RoundRobin' });
    const out = pairVectors(t, ['ns/1', 'ns/2', 'ns/3', 'ns/4', 'ns/5', 'ns/6'].map((key) => ({ key })));
    expect([...out.values()].map((d) => (d.kind === 'none' ? '' : d.machine))).toEqual(['a', 'b', 'b', 'a', 'b', 'b']);
  });

  it('roundRobinAfter continues the turn where the batch left it', () => {
    // a b b a b b: the last two pairings went to b, so b's two-turn streak is complete.
    const t = target([machine('a'), machine('b', { weight: 200 })], { strategy: 'RoundRobin' });
    const requests: VectorPairingRequest[] = [{ key: 'ns/0', current: 'a' }, ...['ns/1', 'ns/2', 'ns/3', 'ns/4', 'ns/5', 'ns/6', 'ns/7'].map((key) => ({ key }))];
    const out = pairVectors(t, requests);
    // ns/0 keeps a (no move); ns/1..7 go a b b a b b a.
    expect(roundRobinAfter(t, out.values())).toEqual({ cursor: 'a', streak: 1 });
    expect(roundRobinAfter({ roundRobinCursor: 'b', roundRobinStreak: 1 }, [{ kind: 'pair', machine: 'b', reason: '' }])).toEqual({ cursor: 'b', streak: 2 });
  });
});
