import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalConnection } from '../../nodes/local.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { REPO_ROOT, runBdr } from '../helpers/run-bdr.ts';
import { ensureZfsFuse, run, runOk, uniqueTestName } from '../testbed/index.ts';

/** The quickstart's path, `bdr up --sandbox-pool`, on this machine where zfs-fuse is installed and running. */
describe('bdr up --sandbox-pool', () => {
  const pool = uniqueTestName();
  let dir: string;

  beforeAll(async () => {
    await ensureZfsFuse();
    dir = await mkdtemp(join(tmpdir(), 'bdr-sandbox-'));
    // The quickstart's manifests, on a pool of this test's own.
    const quickstart = await readFile(join(REPO_ROOT, 'examples/quickstart/quickstart.yaml'), 'utf8');
    expect(quickstart).toContain('name: bdr-quickstart/demo');
    await mkdir(join(dir, 'repo'));
    await writeFile(join(dir, 'repo', 'quickstart.yaml'), quickstart.replace('name: bdr-quickstart/demo', `name: ${pool}/demo`).replace(/root: bdr-quickstart$/m, `root: ${pool}`));
  }, 600_000);

  afterAll(async () => {
    await run(['zpool', 'destroy', '-f', pool], { timeoutMs: 120_000 });
    await rm(dir, { recursive: true, force: true });
  }, 180_000);

  it('with ZFS answering: says nothing about installing, creates the pool, and the Dataset gets its first restore point', async () => {
    const r = await runBdr(['up', '--repo', join(dir, 'repo'), '--state', join(dir, 'state'), '--sandbox-pool', pool, '--once', '--no-metrics'], { timeoutMs: 180_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`sandbox:     pool ${pool} created (backed by ${join(dir, 'state', 'sandbox', `${pool}.img`)})`);
    expect(`${r.stdout}\n${r.stderr}`).not.toMatch(/install|apt-get|zfs-fuse/i);
    const inv = await new ZfsMachine(new LocalConnection()).inventory({ roots: [`${pool}/demo`] });
    const owned = inv.snapshots.filter((s) => s.userProperties['dev.bdr:owner']?.value === 'bdr');
    expect(owned.map((s) => s.name)).toEqual([expect.stringMatching(new RegExp(`^${pool}/demo@bdr-\\d{8}T\\d{6}Z$`))]);
  }, 240_000);

  it('not as root, with or without --no-install: exits 3 with one line naming what to do, and creates nothing', async () => {
    // nobody cannot reach zfs-fuse's socket: the real situation of a user without root.
    const state = join(dir, 'nobody');
    await chmod(dir, 0o711); // mkdtemp's 0700 would stop nobody before bdr gets to ZFS
    await mkdir(state);
    await chown(state, 65534, 65534);
    // nobody runs bdr from a copy it can read: the checkout itself may sit in a private directory (/root, mktemp -d).
    const code = join(dir, 'code');
    await mkdir(code);
    for (const entry of await readdir(REPO_ROOT)) {
      if (entry === '.git' || entry === '.bdr-state') continue;
      await runOk(['cp', '-a', '--no-preserve=ownership', join(REPO_ROOT, entry), join(code, entry)]);
    }
    await runOk(['chmod', '-R', 'a+rX', code]);
    const other = uniqueTestName();
    const asNobody = (...extra: string[]) =>
      execa(
        'runuser',
        ['-u', 'nobody', '--', process.execPath, join(code, 'bin/bdr.js'), 'up', '--repo', join(code, 'examples/quickstart'), '--state', join(state, 's'), '--sandbox-pool', other, '--once', '--no-metrics', ...extra],
        { cwd: code, reject: false, timeout: 120_000, env: { NO_COLOR: '1' } },
      );
    const r = await asNobody();
    expect(r.exitCode, String(r.stderr)).toBe(3);
    expect(r.stderr).toBe(
      'bdr: bdr up --sandbox-pool needs ZFS: zfs-fuse is installed but does not answer to this user; run bdr up as root (it starts the daemon), or start zfs-fuse as root',
    );
    const optedOut = await asNobody('--no-install');
    expect(optedOut.exitCode, String(optedOut.stderr)).toBe(3);
    expect(optedOut.stderr).toBe(
      'bdr: bdr up --sandbox-pool needs ZFS: zfs-fuse is installed but does not answer; start it as root (zfs-fuse) (--no-install: bdr up starts nothing)',
    );
    expect((await run(['zpool', 'list', '-H', '-o', 'name', other])).code).not.toBe(0);
  }, 180_000);
});
