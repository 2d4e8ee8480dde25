/**
 * Retention planning for 100,000 snapshots (issue 6 goal: under 100 ms).
 *
 * Run: `npx tsx bench/retention.ts`. Prints the median and best of several runs per scenario, the throughput,
 * and the ratio against two naive baselines measured in the same process: sorting the same snapshots newest
 * first (the least work any retention plan has to do), and that sort plus one small decision object per
 * snapshot (the least work any per-snapshot answer costs). Not a test: numbers depend on the machine and its load.
 */
import { performance } from 'node:perf_hooks';
import { planRetention, type RetentionPolicy, type SnapshotInfo } from '../planning/retention.ts';

const SNAPSHOTS = 100_000;
const STEP_MS = 5 * 60_000; // one snapshot every 5 minutes: ~347 days
const RUNS = 15;
const NEWEST = Date.parse('2026-11-26T00:00:00Z');
const OUTPUT_REASONS: readonly string[] = ['expired'];

interface Scenario {
  readonly name: string;
  readonly policy: RetentionPolicy;
  readonly protectedNames: readonly string[];
  readonly allocatedPercent: number;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'UTC, keepLast+hourly+daily', policy: { keepLast: 24, hourly: 48, daily: 30 }, protectedNames: [], allocatedPercent: 50 },
  {
    name: 'Europe/Berlin, all tiers',
    policy: { keepLast: 24, hourly: 48, daily: 30, weekly: 8, monthly: 12, yearly: 5, timeZone: 'Europe/Berlin' },
    protectedNames: ['snap-000500'],
    allocatedPercent: 50,
  },
  {
    name: 'Europe/Berlin, all tiers + maxSnapshots 100 + maxRolling 90% (pool at 99%)',
    policy: {
      keepLast: 24,
      hourly: 48,
      daily: 30,
      weekly: 8,
      monthly: 12,
      yearly: 5,
      timeZone: 'Europe/Berlin',
      maxSnapshots: 100,
      maxRolling: { capacityPercent: 90 },
    },
    protectedNames: ['snap-000500'],
    allocatedPercent: 99,
  },
];

/** Oldest first, as `zfs list -s creation` returns them; `shuffled` defeats the plan's sorted-input shortcut. */
function makeSnapshots(shuffled: boolean): SnapshotInfo[] {
  const snapshots = Array.from({ length: SNAPSHOTS }, (_, i): SnapshotInfo => ({
    name: `snap-${String(i).padStart(6, '0')}`,
    createdAt: NEWEST - (SNAPSHOTS - 1 - i) * STEP_MS,
    usedBytes: 1_000_000 + ((i * 7919) % 1_000_000),
  }));
  let seed = 42;
  for (let i = shuffled ? snapshots.length - 1 : 0; i > 0; i--) {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    const j = seed % (i + 1);
    [snapshots[i], snapshots[j]] = [snapshots[j] as SnapshotInfo, snapshots[i] as SnapshotInfo];
  }
  return snapshots;
}

/**
 * Wall time, and CPU time of this process (user + system, all threads): on a loaded machine the wall time also
 * counts the time spent waiting for a core; the CPU time does not.
 */
function measure(run: () => unknown): { median: number; best: number; cpuMedian: number } {
  for (let i = 0; i < 3; i++) run(); // warm up the JIT
  const times: number[] = [];
  const cpuTimes: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    run();
    times.push(performance.now() - start);
    const cpu = process.cpuUsage(cpuStart);
    cpuTimes.push((cpu.user + cpu.system) / 1000);
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  return { median: median(times), best: Math.min(...times), cpuMedian: median(cpuTimes) };
}

const describe = (t: { median: number; best: number; cpuMedian: number }): string =>
  `median ${t.median.toFixed(1)} ms, best ${t.best.toFixed(1)} ms, CPU median ${t.cpuMedian.toFixed(1)} ms`;

export function benchRetention(): void {
  console.log(`retention plan over ${SNAPSHOTS.toLocaleString('en')} snapshots (${RUNS} runs each, node ${process.version})`);
  for (const shuffled of [true, false]) benchInput(shuffled);
}

function benchInput(shuffled: boolean): void {
  const snapshots = makeSnapshots(shuffled);
  const totalUsed = snapshots.reduce((sum, s) => sum + (s.usedBytes ?? 0), 0);
  const baseline = measure(() => [...snapshots].sort((a, b) => (b.createdAt as number) - (a.createdAt as number)));
  // The least any per-snapshot answer costs: the sort plus one small result object per snapshot.
  const withOutput = measure(() =>
    [...snapshots]
      .sort((a, b) => (b.createdAt as number) - (a.createdAt as number))
      .map((s, k) => ({ name: s.name, createdAt: s.createdAt as number, keep: k < 100, reasons: OUTPUT_REASONS })),
  );
  console.log(`\n${shuffled ? 'shuffled input' : 'input sorted oldest first (as zfs list -s creation)'}`);
  console.log(`baseline (copy + sort newest first): ${describe(baseline)}`);
  console.log(`baseline (sort + one decision object per snapshot): ${describe(withOutput)}`);
  for (const scenario of SCENARIOS) {
    const sizeBytes = Math.ceil((totalUsed * 100) / scenario.allocatedPercent);
    const pool = { sizeBytes, allocatedBytes: totalUsed };
    let kept = 0;
    const timing = measure(() => {
      kept = planRetention({ snapshots, policy: scenario.policy, now: NEWEST + 60_000, protectedNames: scenario.protectedNames, pool }).keep.length;
    });
    const throughput = (SNAPSHOTS / timing.median) * 1000;
    console.log(
      `${scenario.name}: ${describe(timing)}, ` +
        `${(throughput / 1e6).toFixed(2)} M snapshots/s, ${(timing.median / baseline.median).toFixed(2)}× the sort baseline, ` +
        `${(timing.median / withOutput.median).toFixed(2)}× sort+output, kept ${kept}`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) benchRetention();
