import { mkdir, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureZfsFuse } from './zfs-fuse.ts';
import { isProcessAlive, ownerPid, run, runOk, TEST_PREFIX, TESTBED_ROOT, TestBedError, uniqueTestName } from './run.ts';

export interface TestPool {
  /** Pool name, e.g. "bdrt4711xk3j9a": unique per worker, recognisable as ours. */
  readonly name: string;
  /** Backing file (sparse). */
  readonly file: string;
  /** Directory holding the backing file and, for mounted pools, the mount points. */
  readonly dir: string;
  /** Where the pool's root dataset is mounted, when created with `mounted: true`. */
  readonly mountpoint: string | undefined;
  destroy(): Promise<void>;
}

export interface TestPoolOptions {
  /** Size of the sparse backing file; zfs-fuse needs at least 64 MiB. */
  sizeMb?: number;
  /**
   * Mount the datasets (FUSE) below the pool's directory so tests can write files into them. Off by
   * default: unmounted datasets are faster and never "busy" when received into or destroyed.
   */
  mounted?: boolean;
}

/**
 * Creates a file-backed pool on the shared zfs-fuse daemon. `cachefile=none` keeps it out of zpool.cache,
 * so a daemon restart never resurrects pools of earlier runs.
 */
export async function createTestPool(options: TestPoolOptions = {}): Promise<TestPool> {
  await ensureZfsFuse();
  await cleanStaleTestResources();
  const name = uniqueTestName();
  const dir = join(TESTBED_ROOT, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'owner'), `${process.pid}\n`);
  const file = join(dir, 'pool.img');
  await writeFile(file, '');
  await truncate(file, (options.sizeMb ?? 256) * 1024 * 1024);
  const mountpoint = options.mounted ? join(dir, 'mnt') : undefined;
  await runOk(['zpool', 'create', '-o', 'cachefile=none', '-m', mountpoint ?? 'none', name, file]);
  let destroyed = false;
  return {
    name,
    file,
    dir,
    mountpoint,
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      await destroyPool(name);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Destroys a pool, retrying while zfs-fuse still reports it busy (a send or unmount finishing). */
export async function destroyPool(name: string): Promise<void> {
  let last = '';
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await run(['zpool', 'destroy', '-f', name], { timeoutMs: 120_000 });
    if (r.code === 0 || /no such pool/.test(r.stderr)) return;
    last = r.stderr.trim();
    await new Promise((resolve) => setTimeout(resolve, 300 * (attempt + 1)));
  }
  throw new TestBedError(`cannot destroy test pool ${name}: ${last}`);
}

/**
 * Removes what crashed earlier runs left behind: pools and directories whose name carries the test prefix
 * and the id of a process that no longer exists, and that process's sshd daemons. Live workers' resources
 * are left alone, so parallel test files never clean each other up.
 */
export async function cleanStaleTestResources(): Promise<void> {
  const pools = await run(['zpool', 'list', '-H', '-o', 'name']);
  for (const pool of pools.stdout.split('\n')) {
    if (!pool.startsWith(TEST_PREFIX)) continue;
    const pid = ownerPid(pool);
    if (pid !== undefined && !isProcessAlive(pid)) await destroyPool(pool).catch(() => undefined);
  }
  const entries = await readdir(TESTBED_ROOT).catch(() => [] as string[]);
  for (const entry of entries) {
    const pid = ownerPid(entry);
    if (pid === undefined || isProcessAlive(pid)) continue;
    const dir = join(TESTBED_ROOT, entry);
    const sshdPid = Number((await readFile(join(dir, 'sshd.pid'), 'utf8').catch(() => '')).trim());
    if (Number.isInteger(sshdPid) && sshdPid > 0 && isProcessAlive(sshdPid)) {
      try {
        process.kill(sshdPid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
}
