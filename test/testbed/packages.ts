import { access } from 'node:fs/promises';
import { constants } from 'node:fs';
import { installDebianPackages, ZfsSetupError } from '../../zfs/zfs-fuse-daemon.ts';
import { run, TESTBED_ROOT, TestBedError } from './run.ts';

/** Programs the test bed drives, and the Debian package that provides each. */
const REQUIRED: readonly { path: string; pkg: string }[] = [
  { path: '/usr/sbin/zfs-fuse', pkg: 'zfs-fuse' },
  { path: '/usr/sbin/zfs', pkg: 'zfs-fuse' },
  { path: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { path: '/usr/bin/ssh-keygen', pkg: 'openssh-client' },
  { path: '/usr/bin/ssh', pkg: 'openssh-client' },
  // The sending machine's pacer for a Vector's transport.bandwidthLimit (zfs/metered-transfer.ts).
  { path: '/usr/bin/pv', pkg: 'pv' },
  // The alert rules' checks and a real scrape (test/monitoring/), the Argo CD health checks, the guard's shell.
  { path: '/usr/bin/promtool', pkg: 'prometheus' },
  { path: '/usr/bin/prometheus', pkg: 'prometheus' },
  { path: '/usr/bin/lua5.4', pkg: 'lua5.4' },
  { path: '/usr/bin/shellcheck', pkg: 'shellcheck' },
  { path: '/usr/bin/dash', pkg: 'dash' },
  { path: '/usr/bin/openssl', pkg: 'openssl' },
  { path: '/usr/bin/git', pkg: 'git' },
];

/** The Debian packages the tests need that this machine lacks (none when all are there). */
export async function missingPackages(): Promise<string[]> {
  const missing = new Set<string>();
  for (const { path, pkg } of REQUIRED) if (!(await executable(path))) missing.add(pkg);
  return [...missing];
}

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/**
 * Installs zfs-fuse and OpenSSH from Debian when they are missing, with the apt-get step `bdr up --sandbox-pool`
 * uses too. Parallel test workers serialise on a lock file (flock), because two apt-get runs at once fail on
 * dpkg's own lock.
 */
export async function ensurePackages(): Promise<void> {
  const pkgs = await missingPackages();
  if (pkgs.length === 0) return;
  if (process.getuid?.() !== 0 || !(await executable('/usr/bin/apt-get'))) {
    throw new TestBedError(`the tests need root and the Debian packages ${pkgs.join(' ')}: run npm test as root on Debian or Ubuntu (it installs them), or apt-get install ${pkgs.join(' ')}`);
  }
  try {
    await installDebianPackages(pkgs, { lockFile: `${TESTBED_ROOT}/apt.lock` });
  } catch (err) {
    if (err instanceof ZfsSetupError) throw new TestBedError(err.message, { cause: err });
    throw err;
  }
  // Debian starts sshd and Prometheus from postinst; the tests run their own daemons on their own ports.
  await run(['systemctl', 'stop', 'ssh', 'prometheus']).catch(() => undefined);
  for (const { path, pkg } of REQUIRED) {
    if (!(await executable(path))) throw new TestBedError(`${path} is still missing after installing ${pkg}`);
  }
}
