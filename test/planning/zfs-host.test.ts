import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideZfsHost, isDebianLike, parseOsRelease, type ZfsHostFacts } from '../../planning/zfs-host.ts';

const debian = { id: 'debian', idLike: [] };
/** A fresh Debian machine without ZFS, bdr run as root: the case where bdr installs zfs-fuse. */
const fresh: ZfsHostFacts = {
  platform: 'linux',
  zfsAnswers: false,
  zfsFuseInstalled: false,
  zpoolInstalled: false,
  root: true,
  os: debian,
  aptGet: true,
  installAllowed: true,
};
const APT_HINT = "install OpenZFS (apt install zfsutils-linux) or Debian's zfs-fuse (apt install zfs-fuse), then start it";

describe('parseOsRelease', () => {
  it('reads ID and ID_LIKE, quoted or not', () => {
    expect(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')).toEqual({ id: 'debian', idLike: [] });
    expect(parseOsRelease('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')).toEqual({ id: 'ubuntu', idLike: ['debian'] });
    expect(parseOsRelease('ID=linuxmint\nID_LIKE="ubuntu debian"\n')).toEqual({ id: 'linuxmint', idLike: ['ubuntu', 'debian'] });
    expect(parseOsRelease("ID='fedora'\n")).toEqual({ id: 'fedora', idLike: [] });
    expect(parseOsRelease('')).toEqual({ idLike: [] });
  });

  it('knows Debian, Ubuntu and what derives from them', () => {
    expect(isDebianLike({ id: 'debian', idLike: [] })).toBe(true);
    expect(isDebianLike({ id: 'ubuntu', idLike: ['debian'] })).toBe(true);
    expect(isDebianLike({ id: 'pop', idLike: ['ubuntu', 'debian'] })).toBe(true);
    expect(isDebianLike({ id: 'fedora', idLike: [] })).toBe(false);
    expect(isDebianLike({ id: 'rocky', idLike: ['rhel', 'centos', 'fedora'] })).toBe(false);
    expect(isDebianLike({ idLike: [] })).toBe(false);
  });
});

describe('decideZfsHost', () => {
  it('does nothing when ZFS answers, whoever and wherever', () => {
    expect(decideZfsHost({ ...fresh, zfsAnswers: true, zpoolInstalled: true })).toEqual({ kind: 'ready' });
    expect(decideZfsHost({ ...fresh, zfsAnswers: true, root: false, os: { id: 'fedora', idLike: [] }, aptGet: false, installAllowed: false })).toEqual({ kind: 'ready' });
  });

  it('installs zfs-fuse on Debian or Ubuntu as root with apt-get', () => {
    expect(decideZfsHost(fresh)).toEqual({ kind: 'install', packages: ['zfs-fuse'] });
    expect(decideZfsHost({ ...fresh, os: { id: 'ubuntu', idLike: ['debian'] } })).toEqual({ kind: 'install', packages: ['zfs-fuse'] });
  });

  it('starts an installed zfs-fuse that does not answer, as root', () => {
    expect(decideZfsHost({ ...fresh, zfsFuseInstalled: true, zpoolInstalled: true })).toEqual({ kind: 'start-zfs-fuse' });
  });

  it('stops with one line naming what to install everywhere else', () => {
    const cases: [Partial<ZfsHostFacts>, string][] = [
      [{ root: false }, `bdr up --sandbox-pool needs ZFS: ${APT_HINT} (or run bdr up as root: it installs and starts zfs-fuse)`],
      [{ aptGet: false }, `bdr up --sandbox-pool needs ZFS: apt-get is not available here; ${APT_HINT}`],
      [{ installAllowed: false }, `bdr up --sandbox-pool needs ZFS: ${APT_HINT} (--no-install: bdr up installs nothing)`],
      [
        { os: { id: 'fedora', idLike: [] } },
        'bdr up --sandbox-pool needs ZFS: install OpenZFS (https://openzfs.github.io/openzfs-docs/Getting%20Started/), then load it',
      ],
      [
        { platform: 'darwin', os: { idLike: [] } },
        'bdr up --sandbox-pool needs ZFS: install OpenZFS (https://openzfs.github.io/openzfs-docs/Getting%20Started/), then load it',
      ],
      [
        { zfsFuseInstalled: true, zpoolInstalled: true, root: false },
        'bdr up --sandbox-pool needs ZFS: zfs-fuse is installed but does not answer to this user; run bdr up as root (it starts the daemon), or start zfs-fuse as root',
      ],
      [
        { zfsFuseInstalled: true, zpoolInstalled: true, installAllowed: false },
        'bdr up --sandbox-pool needs ZFS: zfs-fuse is installed but does not answer; start it as root (zfs-fuse) (--no-install: bdr up starts nothing)',
      ],
      [{ zpoolInstalled: true }, 'bdr up --sandbox-pool needs ZFS: zpool is installed but `zpool list` fails; load the OpenZFS kernel module (modprobe zfs)'],
      [
        { zpoolInstalled: true, root: false },
        'bdr up --sandbox-pool needs ZFS: zpool is installed but `zpool list` fails for this user; run bdr up as root (and load the OpenZFS kernel module, modprobe zfs, if it still fails)',
      ],
    ];
    for (const [change, message] of cases) {
      expect(decideZfsHost({ ...fresh, ...change }), JSON.stringify(change)).toEqual({ kind: 'stop', message });
      expect(message).not.toContain('\n');
    }
  });

  const facts = fc.record({
    platform: fc.constantFrom('linux', 'darwin', 'freebsd'),
    zfsAnswers: fc.boolean(),
    zfsFuseInstalled: fc.boolean(),
    zpoolInstalled: fc.boolean(),
    root: fc.boolean(),
    os: fc.record({ id: fc.constantFrom('debian', 'ubuntu', 'fedora', 'arch', 'linuxmint'), idLike: fc.subarray(['debian', 'ubuntu', 'rhel']) }),
    aptGet: fc.boolean(),
    installAllowed: fc.boolean(),
  });

  it('installs or starts only as root, when allowed, and never over a ZFS that answers or over OpenZFS', () => {
    fc.assert(
      fc.property(facts, (f) => {
        const step = decideZfsHost(f);
        const debianLike = f.platform === 'linux' && ['debian', 'ubuntu'].some((d) => f.os.id === d || f.os.idLike.includes(d));
        const expectInstall = !f.zfsAnswers && !f.zfsFuseInstalled && !f.zpoolInstalled && f.root && f.installAllowed && f.aptGet && debianLike;
        const expectStart = !f.zfsAnswers && f.zfsFuseInstalled && f.root && f.installAllowed;
        expect(step.kind === 'ready').toBe(f.zfsAnswers);
        expect(step.kind === 'install').toBe(expectInstall);
        expect(step.kind === 'start-zfs-fuse').toBe(expectStart);
        if (step.kind === 'stop') expect(step.message).toMatch(/^bdr up --sandbox-pool needs ZFS: [^\n]+$/);
      }),
    );
  });
});
