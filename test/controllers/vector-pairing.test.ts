import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Machine, StorageTarget, Vector } from '../../api/types.ts';
import { PairingLedger } from '../../controllers/vector-pairing.ts';

const GiB = 2 ** 30;
const machine = (name: string, freeGiB: number, role: 'Storage' | 'Source' = 'Storage'): Machine => ({
  apiVersion: 'bdr.dev/v1alpha1',
  kind: 'Machine',
  metadata: { name },
  spec: { connection: { type: 'local', port: 22, user: 'root', connectTimeout: '10s' }, role, slots: { zfs: 2, transfer: 1 }, probeInterval: '5m', suspend: false },
  status: {
    conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    pools: [{ name: 'tank', sizeBytes: 100 * GiB, allocatedBytes: (100 - freeGiB) * GiB, freeBytes: freeGiB * GiB }],
  },
} as Machine);
const target = (strategy: 'MostFree' | 'FewestVectors' | 'RoundRobin', names: string[]): StorageTarget => ({
  apiVersion: 'bdr.dev/v1alpha1',
  kind: 'StorageTarget',
  metadata: { name: 'st' },
  spec: { machines: names.map((name) => ({ name, weight: 100 })), parentDataset: 'tank/replicas', pairing: { strategy }, accessMode: 'ReadWrite', suspend: false },
} as StorageTarget);
const vector = (name: string, pairedWith?: string): Vector => ({
  apiVersion: 'bdr.dev/v1alpha1',
  kind: 'Vector',
  metadata: { name, namespace: 'ns' },
  spec: { source: { datasetRef: { name: 'd' } }, target: { storageTargetRef: { name: 'st' } } },
  ...(pairedWith ? { status: { pairing: { machine: pairedWith } } } : {}),
} as Vector);

describe('PairingLedger', () => {
  it('decisions started at the same time count each other: N new vectors over N equal machines land one per machine', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 8 }), fc.constantFrom('MostFree' as const, 'FewestVectors' as const), async (n, strategy) => {
        const names = Array.from({ length: n }, (_, i) => `m${i}`);
        const machines = new Map(names.map((m) => [m, machine(m, 50)]));
        const vs = names.map((_, i) => vector(`v${i}`));
        const ledger = new PairingLedger();
        // All decisions begin before any finishes; the cache (statuses) shows no pairing at all.
        const decisions = await Promise.all(vs.map((v) => ledger.decide(target(strategy, names), v, () => vs, (m) => machines.get(m))));
        const chosen = decisions.map((d) => (d.kind === 'pair' ? d.machine : `not paired: ${d.kind}`));
        expect([...chosen].sort()).toEqual([...names].sort());
      }),
      { numRuns: 30 },
    );
  });

  it('is sticky to what it recorded even before status says so, and re-pairs when that machine leaves the target', async () => {
    const machines = new Map([['b', machine('b', 20)], ['c', machine('c', 90)]]);
    const v = vector('v');
    const ledger = new PairingLedger();
    const first = await ledger.decide(target('MostFree', ['b']), v, () => [v], (m) => machines.get(m));
    expect(first).toMatchObject({ kind: 'pair', machine: 'b' });
    // c has far more free space now, but b is still listed: the vector stays.
    expect(await ledger.decide(target('MostFree', ['b', 'c']), v, () => [v], (m) => machines.get(m))).toEqual({ kind: 'keep', machine: 'b' });
    expect(await ledger.decide(target('MostFree', ['c']), v, () => [v], (m) => machines.get(m))).toMatchObject({ kind: 'repair', machine: 'c', previous: 'b' });
    expect(ledger.machineOf(v)).toBe('c');
  });

  it('counts pairings from status for vectors it has not decided itself (after a restart)', async () => {
    const machines = new Map([['b', machine('b', 50)], ['c', machine('c', 50)]]);
    const existing = [vector('x', 'b'), vector('y', 'b')];
    const fresh = vector('z');
    const all = [...existing, fresh];
    const d = await new PairingLedger().decide(target('FewestVectors', ['b', 'c']), fresh, () => all, (m) => machines.get(m));
    expect(d).toMatchObject({ kind: 'pair', machine: 'c' });
  });
});
