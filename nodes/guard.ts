import type { NodeConnection } from './connection.ts';
import { assertName } from '../api/names.ts';
import { renderEntry, type AuthorizedKeyEntry } from './authorized-keys.ts';
import { writeRemoteFileAtomic } from './remote-file.ts';

/**
 * The forced command for vector keys. A vector's primary holds a key that the secondary accepts only as
 *
 *   restrict,command="/usr/local/libexec/bdr/zfs-guard 'tank/replicas/ns/vec'" ssh-ed25519 AAAA… bdr:vector=ns/vec
 *
 * `restrict` turns off port, agent and X11 forwarding and ptys; sshd then runs the guard instead of what
 * the client asked for, with the request in SSH_ORIGINAL_COMMAND. The guard allows exactly what a vector
 * needs under its dataset prefix, and nothing else:
 *
 *   zfs receive|recv [-F] [-u] [-s] [-v] <dataset or snapshot under prefix>
 *   zfs receive -A <dataset under prefix>                (abort a resumable receive)
 *   zfs list|get [-H] [-p] [-r] [-d N] [-o|-t|-s|-S list] [<properties>] <names under prefix>...
 *   zfs hold|release <tag> <snapshots under prefix>...
 *   zfs holds [-H] [-r] <snapshots under prefix>...
 *
 * Why a POSIX sh script: it is the one interpreter every storage node has (no Node or Python needed
 * there), it is short enough to audit, and bdr installs it itself over the Machine's connection
 * (`installGuard`), so a rotated or updated guard is one atomic file replace. The parser does not
 * interpret the request: it rejects any character outside [A-Za-z0-9 _.:/@,=+-] (so no quotes, globs,
 * `$`, `;`, `|`, redirections or newlines can exist), splits on spaces with globbing off, checks the
 * words against the allowed shapes, and then executes those same words with zfs. What the client sends
 * is bdr's own `commandLine()` output, which leaves such plain words unquoted.
 */
export const DEFAULT_GUARD_PATH = '/usr/local/libexec/bdr/zfs-guard';

