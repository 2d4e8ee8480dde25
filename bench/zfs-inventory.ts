/**
 * Inventory cost on zfs-fuse, with its baseline measured in the same run:
 *
 *   baseline   `zfs list -H -o name -t snapshot -r` (names only, the cheapest listing there is)
 *   local      ZfsMachine.inventory() through execa: one `zfs get -Hp` with all inventory properties
 *   ssh        the same through a reused ssh2 connection
 *
 *   npx tsx bench/zfs-inventory.ts [--snapshots 1000] [--runs 5]
 *
 * Figures only, no assertions.
 */
import { LocalConnection } from '../nodes/local.ts';
import { ZfsMachine } from '../zfs/index.ts';
import { runOk, TestBed } from '../test/testbed/index.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

const SNAPSHOTS = arg('snapshots', 1000);
const RUNS = arg('runs', 5);

async function main(): Promise<void> {
  const bed = new TestBed();
  try {
    const [pool, machine] = await Promise.all([bed.pool(), bed.machine('bench-inventory')]);
    const dataset = `${pool.name}/many`;
    await runOk(['zfs', 'create', dataset]);
    const created = performance.now();
    await runOk(['bash', '-c', 'for ((i = 0; i < $2; i++)); do zfs snapshot "$1@s$i" || exit 1; done', 'bash', dataset, String(SNAPSHOTS)], {
      timeoutMs: 1_800_000,
    });
    const createMs = performance.now() - created;
    console.log(`created ${SNAPSHOTS} snapshots one by one: ${(createMs / 1000).toFixed(1)} s (${(createMs / SNAPSHOTS).toFixed(1)} ms each)`);

    const local = new ZfsMachine(new LocalConnection());
    const ssh = new ZfsMachine(machine.connect());
    await Promise.all([local.capabilities(), ssh.capabilities()]);
    const cases: [string, () => Promise<unknown>][] = [
      ['baseline: zfs list names only', () => runOk(['zfs', 'list', '-H', '-o', 'name', '-t', 'snapshot', '-r', dataset])],
      ['inventory, local', () => local.inventory({ roots: [pool.name] })],
      ['inventory, ssh (reused connection)', () => ssh.inventory({ roots: [pool.name] })],
    ];
    // Interleaved, so that a change in machine load hits every case alike.
    const samples = new Map<string, number[]>(cases.map(([label]) => [label, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const [label, once] of cases) {
        const started = performance.now();
        await once();
        samples.get(label)?.push(performance.now() - started);
      }
    }
    const medians = new Map<string, number>();
    for (const [label, ms] of samples) {
      ms.sort((x, y) => x - y);
      medians.set(label, ms[Math.floor(ms.length / 2)] ?? NaN);
    }
    const base = medians.get(cases[0]?.[0] ?? '') ?? NaN;
    console.log(`median of ${RUNS} runs over ${SNAPSHOTS} snapshots:`);
    for (const [label, ms] of medians) {
      console.log(`  ${label.padEnd(36)} ${ms.toFixed(0).padStart(6)} ms  ${(ms / SNAPSHOTS).toFixed(2)} ms/snapshot  ${(ms / base).toFixed(2)}x baseline`);
    }
  } finally {
    await bed.cleanup();
  }
}

await main();
