import { startZfsFuseDaemon, zfsAnswers, ZfsSetupError } from '../../zfs/zfs-fuse-daemon.ts';
import { ensurePackages } from './packages.ts';
import { TESTBED_ROOT, TestBedError } from './run.ts';

/** Whether the zfs-fuse daemon answers on its socket. */
export function zfsFuseResponds(): Promise<boolean> {
  return zfsAnswers();
}

/**
 * Makes sure the packages are installed and the zfs-fuse daemon runs, starting it when needed (as
 * `bdr up --sandbox-pool` does, through the same zfs/zfs-fuse-daemon.ts). The daemon is shared by every test
 * worker and left running afterwards (like the system service it stands in for). Fails with a clear
 * TestBedError when it cannot start: integration tests must never silently skip.
 */
export async function ensureZfsFuse(): Promise<void> {
  await ensurePackages();
  if (await zfsAnswers()) return;
  try {
    await startZfsFuseDaemon({ lockFile: `${TESTBED_ROOT}/zfs-fuse.lock` });
  } catch (err) {
    if (err instanceof ZfsSetupError) throw new TestBedError(err.message, { cause: err });
    throw err;
  }
}
