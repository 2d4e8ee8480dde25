/**
 * Replication planning for 10,000 source snapshots × 1,000 target snapshots (zrepl #480: 30 min of planning
 * for 65k snapshots; goal G9 in the anchors: 100 datasets × 1,000 snapshots in ≤ 10 s).
 *
 * Run: `node --expose-gc --import tsx bench/replication-plan.ts` (without --expose-gc the memory figures are
 * noisier). Prints the median and best of several runs per scenario, the CPU time (the median is the figure a
 * loaded machine disturbs most; compare the best and CPU ratios too), the heap a plan allocates
 * and retains, and the ratio against a baseline measured in the same process: one `planRetention` over the same
 * snapshots (target plus source), the least a planner that lets the remote policy choose what to send must
 * do. Not a test: numbers depend on the machine and its load.
 */
import { performance } from 'node:perf_hooks';
import { planReplication, type ReplicaSnapshot, type ReplicationInput } from '../planning/replication.ts';
import { planRetention, type RetentionPolicy } from '../planning/retention.ts';

const SOURCE = 10_000;
const TARGET = 1_000;
const STEP_MS = 5 * 60_000; // a restore point every 5 minutes on the source: ~35 days
const RUNS = 15;
const NEWEST = Date.parse('2026-11-26T00:00:00Z');
const POLICY: RetentionPolicy = { hourly: 48, daily: 30, weekly: 8, monthly: 12 };
const CAPS = { sendCompressed: true, sendRaw: true, sendLargeBlocks: true, resumeTokens: true };

function sourceSnapshots(): ReplicaSnapshot[] {
  return Array.from({ length: SOURCE }, (_, i) => {
    const createdAt = NEWEST - (SOURCE - 1 - i) * STEP_MS;
    return { name: `tank/vm@bdr-${i}`, guid: String(1e15 + i), createdAt, createTxg: 1_000 + i, held: i === 0 ? ['bdr:vm'] : [] };
  });
}

/** TARGET snapshots: TARGET-1 older points the source no longer has (one a day before the source's history), then the base. */
function targetSnapshots(source: readonly ReplicaSnapshot[], baseIndex: number): ReplicaSnapshot[] {
  const oldest = (source[0] as ReplicaSnapshot).createdAt;
  const old = Array.from({ length: TARGET - 1 }, (_, i): ReplicaSnapshot => ({
    name: `backup/vm@old-${i}`,
    guid: String(2e15 + i),
    createdAt: oldest - (TARGET - 1 - i) * 86_400_000,
    createTxg: 50 + i,
  }));
  const base = source[baseIndex] as ReplicaSnapshot;
  return [...old, { name: `backup/vm@bdr-${baseIndex}`, guid: base.guid, createdAt: base.createdAt, createTxg: 5_000, held: ['bdr:vm'] }];
}

interface Timing {
  median: number;
  best: number;
  cpuMedian: number;
}

function measure(run: () => unknown): Timing {
  for (let i = 0; i < 3; i++) run(); // warm up the JIT
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    run();
    times.push(performance.now() - start);
    const used = process.cpuUsage(cpuStart);
    cpu.push((used.user + used.system) / 1000);
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  return { median: median(times), best: Math.min(...times), cpuMedian: median(cpu) };
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

/**
 * Heap allocated while planning once (no GC in between, so an upper bound of the peak), and retained per result
 * (averaged over KEPT results held at once, so that one GC's noise does not swamp a small figure).
 */
const KEPT = 20;
function memory(run: () => unknown): { allocatedMb: number; retainedMb: number } {
  gc();
  const before = process.memoryUsage().heapUsed;
  const first = run();
  const during = process.memoryUsage().heapUsed;
  const results = [first];
  for (let i = 1; i < KEPT; i++) results.push(run());
  gc();
  const after = process.memoryUsage().heapUsed;
  if (results.some((r) => r === undefined)) throw new Error('no result');
  return { allocatedMb: (during - before) / 2 ** 20, retainedMb: (after - before) / KEPT / 2 ** 20 };
}

const show = (t: Timing): string => `median ${t.median.toFixed(1)} ms, best ${t.best.toFixed(1)} ms, CPU median ${t.cpuMedian.toFixed(1)} ms`;

export function benchReplicationPlan(): void {
  const hasGc = typeof (globalThis as { gc?: unknown }).gc === 'function';
  console.log(`replication plan: ${SOURCE.toLocaleString('en')} source × ${TARGET.toLocaleString('en')} target snapshots, policy ${JSON.stringify(POLICY)} (${RUNS} runs each, node ${process.version}${hasGc ? '' : ', without --expose-gc: memory figures are rough'})`);
  const source = sourceSnapshots();
  const scenarios: { name: string; target: ReplicationInput['target'] }[] = [
    { name: 'catch-up: base is the oldest source point, 9,999 candidates', target: { dataset: 'backup/vm', exists: true, snapshots: targetSnapshots(source, 0) } },
    { name: 'steady state: base is the second newest, 1 candidate', target: { dataset: 'backup/vm', exists: true, snapshots: targetSnapshots(source, SOURCE - 2) } },
    { name: 'initial: empty target, 10,000 candidates', target: { dataset: 'backup/vm', exists: false, snapshots: [] } },
  ];
  for (const scenario of scenarios) {
    const input: ReplicationInput = {
      now: NEWEST + 60_000,
      source: { dataset: 'tank/vm', snapshots: source },
      target: scenario.target,
      remotePolicy: POLICY,
      capabilities: { source: CAPS, target: CAPS },
      holdTag: 'bdr:vm',
    };
    // Baseline: one retention evaluation over the target plus every source snapshot.
    const union = [...scenario.target.snapshots, ...source].map((s) => ({ name: s.name, createdAt: s.createdAt }));
    const baseline = measure(() => planRetention({ snapshots: union, policy: POLICY, now: input.now }));
    let summary = '';
    const timing = measure(() => {
      const plan = planReplication(input);
      summary = plan.kind === 'send' ? `${plan.steps.length} steps (${plan.steps.map((s) => s.mode).join('')}), ${plan.prunes.length} prunes` : plan.kind;
    });
    const mem = memory(() => planReplication(input));
    console.log(`\n${scenario.name}: ${summary}`);
    console.log(`  baseline (one planRetention over ${union.length.toLocaleString('en')} snapshots): ${show(baseline)}`);
    console.log(
      `  planReplication: ${show(timing)}; vs the baseline: ${(timing.median / baseline.median).toFixed(2)}× median, ` +
        `${(timing.best / baseline.best).toFixed(2)}× best, ${(timing.cpuMedian / baseline.cpuMedian).toFixed(2)}× CPU`,
    );
    console.log(`  heap: ${mem.allocatedMb.toFixed(1)} MB allocated by one plan, ${mem.retainedMb.toFixed(2)} MB retained per result`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) benchReplicationPlan();
