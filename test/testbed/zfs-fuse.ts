import { mkdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensurePackages } from './packages.ts';
import { run, TESTBED_ROOT, TestBedError } from './run.ts';

/** Whether the zfs-fuse daemon answers on its socket. */
export async function zfsFuseResponds(): Promise<boolean> {
  const r = await run(['zpool', 'list', '-H', '-o', 'name'], { timeoutMs: 30_000 });
  return r.code === 0;
}

/**
 * Makes sure the packages are installed and the zfs-fuse daemon runs, starting it when needed. The daemon
 * is shared by every test worker and left running afterwards (like the system service it stands in for).
 * Fails with a clear TestBedError when it cannot start: integration tests must never silently skip.
 */
export async function ensureZfsFuse(): Promise<void> {
  await ensurePackages();
  if (await zfsFuseResponds()) return;
  await mkdir(TESTBED_ROOT, { recursive: true });
  // Serialised so that parallel workers do not race to start it; a second daemon would exit anyway.
  const start = await run(
    [
      'flock', '-w', '60', `${TESTBED_ROOT}/zfs-fuse.lock`,
      'sh', '-c',
      // The limits mirror Debian's init script: zfs-fuse needs a large stack and unlimited address space.
      'zpool list -H -o name >/dev/null 2>&1 && exit 0; ' +
        // A daemon that died (killed, crashed) leaves its pid file behind, and zfs-fuse refuses to start over it.
        // (Checked by name: the stale pid may belong to another process by now.)
        'pid=$(cat /var/run/zfs-fuse.pid 2>/dev/null); ' +
        '[ -n "$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" != zfs-fuse ] && rm -f /var/run/zfs-fuse.pid; ' +
        'ulimit -s unlimited 2>/dev/null; ulimit -v unlimited 2>/dev/null; ' +
        'exec /usr/sbin/zfs-fuse --pidfile /var/run/zfs-fuse.pid </dev/null >/dev/null 2>&1',
    ],
    { timeoutMs: 90_000 },
  );
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (await zfsFuseResponds()) return;
    await sleep(200);
  }
  const fuse = await run(['ls', '-l', '/dev/fuse']);
  throw new TestBedError(
    `the zfs-fuse daemon does not respond after starting it (start exit ${start.code}${start.stderr ? `: ${start.stderr.trim()}` : ''}). ` +
      `It needs root and /dev/fuse (${fuse.code === 0 ? fuse.stdout.trim() : 'missing'}); check \`zfs-fuse --no-daemon\` by hand.`,
  );
}
