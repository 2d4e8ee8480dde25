import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureZfs, observeZfsHost, thisHost, type ZfsHostEnvironment } from '../../zfs/sandbox.ts';
import { ZfsSetupError } from '../../zfs/zfs-fuse-daemon.ts';
import { ensureZfsFuse } from '../testbed/index.ts';

/**
 * ensureZfs observes the host for real; these tests point it at another user id, os-release and PATH (an empty
 * directory: no zpool, no apt-get, no zfs-fuse), so the cases that stop are seen without uninstalling anything.
 */
describe('ensureZfs on an injected environment', () => {
  let dir: string;
  const env = (change: Partial<ZfsHostEnvironment>): ZfsHostEnvironment => ({
    uid: 0,
    platform: 'linux',
    osReleaseFile: join(dir, 'debian'),
    path: [join(dir, 'bin')],
    zfsFuseDaemon: join(dir, 'bin', 'zfs-fuse'),
    ...change,
  });

  beforeAll(async () => {
    await ensureZfsFuse();
    dir = await mkdtemp(join(tmpdir(), 'bdr-zfs-host-'));
    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'debian'), 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n');
    await writeFile(join(dir, 'ubuntu'), 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n');
    await writeFile(join(dir, 'fedora'), 'NAME="Fedora Linux"\nID=fedora\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function stopLine(e: ZfsHostEnvironment, install = true): Promise<{ message: string; said: string[] }> {
    const said: string[] = [];
    const err = await ensureZfs({ install, say: (l) => said.push(l), env: e }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(ZfsSetupError);
    return { message: (err as Error).message, said };
  }

  it('sees this machine as it is: root on Debian, zfs-fuse installed and answering, apt-get present', async () => {
    expect(await observeZfsHost(thisHost(), true)).toEqual({
      platform: 'linux',
      zfsAnswers: true,
      zfsFuseInstalled: true,
      zpoolInstalled: true,
      root: true,
      os: { id: 'debian', idLike: [] },
      aptGet: true,
      installAllowed: true,
    });
    const said: string[] = [];
    await ensureZfs({ install: true, say: (l) => said.push(l) });
    expect(said).toEqual([]);
  });

  it('root on Debian without apt-get: one line, nothing installed', async () => {
    const r = await stopLine(env({}));
    expect(r.message).toBe(
      "bdr up --sandbox-pool needs ZFS: apt-get is not available here; install OpenZFS (apt install zfsutils-linux) or Debian's zfs-fuse (apt install zfs-fuse), then start it",
    );
    expect(r.said).toEqual([]);
  });

  it('not root on Ubuntu (apt-get present): one line naming what to install', async () => {
    const r = await stopLine(env({ uid: 1000, osReleaseFile: join(dir, 'ubuntu'), path: [join(dir, 'bin'), '/usr/bin'] }));
    expect(r.message).toBe(
      "bdr up --sandbox-pool needs ZFS: install OpenZFS (apt install zfsutils-linux) or Debian's zfs-fuse (apt install zfs-fuse), then start it (or run bdr up as root: it installs and starts zfs-fuse)",
    );
    expect(r.said).toEqual([]);
  });

  it('root elsewhere (Fedora) and root with --no-install: one line, nothing installed', async () => {
    expect((await stopLine(env({ osReleaseFile: join(dir, 'fedora'), path: [join(dir, 'bin'), '/usr/bin'] }))).message).toBe(
      'bdr up --sandbox-pool needs ZFS: install OpenZFS (https://openzfs.github.io/openzfs-docs/Getting%20Started/), then load it',
    );
    const noInstall = await stopLine(env({ path: [join(dir, 'bin'), '/usr/bin'] }), false);
    expect(noInstall.message).toMatch(/\(--no-install: bdr up installs nothing\)$/);
    expect(noInstall.said).toEqual([]);
  });
});
