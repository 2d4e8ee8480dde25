/**
 * Pairing 10,000 vectors over 100 machines (issue 9).
 *
 * Run: `node --expose-gc --import tsx bench/pairing.ts` (without --expose-gc the memory figure is noisier).
 * For each strategy, times `pairVectors` on a batch of new vectors and, in the same process, a naive baseline that
 * calls `decidePairing` once per vector with the counts (and round-robin cursor) updated in between: the same
 * answers, but a full scan of the machines per vector. Also a mixed batch where half the vectors keep their
 * machine. Prints median/best wall time, CPU time, the heap the result holds, and the ratio to the baseline.
 * Not a test: numbers depend on the machine and its load.
 */
import { performance } from 'node:perf_hooks';
import {
  decidePairing,
  pairVectors,
  type PairingDecision,
  type PairingMachine,
  type PairingStrategy,
  type PairingTarget,
  type VectorPairingRequest,
} from '../planning/pairing.ts';

const VECTORS = 10_000;
const MACHINES = 100;
const RUNS = 9;
const GiB = 1024 ** 3;

function makeTarget(strategy: PairingStrategy): PairingTarget {
  const machines: PairingMachine[] = Array.from({ length: MACHINES }, (_, i) => ({
    name: `storage-${String(i).padStart(3, '0')}`,
    weight: [100, 100, 200, 50, 0][i % 5] as number,
    role: i % 17 === 0 ? 'Source' : 'Storage',
    ready: i % 23 !== 0,
    sizeBytes: (10_000 + ((i * 7919) % 5_000)) * GiB,
    allocatedBytes: ((i * 104_729) % 9_500) * GiB,
    vectorCount: (i * 31) % 40,
  }));
  return { strategy, accessMode: 'ReadWrite', criticalPercent: 90, machines, roundRobinCursor: 'storage-042' };
}

function requests(keepEvery: number, target: PairingTarget): VectorPairingRequest[] {
  return Array.from({ length: VECTORS }, (_, i) => {
    const key = `ns-${i % 50}/vector-${String(i).padStart(5, '0')}`;
    return keepEvery > 0 && i % keepEvery === 0 ? { key, current: (target.machines[i % MACHINES] as PairingMachine).name } : { key };
  });
}

/** decidePairing per vector, counts and cursor updated in between: the obvious O(vectors × machines) loop. */
function naive(target: PairingTarget, reqs: readonly VectorPairingRequest[]): Map<string, PairingDecision> {
  const t: PairingTarget = { ...target, machines: target.machines.map((m) => ({ ...m })) };
  const byName = new Map(t.machines.map((m) => [m.name, m]));
  const out = new Map<string, PairingDecision>();
  const sorted = [...reqs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const r of sorted) {
    const d = decidePairing(t, r);
    out.set(r.key, d);
    if (d.kind === 'pair' || d.kind === 'repair') {
      (byName.get(d.machine) as PairingMachine).vectorCount += 1;
      t.roundRobinStreak = t.roundRobinCursor === d.machine ? (t.roundRobinStreak ?? 1) + 1 : 1;
      t.roundRobinCursor = d.machine;
    }
  }
  return out;
}

interface Timing {
  median: number;
  best: number;
  cpuMedian: number;
}

function measure(run: () => unknown): Timing {
  for (let i = 0; i < 2; i++) run();
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] as number;
  return { median: median(times), best: Math.min(...times), cpuMedian: median(cpu) };
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Heap held by one result (after a collection when --expose-gc is given). */
function retainedHeap(run: () => unknown): number {
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const result = run();
  gc?.();
  const after = process.memoryUsage().heapUsed;
  if (result === undefined) throw new Error('no result');
  return after - before;
}

const fmt = (t: Timing): string => `median ${t.median.toFixed(1)} ms, best ${t.best.toFixed(1)} ms, CPU ${t.cpuMedian.toFixed(1)} ms`;

function spread(result: Map<string, PairingDecision>): string {
  const counts = new Map<string, number>();
  let none = 0;
  for (const d of result.values()) {
    if (d.kind === 'pair' || d.kind === 'repair') counts.set(d.machine, (counts.get(d.machine) ?? 0) + 1);
    if (d.kind === 'none') none += 1;
  }
  const values = [...counts.values()];
  return `${counts.size} machines took new vectors (max ${Math.max(...values)}, min ${Math.min(...values)}), ${none} unpaired`;
}

export function benchPairing(): void {
  console.log(`pairing ${VECTORS.toLocaleString('en')} vectors over ${MACHINES} machines (${RUNS} runs, node ${process.version}${gc ? '' : ', no --expose-gc'})`);
  for (const strategy of ['MostFree', 'FewestVectors', 'RoundRobin'] as const) {
    for (const keepEvery of [0, 2]) {
      const target = makeTarget(strategy);
      const reqs = requests(keepEvery, target);
      const fast = pairVectors(target, reqs);
      const slow = naive(target, reqs);
      // Same answers, or the comparison means nothing.
      for (const [k, d] of fast) if (JSON.stringify(d) !== JSON.stringify(slow.get(k))) throw new Error(`pairVectors and the naive loop differ on ${k}`);
      const tFast = measure(() => pairVectors(target, reqs));
      const tSlow = measure(() => naive(target, reqs));
      const heap = retainedHeap(() => pairVectors(target, reqs));
      console.log(
        `${strategy}${keepEvery > 0 ? ', half keep their machine' : ', all new'}: pairVectors ${fmt(tFast)}; ` +
          `naive ${fmt(tSlow)}; ${(tSlow.median / tFast.median).toFixed(1)}× faster; result holds ${(heap / 1024 / 1024).toFixed(1)} MiB; ${spread(fast)}`,
      );
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) benchPairing();
