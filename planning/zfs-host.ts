/**
 * What `bdr up --sandbox-pool` does about ZFS on the host it runs on: nothing when ZFS answers, install or start
 * Debian's zfs-fuse where that is safe (root, Debian or Ubuntu, apt-get, not opted out), and otherwise stop with
 * one line naming what to install. A pure decision over observed facts; `zfs/sandbox.ts` observes and acts.
 */

export interface ZfsHostFacts {
  /** `process.platform`. zfs-fuse is Linux only. */
  readonly platform: string;
  /** `zpool list` succeeds: a daemon (zfs-fuse) or kernel module (OpenZFS) answers, and we may talk to it. */
  readonly zfsAnswers: boolean;
  /** The zfs-fuse daemon program is installed. */
  readonly zfsFuseInstalled: boolean;
  /** A `zpool` program is installed (OpenZFS, or zfs-fuse's own). */
  readonly zpoolInstalled: boolean;
  readonly root: boolean;
  /** ID and ID_LIKE of /etc/os-release. */
  readonly os: OsRelease;
  readonly aptGet: boolean;
  /** False with `--no-install`. */
  readonly installAllowed: boolean;
}

export interface OsRelease {
  readonly id?: string;
  readonly idLike: readonly string[];
}

export type ZfsHostStep =
  | { readonly kind: 'ready' }
  | { readonly kind: 'install'; readonly packages: readonly string[] }
  | { readonly kind: 'start-zfs-fuse' }
  | { readonly kind: 'stop'; readonly message: string };

const NEEDS = 'bdr up --sandbox-pool needs ZFS';
const APT_HINT = "install OpenZFS (apt install zfsutils-linux) or Debian's zfs-fuse (apt install zfs-fuse), then start it";
const GENERIC_HINT = 'install OpenZFS (https://openzfs.github.io/openzfs-docs/Getting%20Started/), then load it';

/** ID and ID_LIKE of an os-release file (shell-style KEY=value lines, values optionally quoted). */
export function parseOsRelease(text: string): OsRelease {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    values.set(m[1], m[2].replace(/^(["'])(.*)\1$/, '$2').toLowerCase());
  }
  const id = values.get('ID') || undefined;
  const idLike = (values.get('ID_LIKE') ?? '').split(/\s+/).filter((s) => s !== '');
  return id === undefined ? { idLike } : { id, idLike };
}

/** Debian, Ubuntu, and their derivatives that say so (ID_LIKE): Debian's archive has zfs-fuse. */
export function isDebianLike(os: OsRelease): boolean {
  return [os.id, ...os.idLike].some((v) => v === 'debian' || v === 'ubuntu');
}

export function decideZfsHost(f: ZfsHostFacts): ZfsHostStep {
  if (f.zfsAnswers) return { kind: 'ready' };
  const debian = f.platform === 'linux' && isDebianLike(f.os);
  const hint = debian ? APT_HINT : GENERIC_HINT;
  if (f.zfsFuseInstalled) {
    if (!f.installAllowed) return { kind: 'stop', message: `${NEEDS}: zfs-fuse is installed but does not answer; start it as root (zfs-fuse) (--no-install: bdr up starts nothing)` };
    if (f.root) return { kind: 'start-zfs-fuse' };
    return { kind: 'stop', message: `${NEEDS}: zfs-fuse is installed but does not answer to this user; run bdr up as root (it starts the daemon), or start zfs-fuse as root` };
  }
  if (f.zpoolInstalled) {
    return {
      kind: 'stop',
      message: f.root
        ? `${NEEDS}: zpool is installed but \`zpool list\` fails; load the OpenZFS kernel module (modprobe zfs)`
        : `${NEEDS}: zpool is installed but \`zpool list\` fails for this user; run bdr up as root (and load the OpenZFS kernel module, modprobe zfs, if it still fails)`,
    };
  }
  if (!f.installAllowed) return { kind: 'stop', message: `${NEEDS}: ${hint} (--no-install: bdr up installs nothing)` };
  if (!debian) return { kind: 'stop', message: `${NEEDS}: ${hint}` };
  if (!f.root) return { kind: 'stop', message: `${NEEDS}: ${hint} (or run bdr up as root: it installs and starts zfs-fuse)` };
  if (!f.aptGet) return { kind: 'stop', message: `${NEEDS}: apt-get is not available here; ${hint}` };
  return { kind: 'install', packages: ['zfs-fuse'] };
}
