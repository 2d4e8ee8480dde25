/**
 * A throw-away pool backed by a sparse file on the host bdr runs on, for trying bdr (the quickstart) without
 * touching a real pool. Created only when asked for by name, never over an existing pool; `cachefile=none`
 * keeps it out of the system's pool cache, so it does not come back after a reboot unless bdr creates it again.
 * Before that, `ensureZfs` makes ZFS answer on this host (installing or starting zfs-fuse where allowed).
 */
import { constants } from 'node:fs';
import { access, mkdir, open, readFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { assertName } from '../api/names.ts';
import { LocalConnection } from '../nodes/local.ts';
import { decideZfsHost, parseOsRelease, type ZfsHostFacts, type ZfsHostStep } from '../planning/zfs-host.ts';
import { zfsCommandError } from './errors.ts';
import { installDebianPackages, startZfsFuseDaemon, ZFS_FUSE_DAEMON, ZFS_FUSE_PIDFILE, ZfsSetupError } from './zfs-fuse-daemon.ts';

export interface SandboxPool {
  name: string;
  file: string;
  created: boolean;
}

export async function ensureSandboxPool(name: string, file: string, sizeBytes = 1024 ** 3): Promise<SandboxPool> {
  assertName('pool', name);
  // The backing file is created here with local file calls, so the pool can only be local too.
  const connection = new LocalConnection();
  const list = await connection.exec(['zpool', 'list', '-H', '-o', 'name', name]);
  if (list.code === 0) return { name, file, created: false };
  await mkdir(dirname(file), { recursive: true });
  const handle = await open(file, 'a');
  try {
    if ((await handle.stat()).size < sizeBytes) await handle.truncate(sizeBytes);
  } finally {
    await handle.close();
  }
  const argv = ['zpool', 'create', '-o', 'cachefile=none', '-m', 'none', name, file];
  const created = await connection.exec(argv);
  if (created.code !== 0) throw zfsCommandError(argv, created, connection.description);
  return { name, file, created: true };
}

/** Where the host's facts come from: the real ones by default, another user, OS or PATH in tests. */
export interface ZfsHostEnvironment {
  readonly uid: number;
  readonly platform: string;
  readonly osReleaseFile: string;
  /** Directories searched for zpool and apt-get, in order. */
  readonly path: readonly string[];
  readonly zfsFuseDaemon: string;
}

export function thisHost(): ZfsHostEnvironment {
  // A non-root user's PATH often lacks the sbin directories where zpool and zfs-fuse live.
  const path = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((d) => d !== '');
  return { uid: process.getuid?.() ?? -1, platform: process.platform, osReleaseFile: '/etc/os-release', path, zfsFuseDaemon: ZFS_FUSE_DAEMON };
}

async function executable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}

async function findProgram(name: string, path: readonly string[]): Promise<string | undefined> {
  for (const dir of path) if (await executable(join(dir, name))) return join(dir, name);
  return undefined;
}

export async function observeZfsHost(env: ZfsHostEnvironment, installAllowed: boolean): Promise<ZfsHostFacts> {
  const [zpool, aptGet, zfsFuseInstalled, osRelease] = await Promise.all([
    findProgram('zpool', env.path),
    findProgram('apt-get', env.path),
    executable(env.zfsFuseDaemon),
    readFile(env.osReleaseFile, 'utf8').catch(() => ''),
  ]);
  const answers = zpool !== undefined && (await new LocalConnection().exec([zpool, 'list', '-H', '-o', 'name'], { timeoutMs: 30_000 })).code === 0;
  return {
    platform: env.platform,
    zfsAnswers: answers,
    zfsFuseInstalled,
    zpoolInstalled: zpool !== undefined,
    root: env.uid === 0,
    os: parseOsRelease(osRelease),
    aptGet: aptGet !== undefined,
    installAllowed,
  };
}

export interface EnsureZfsOptions {
  /** False with `bdr up --no-install`: never run apt-get. */
  install: boolean;
  /** Told each step before it is taken, one line each. */
  say: (line: string) => void;
  env?: ZfsHostEnvironment;
}

/**
 * Makes ZFS answer on this host for the sandbox pool, as `decideZfsHost` says: installs Debian's zfs-fuse and
 * starts its daemon where that is allowed, or throws ZfsSetupError with the one line naming what to install.
 * Each action is taken at most once; if ZFS still does not answer after it, that is the error.
 */
export async function ensureZfs(options: EnsureZfsOptions): Promise<void> {
  const env = options.env ?? thisHost();
  const taken = new Set<ZfsHostStep['kind']>();
  for (;;) {
    const step = decideZfsHost(await observeZfsHost(env, options.install));
    if (step.kind === 'ready') {
      if (taken.size > 0) options.say('ZFS answers: zfs-fuse is running');
      return;
    }
    if (step.kind === 'stop') throw new ZfsSetupError(step.message);
    if (taken.has(step.kind)) {
      throw new ZfsSetupError(
        step.kind === 'install'
          ? `apt-get installed ${step.packages.join(' ')}, but ${env.zfsFuseDaemon} is still missing`
          : 'the zfs-fuse daemon was started but ZFS still does not answer',
      );
    }
    taken.add(step.kind);
    if (step.kind === 'install') {
      options.say(`ZFS is not installed: installing Debian's ${step.packages.join(' ')} with apt-get (bdr up --no-install skips this)`);
      await installDebianPackages(step.packages);
      options.say(`installed ${step.packages.join(' ')}`);
    } else {
      options.say(`starting the zfs-fuse daemon as Debian's init script does: ${env.zfsFuseDaemon} --pidfile ${ZFS_FUSE_PIDFILE}`);
      await startZfsFuseDaemon();
    }
  }
}