export function guardScript(zfsPath = 'zfs'): string {
  if (!/^[A-Za-z0-9_./-]+$/.test(zfsPath)) throw new RangeError(`unsafe zfs path ${JSON.stringify(zfsPath)}`);
  return `#!/bin/sh
# bdr zfs-guard: forced command for vector keys. Installed by bdr; local edits are overwritten.
set -f
ZFS=${zfsPath}
PREFIX=\${1-}

refuse() {
  echo "bdr-guard: refused: $*" >&2
  exit 1
}

# A dataset or snapshot name in bdr's alphabet: no "..", no component starting with "-" or ".".
valid_name() {
  case $1 in
    ''|-*|.*|*..*|*//*|*/|*@*@*|*/-*|*@-*|*/.*|*@.*|*@|*@*/*) return 1 ;;
    *[!A-Za-z0-9_.:/@-]*) return 1 ;;
  esac
  return 0
}

under_prefix() {
  valid_name "$1" || return 1
  case $1 in
    "$PREFIX"|"$PREFIX"/*|"$PREFIX"@*) return 0 ;;
  esac
  return 1
}

valid_list() {
  case $1 in
    ''|-*|*[!a-z0-9_.:,]*) return 1 ;;
  esac
  return 0
}

valid_name "$PREFIX" || refuse "the guard was installed without a valid dataset prefix"
case $PREFIX in *@*) refuse "the guard's prefix must be a dataset" ;; esac

cmd=\${SSH_ORIGINAL_COMMAND-}
[ -n "$cmd" ] || refuse "no command given; this key cannot open a shell"
case $cmd in
  *[!A-Za-z0-9_.:/@,=+\\ -]*) refuse "the command contains characters outside [A-Za-z0-9 _.:/@,=+-]" ;;
esac

IFS=' '
set -- $cmd
[ "$#" -ge 2 ] || refuse "only zfs receive, list, get, hold, release and holds are allowed"
[ "$1" = zfs ] || refuse "only zfs commands are allowed, not '$1'"
sub=$2
shift 2

case $sub in
  receive|recv)
    target= abort= nomount=
    for a in "$@"; do
      case $a in
        -u) nomount=1 ;;
        -F|-s|-v) ;;
        -A) abort=1 ;;
        -*) refuse "zfs $sub option $a is not allowed" ;;
        *)
          [ -z "$target" ] || refuse "zfs $sub takes exactly one target"
          target=$a
          ;;
      esac
    done
    [ -n "$target" ] || refuse "zfs $sub needs a target under $PREFIX"
    under_prefix "$target" || refuse "receive target $target is outside $PREFIX"
    if [ -n "$abort" ] && [ "$#" -ne 2 ]; then refuse "zfs $sub -A takes only a dataset"; fi
    # A stream carries its own properties, mountpoint included: a received replica must never be mounted
    # by the receive, or a primary could mount a file system over any path of the storage server.
    [ -n "$abort" ] || [ -n "$nomount" ] || refuse "zfs $sub must use -u: replicas are received unmounted"
    ;;
  list|get)
    want= names=0 props=
    [ "$sub" = get ] && props=pending
    for a in "$@"; do
      if [ -n "$want" ]; then
        case $want in
          list) valid_list "$a" || refuse "invalid list argument $a" ;;
          depth) case $a in ''|*[!0-9]*) refuse "invalid depth $a" ;; esac ;;
        esac
        want=
        continue
      fi
      case $a in
        -H|-p|-r) ;;
        -o|-t|-s|-S) want=list ;;
        -d) want=depth ;;
        -*) refuse "zfs $sub option $a is not allowed" ;;
        *)
          if [ "$props" = pending ]; then
            valid_list "$a" || refuse "invalid property list $a"
            props=done
          else
            under_prefix "$a" || refuse "$a is outside $PREFIX"
            names=$((names + 1))
          fi
          ;;
      esac
    done
    [ -z "$want" ] || refuse "an option of zfs $sub lacks its argument"
    [ "$names" -ge 1 ] || refuse "zfs $sub must name datasets under $PREFIX"
    ;;
  hold|release)
    [ "$#" -ge 2 ] || refuse "zfs $sub needs a tag and snapshots"
    case $1 in ''|-*|.*|*[!A-Za-z0-9_.:-]*) refuse "invalid hold tag $1" ;; esac
    shift
    for a in "$@"; do
      case $a in *@*) ;; *) refuse "$a is not a snapshot" ;; esac
      under_prefix "$a" || refuse "$a is outside $PREFIX"
    done
    ;;
  holds)
    names=0
    for a in "$@"; do
      case $a in
        -H|-r) ;;
        -*) refuse "zfs holds option $a is not allowed" ;;
        *)
          case $a in *@*) ;; *) refuse "$a is not a snapshot" ;; esac
          under_prefix "$a" || refuse "$a is outside $PREFIX"
          names=$((names + 1))
          ;;
      esac
    done
    [ "$names" -ge 1 ] || refuse "zfs holds must name snapshots under $PREFIX"
    ;;
  *)
    refuse "zfs $sub is not allowed for this key"
    ;;
esac

set -- $cmd
shift
exec "$ZFS" "$@"
`;
}

/** Writes the guard to the machine (atomic replace, mode 755). Idempotent. */
export async function installGuard(
  connection: NodeConnection,
  options: { path?: string; zfsPath?: string } = {},
): Promise<string> {
  const path = options.path ?? DEFAULT_GUARD_PATH;
  await writeRemoteFileAtomic(connection, path, guardScript(options.zfsPath), { mode: '755', createParentMode: '755' });
  return path;
}

/** The authorized_keys entry of a vector key: forced through the guard, restricted to `prefix`. */
export function vectorKeyEntry(input: {
  publicKey: string;
  /** Owner tag, e.g. "bdr:vector=ns/name". */
  owner: string;
  /** Dataset under which this vector may receive, list and hold. */
  prefix: string;
  guardPath?: string;
  /** Optional source address patterns (sshd `from=`), e.g. ["10.0.0.5"]. */
  from?: readonly string[];
}): AuthorizedKeyEntry {
  const prefix = assertName('dataset', input.prefix);
  const guardPath = input.guardPath ?? DEFAULT_GUARD_PATH;
  if (!/^\/[A-Za-z0-9_./-]+$/.test(guardPath)) throw new RangeError(`unsafe guard path ${JSON.stringify(guardPath)}`);
  for (const f of input.from ?? []) if (!/^[A-Za-z0-9.:*?!/-]+$/.test(f)) throw new RangeError(`invalid from pattern ${JSON.stringify(f)}`);
  return {
    publicKey: input.publicKey,
    owner: input.owner,
    options: [
      'restrict',
      // The prefix is validated, so it needs no quoting inside sshd's `sh -c`.
      `command="${guardPath} ${prefix}"`,
      ...(input.from && input.from.length > 0 ? [`from="${input.from.join(',')}"`] : []),
    ],
  };
}

/** Convenience: the rendered line (for display, or for files bdr does not manage). */
export function vectorKeyLine(input: Parameters<typeof vectorKeyEntry>[0]): string {
  return renderEntry(vectorKeyEntry(input));
}
