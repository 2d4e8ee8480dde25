/**
 * Before any test file runs: the real parts the tests drive are installed, as `npm start` installs zfs-fuse.
 * On Debian or Ubuntu as root, missing packages are installed with apt-get from the machine's own apt sources;
 * anywhere else `npm test` stops here with one line naming what to install, instead of failing test by test.
 */
import { ensurePackages } from './testbed/packages.ts';
import { run } from './testbed/run.ts';

export default async function setup(): Promise<void> {
  await ensurePackages();
  const kubectl = await run(['sh', '-c', 'command -v kubectl']).catch(() => undefined);
  if (!kubectl || kubectl.code !== 0) {
    throw new Error('the tests drive the real kubectl, which Debian does not package: install kubectl (it is on this project\'s machine image) and run npm test again');
  }
}
