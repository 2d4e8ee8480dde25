/**
 * Debian's zfs-fuse on the host bdr runs on: installing it with apt-get and starting its daemon the way Debian's
 * init script does. Shared by `bdr up --sandbox-pool` (the quickstart) and the test bed, which both need a
 * working ZFS on a machine that may have none. Local only: the daemon and the lock files are on this host.
 */
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeConnection } from '../nodes/connection.ts';
import { LocalConnection } from '../nodes/local.ts';

export const ZFS_FUSE_DAEMON = '/usr/sbin/zfs-fuse';
export const ZFS_FUSE_PIDFILE = '/var/run/zfs-fuse.pid';
/** Root-only directory: these locks are taken as root, so they must not sit where others can plant a link. */
const DEFAULT_APT_LOCK = '/run/bdr-apt.lock';
const DEFAULT_START_LOCK = '/run/bdr-zfs-fuse.lock';

/** Why ZFS could not be set up, in one line a user can act on. */
export class ZfsSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZfsSetupError';
  }
}

/** Whether a ZFS daemon or module answers `zpool list` for this user. */
export async function zfsAnswers(connection: NodeConnection = new LocalConnection(), zpool = 'zpool'): Promise<boolean> {
  const r = await connection.exec([zpool, 'list', '-H', '-o', 'name'], { timeoutMs: 30_000 });
  return r.code === 0;
}

export interface LockOptions {
  /** flock file that serialises this step across processes (parallel test workers, a second bdr up). */
  lockFile?: string;
  connection?: NodeConnection;
}

/**
 * `apt-get update` then `apt-get install` of `packages`, noninteractive and without recommends. Serialised with
 * flock, because two apt-get runs at once fail on dpkg's own lock instead of waiting.
 */
export async function installDebianPackages(packages: readonly string[], options: LockOptions = {}): Promise<void> {
  if (packages.length === 0) return;
  for (const p of packages) if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw new TypeError(`not a Debian package name: ${p}`);
  const lockFile = options.lockFile ?? DEFAULT_APT_LOCK;
  await mkdir(dirname(lockFile), { recursive: true });
  const connection = options.connection ?? new LocalConnection();
  const r = await connection.exec(
    [
      'flock', '-w', '600', lockFile,
      'sh', '-c',
      'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"',
      'sh', ...packages,
    ],
    { timeoutMs: 900_000 },
  );
  if (r.code !== 0) {
    const tail = r.stderr.trim().split('\n').slice(-3).join(' | ').slice(-600);
    throw new ZfsSetupError(`apt-get install ${packages.join(' ')} failed (exit ${r.code})${tail ? `: ${tail}` : ''}`);
  }
}

/**
 * Starts the zfs-fuse daemon unless it answers already, and waits until it does. The daemon outlives the caller,
 * like the system service it stands in for. Needs root and /dev/fuse.
 */
export async function startZfsFuseDaemon(options: LockOptions & { waitMs?: number } = {}): Promise<void> {
  const lockFile = options.lockFile ?? DEFAULT_START_LOCK;
  await mkdir(dirname(lockFile), { recursive: true });
  const connection = options.connection ?? new LocalConnection();
  // Serialised so that parallel starters do not race; a second daemon would exit anyway.
  const start = await connection.exec(
    [
      'flock', '-w', '60', lockFile,
      'sh', '-c',
      'zpool list -H -o name >/dev/null 2>&1 && exit 0; ' +
        // A daemon that died (killed, crashed) leaves its pid file behind, and zfs-fuse refuses to start over it.
        // (Checked by name: the stale pid may belong to another process by now.)
        `pid=$(cat ${ZFS_FUSE_PIDFILE} 2>/dev/null); ` +
        `[ -n "$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" != zfs-fuse ] && rm -f ${ZFS_FUSE_PIDFILE}; ` +
        // The limits mirror Debian's init script: zfs-fuse needs a large stack and unlimited address space.
        'ulimit -s unlimited 2>/dev/null; ulimit -v unlimited 2>/dev/null; ' +
        `exec ${ZFS_FUSE_DAEMON} --pidfile ${ZFS_FUSE_PIDFILE} </dev/null >/dev/null 2>&1`,
    ],
    { timeoutMs: 90_000 },
  );
  const deadline = Date.now() + (options.waitMs ?? 30_000);
  while (Date.now() < deadline) {
    if (await zfsAnswers(connection)) return;
    await sleep(200);
  }
  const fuse = await connection.exec(['ls', '-l', '/dev/fuse']);
  throw new ZfsSetupError(
    `the zfs-fuse daemon does not answer after starting it (start exit ${start.code}${start.stderr ? `: ${start.stderr.trim()}` : ''}); ` +
      `it needs root and /dev/fuse (${fuse.code === 0 ? fuse.stdout.trim() : 'missing'}): try \`zfs-fuse --no-daemon\` by hand`,
  );
}
