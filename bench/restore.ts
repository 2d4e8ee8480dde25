/**
 * `bdr restore` of the oldest vs the newest of 500 restore points (issue 6: "as fast as of the newest").
 *
 * Run (as root, zfs-fuse available; the test bed starts the daemon if needed):
 *   node --import tsx bench/restore.ts [--points 500] [--reps 7]
 *
 * Creates a file-backed zfs-fuse pool with one dataset and N restore points taken the way the controller
 * takes them (`zfs snapshot -o dev.bdr:owner=bdr DS@bdr-<UTC>`), plus a sibling dataset with 100
 * snapshots that a restore must not look at. Then, several times in alternating order, restores the oldest
 * and the newest point with `--snapshot` (one `zfs get` of that snapshot) and with `--at` (one `zfs get -d 1`
 * listing of this dataset), through the same `restore()` the command runs, over a LocalConnection; the clone
 * is destroyed after each (not timed). A bare `zfs clone` is timed as the floor. Prints each sample, the
 * medians and the oldest/newest ratio. Not a test: the numbers depend on the machine and its load.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { restore, type RestoreChoice } from '../cli/commands/restore.ts';
import { LocalConnection } from '../nodes/local.ts';
import { snapshotShortName } from '../planning/dataset-plan.ts';
import { ZfsMachine } from '../zfs/machine.ts';
import { createTestPool, runOk } from '../test/testbed/index.ts';

const { values } = parseArgs({ options: { points: { type: 'string', default: '500' }, reps: { type: 'string', default: '7' } } });
const POINTS = Number(values.points);
const REPS = Number(values.reps);
const SIBLING_POINTS = 100;
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const fmt = (ms: number): string => ms.toFixed(1).padStart(7);

async function snapshots(dataset: string, count: number, owned: boolean): Promise<void> {
  // A few at a time: each is one process and one zfs-fuse transaction.
  const names = Array.from({ length: count }, (_, i) => `${dataset}@${snapshotShortName(T0 + i * HOUR)}`);
  for (let i = 0; i < names.length; i += 8) {
    await Promise.all(names.slice(i, i + 8).map((n) => runOk(['zfs', 'snapshot', ...(owned ? ['-o', 'dev.bdr:owner=bdr'] : []), n])));
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/restore.ts needs root (zfs-fuse pools)');
  const pool = await createTestPool({ sizeMb: 256 });
  try {
    const dataset = `${pool.name}/vms`;
    const sibling = `${pool.name}/other`;
    await runOk(['zfs', 'create', dataset]);
    await runOk(['zfs', 'create', sibling]);
    let t = performance.now();
    await Promise.all([snapshots(dataset, POINTS, true), snapshots(sibling, SIBLING_POINTS, false)]);
    console.log(`created ${POINTS} restore points on ${dataset} (+${SIBLING_POINTS} on ${sibling}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const zfs = new ZfsMachine(new LocalConnection());
    const oldest = snapshotShortName(T0);
    const newest = snapshotShortName(T0 + (POINTS - 1) * HOUR);
    const cases: Array<{ label: string; choice: RestoreChoice; expect: string }> = [
      { label: '--snapshot oldest', choice: { snapshot: oldest }, expect: oldest },
      { label: '--snapshot newest', choice: { snapshot: newest }, expect: newest },
      { label: '--at oldest      ', choice: { at: T0 + HOUR / 2 }, expect: oldest },
      { label: '--at newest      ', choice: { at: T0 + POINTS * HOUR }, expect: newest },
    ];
    const samples = new Map<string, number[]>(cases.map((c) => [c.label, []]));
    const bare: Record<'oldest' | 'newest', number[]> = { oldest: [], newest: [] };
    let n = 0;
    const target = () => `${pool.name}/restore/r${n++}`;

    // Warm-up: the first command pays for process and cache start-up.
    const warm = target();
    await restore(zfs, { dataset, choice: { snapshot: newest }, target: warm });
    await runOk(['zfs', 'destroy', warm]);

    for (let rep = 0; rep < REPS; rep++) {
      const order = rep % 2 === 0 ? cases : [...cases].reverse();
      for (const c of order) {
        const to = target();
        t = performance.now();
        const result = await restore(zfs, { dataset, choice: c.choice, target: to });
        samples.get(c.label)?.push(performance.now() - t);
        if (!result.snapshot.endsWith(`@${c.expect}`)) throw new Error(`${c.label}: restored ${result.snapshot}, expected ${c.expect}`);
        await runOk(['zfs', 'destroy', to]);
      }
      for (const which of rep % 2 === 0 ? (['oldest', 'newest'] as const) : (['newest', 'oldest'] as const)) {
        const to = target();
        t = performance.now();
        await runOk(['zfs', 'clone', '-p', `${dataset}@${which === 'oldest' ? oldest : newest}`, to]);
        bare[which].push(performance.now() - t);
        await runOk(['zfs', 'destroy', to]);
      }
    }

    console.log(`\n${REPS} repetitions, ms (zfs-fuse, LocalConnection; load average ${(await import('node:os')).loadavg()[0]?.toFixed(2)})`);
    for (const [label, xs] of samples) console.log(`${label}  median ${fmt(median(xs))}   samples ${xs.map((x) => x.toFixed(0)).join(' ')}`);
    console.log(`bare zfs clone oldest  median ${fmt(median(bare.oldest))}   samples ${bare.oldest.map((x) => x.toFixed(0)).join(' ')}`);
    console.log(`bare zfs clone newest  median ${fmt(median(bare.newest))}   samples ${bare.newest.map((x) => x.toFixed(0)).join(' ')}`);
    const ratio = (a: string, b: string) => median(samples.get(a) ?? []) / median(samples.get(b) ?? []);
    console.log(`\nratio oldest/newest: --snapshot ${ratio('--snapshot oldest', '--snapshot newest').toFixed(2)}, --at ${ratio('--at oldest      ', '--at newest      ').toFixed(2)}, bare clone ${(median(bare.oldest) / median(bare.newest)).toFixed(2)}`);
  } finally {
    await pool.destroy();
  }
}

await main();
