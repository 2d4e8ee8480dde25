import { access } from 'node:fs/promises';
import { constants } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { run, TESTBED_ROOT, TestBedError } from './run.ts';

/** Programs the test bed drives, and the Debian package that provides each. */
const REQUIRED: readonly { path: string; pkg: string }[] = [
  { path: '/usr/sbin/zfs-fuse', pkg: 'zfs-fuse' },
  { path: '/usr/sbin/zfs', pkg: 'zfs-fuse' },
  { path: '/usr/sbin/sshd', pkg: 'openssh-server' },
  { path: '/usr/bin/ssh-keygen', pkg: 'openssh-client' },
  { path: '/usr/bin/ssh', pkg: 'openssh-client' },
];

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/**
 * Installs zfs-fuse and OpenSSH from Debian when they are missing. Parallel test workers serialise on a
 * lock file (flock), because two apt-get runs at once fail on dpkg's own lock.
 */
export async function ensurePackages(): Promise<void> {
  const missing = new Set<string>();
  for (const { path, pkg } of REQUIRED) if (!(await executable(path))) missing.add(pkg);
  if (missing.size === 0) return;
  await mkdir(TESTBED_ROOT, { recursive: true });
  const pkgs = [...missing];
  const r = await run(
    [
      'flock', '-w', '600', `${TESTBED_ROOT}/apt.lock`,
      'sh', '-c',
      'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"',
      'sh', ...pkgs,
    ],
    { timeoutMs: 900_000 },
  );
  if (r.code !== 0) {
    throw new TestBedError(`cannot install ${pkgs.join(', ')} with apt-get (exit ${r.code}): ${r.stderr.trim().slice(-1500)}`);
  }
  // Debian starts sshd from postinst; the tests run their own daemons on their own ports.
  await run(['systemctl', 'stop', 'ssh']).catch(() => undefined);
  for (const { path, pkg } of REQUIRED) {
    if (!(await executable(path))) throw new TestBedError(`${path} is still missing after installing ${pkg}`);
  }
}
