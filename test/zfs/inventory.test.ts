import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecOptions, ExecResult, NodeConnection, RunningCommand, SpawnOptions } from '../../nodes/connection.ts';
import { ZfsMachine } from '../../zfs/index.ts';
import { runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';

/** Passes everything to a real connection and remembers which commands ran. */
class CountingConnection implements NodeConnection {
  readonly commands: string[][] = [];
  constructor(private readonly inner: NodeConnection) {}
  get description(): string {
    return this.inner.description;
  }
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    this.commands.push([...argv]);
    return this.inner.exec(argv, options);
  }
  spawn(argv: readonly string[], options?: SpawnOptions): RunningCommand {
    this.commands.push([...argv]);
    return this.inner.spawn(argv, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const SNAPSHOTS = 1000;
const bed = new TestBed();
let machine: TestMachine;
let pool: TestPool;
let dataset: string;
/** Per snapshot: the epoch seconds just before and just after it was taken. */
const taken = new Map<string, { before: number; after: number }>();

beforeAll(async () => {
  [machine, pool] = await Promise.all([bed.machine('inventory'), bed.pool()]);
  dataset = `${pool.name}/many`;
  await runOk(['zfs', 'create', dataset]);
  await runOk(['zfs', 'set', 'dev.bdr:owner=ns/many', dataset]);
  await runOk(['zfs', 'create', `${dataset}/child`]);
  // zfs-fuse takes one snapshot per command (25-75 ms each, depending on load): one local bash loop, with
  // $EPOCHSECONDS instead of forking date, keeps the overhead to the zfs commands themselves.
  const out = await runOk(
    [
      'bash', '-c',
      'for ((i = 0; i < $2; i++)); do b=$EPOCHSECONDS; zfs snapshot "$1@s$i" || exit 1; echo "$i $b $EPOCHSECONDS"; done',
      'bash', dataset, String(SNAPSHOTS),
    ],
    { timeoutMs: 600_000 },
  );
  for (const line of out.trim().split('\n')) {
    const [i, before, after] = line.split(' ').map(Number);
    taken.set(`${dataset}@s${i}`, { before: before ?? NaN, after: after ?? NaN });
  }
}, 600_000);
afterAll(() => bed.cleanup());

describe('inventory', () => {
  it(`lists ${SNAPSHOTS} snapshots in one zfs call over SSH with exact creation times and guids`, async () => {
    const counting = new CountingConnection(machine.connect());
    const zfs = new ZfsMachine(counting);
    await zfs.capabilities();
    counting.commands.length = 0;

    const started = performance.now();
    const inventory = await zfs.inventory({ roots: [pool.name] });
    const ms = performance.now() - started;
    console.log(`inventory of ${inventory.snapshots.length} snapshots over ssh: ${ms.toFixed(0)} ms`);

    // One zfs listing (and one zpool listing for the pools), nothing per dataset.
    expect(counting.commands.filter((c) => c[0] === 'zfs')).toHaveLength(1);
    expect(counting.commands.filter((c) => c[0] === 'zpool')).toHaveLength(1);

    const mine = inventory.snapshots.filter((s) => s.name.startsWith(`${dataset}@`));
    expect(mine).toHaveLength(SNAPSHOTS);
    // Ordered by creation: s0 … s999.
    expect(mine.map((s) => s.name)).toEqual(Array.from({ length: SNAPSHOTS }, (_, i) => `${dataset}@s${i}`));
    for (const snap of mine) {
      const window = taken.get(snap.name);
      expect(window, snap.name).toBeDefined();
      expect(snap.creation).toBeGreaterThanOrEqual(window?.before ?? Infinity);
      expect(snap.creation).toBeLessThanOrEqual(window?.after ?? -Infinity);
      expect(snap.guid).toMatch(/^\d+$/);
      expect(snap.type).toBe('snapshot');
      expect(snap.userrefs).toBe(0);
      expect(snap.userProperties['dev.bdr:owner']).toEqual({ value: 'ns/many', source: 'inherited', inheritedFrom: dataset });
    }
    expect(new Set(mine.map((s) => s.guid)).size).toBe(SNAPSHOTS);

    // GUIDs are 64-bit: compare a sample with ZFS's own per-snapshot answer, digit for digit.
    for (const i of [0, 1, 499, 998, 999]) {
      const name = `${dataset}@s${i}`;
      const guid = (await runOk(['zfs', 'get', '-H', '-p', '-o', 'value', 'guid', name])).trim();
      expect(mine[i]?.guid).toBe(guid);
    }

    const fs = inventory.datasets.find((d) => d.name === dataset);
    expect(fs).toMatchObject({ type: 'filesystem', userProperties: { 'dev.bdr:owner': { value: 'ns/many', source: 'local' } } });
    expect(inventory.datasets.map((d) => d.name)).toEqual([pool.name, dataset, `${dataset}/child`]);
  }, 120_000);

  it('reports pools with size, allocated, free and health', async () => {
    const zfs = new ZfsMachine(machine.connect());
    const { pools } = await zfs.inventory({ roots: [pool.name] });
    expect(pools).toHaveLength(1);
    const [p] = pools;
    expect(p?.name).toBe(pool.name);
    expect(p?.health).toBe('ONLINE');
    const fileBytes = 256 * 1024 * 1024;
    expect(p?.size).toBeGreaterThan(fileBytes * 0.9);
    expect(p?.size).toBeLessThanOrEqual(fileBytes);
    expect(p?.allocated).toBeGreaterThan(0);
    // zfs-fuse prints rounded units; allocated + free matches size within that rounding.
    expect(Math.abs((p?.allocated ?? 0) + (p?.free ?? 0) - (p?.size ?? 0))).toBeLessThan((p?.size ?? 0) * 0.02);
    expect(p?.exact).toBe((await zfs.capabilities()).zpoolParsable);
  });

  it('sees only what it is asked for and reads requested user properties', async () => {
    const zfs = new ZfsMachine(machine.connect());
    await runOk(['zfs', 'set', 'com.example:note=hello world', `${dataset}/child`]);
    const inventory = await zfs.inventory({ roots: [`${dataset}/child`], userProperties: ['com.example:note', 'dev.bdr:owner'] });
    expect(inventory.snapshots).toEqual([]);
    expect(inventory.datasets).toHaveLength(1);
    expect(inventory.datasets[0]?.userProperties).toEqual({
      'com.example:note': { value: 'hello world', source: 'local' },
      'dev.bdr:owner': { value: 'ns/many', source: 'inherited', inheritedFrom: dataset },
    });
  });
});
