import type { NodeConnection } from './connection.ts';
import { assertName, nameProblem } from '../api/names.ts';
import { assertFromPatterns, assertOwnerTag, renderEntry, type AuthorizedKeyEntry } from './authorized-keys.ts';
import { writeRemoteFileAtomic } from './remote-file.ts';

/**
 * The forced command for vector keys. A vector's primary holds a key that the secondary accepts only as
 *
 *   restrict,command="/usr/local/libexec/bdr/zfs-guard tank/replicas/ns/vec bdr:vector:ns:vec" ssh-ed25519 AAAA… bdr:vector=ns/vec
 *
 * `restrict` turns off port, agent and X11 forwarding and ptys; sshd then runs the guard instead of what
 * the client asked for, with the request in SSH_ORIGINAL_COMMAND. The guard's two arguments are the
 * vector's dataset prefix and its hold tag. The primary may be compromised, so the guard allows exactly
 * what a vector needs, below its prefix, and adds its own protections instead of trusting the client:
 *
 *   zfs receive|recv -u [-s] [-v] <dataset or snapshot below prefix> [+hold|+release <snapshot under prefix>]...
 *                                                                      (never -F, never the prefix itself)
 *   zfs receive -A <dataset below prefix>                              (abort a resumable receive)
 *   zfs list|get [-H] [-p] [-r] [-d N] [-o|-t|-s|-S list] [<properties>] <names under prefix>...
 *   zfs hold|release <the vector's own tag> <snapshots under prefix>...
 *   zfs holds [-H] [-r] <snapshots under prefix>...
 *
 * A received stream carries properties (mountpoint, canmount, sharenfs, setuid, exec, devices…): the
 * guard makes every received file system inert with REPLICA_PROPERTIES, as `-o` options of the receive
 * where ZFS has them (OpenZFS), and in every case as local values checked (and set where missing) over the
 * whole received tree right after the receive (local beats received; `-o` does not reach a replication
 * stream's children for a non-inherited property such as canmount). The receive reports success only once
 * that is done, so a sync whose streams all went through the guard needs no re-check of its own;
 * `enforceReplicaProperties` (zfs/replica.ts) re-checks them over the operator's own connection otherwise.
 *
 * `+hold S` and `+release S` after a receive's target move the key's own hold once the receive succeeded
 * and the tree is inert, in the order given (the received point held before the old base is released): the
 * same hold and release the key may ask for on their own, in the stream's session instead of one more
 * (`+` is outside every ZFS name, so such a word is never a target). A hold already there, or a release of
 * a hold already gone, is what was asked for.
 *
 * Why a POSIX sh script: it is the one interpreter every storage node has (no Node or Python needed
 * there), it is short enough to audit, passes shellcheck and runs under dash, and bdr installs it itself
 * over the Machine's connection (`installGuard`), so an update is one atomic file replace. The parser does
 * not interpret the request: it rejects any character outside [A-Za-z0-9 _.:/@,=+-] (so no quotes, globs,
 * `$`, `;`, `|`, redirections or newlines can exist), splits on spaces, checks the words against the
 * allowed shapes, and then executes the checked words (plus its own) with zfs.
 */
export const DEFAULT_GUARD_PATH = '/usr/local/libexec/bdr/zfs-guard';

/**
 * What a replica must be on a storage server: never mounted (not by `zfs mount -a`, not at boot), never
 * shared, read-only, and without setuid, exec or device files should anyone mount it by hand. Order
 * matters for the local-override path: canmount first, so no later step can mount it.
 */
export const REPLICA_PROPERTIES: Readonly<Record<string, string>> = Object.freeze({
  canmount: 'noauto',
  mountpoint: 'none',
  sharenfs: 'off',
  sharesmb: 'off',
  readonly: 'on',
  setuid: 'off',
  exec: 'off',
  devices: 'off',
});

/**
 * Forced only as receive options (OpenZFS): `volmode=none` is inherited by volumes inside a replication
 * stream, so they get no device nodes for the kernel and udev to probe. zfs-fuse has no such property.
 */
export const RECEIVE_ONLY_PROPERTIES: Readonly<Record<string, string>> = Object.freeze({ volmode: 'none' });

/** Values that count as safe besides REPLICA_PROPERTIES' own (an operator-made container is canmount=off). */
export const REPLICA_ALSO_SAFE: Readonly<Record<string, readonly string[]>> = Object.freeze({ canmount: ['off'] });
const ALSO_SAFE = REPLICA_ALSO_SAFE;

/** Longest request the guard accepts (a hold of many snapshots stays far below it). */
const MAX_COMMAND_LENGTH = 65536;

export interface GuardScriptOptions {
  /** The zfs program on the storage machine. */
  zfsPath?: string;
  /**
   * The machine's ZFS takes `receive -o`/`-x` (`ZfsCapabilities.receiveProperties`): the guard then
   * forces REPLICA_PROPERTIES as receive options. Otherwise (default, works everywhere) it sets them
   * as local values right after each successful receive.
   */
  receiveProperties?: boolean;
}

export function guardScript(options: GuardScriptOptions | string = {}): string {
  const { zfsPath = 'zfs', receiveProperties = false } = typeof options === 'string' ? { zfsPath: options } : options;
  if (!/^[A-Za-z0-9_./-]+$/.test(zfsPath)) throw new RangeError(`unsafe zfs path ${JSON.stringify(zfsPath)}`);
  const settings = Object.entries({ ...REPLICA_PROPERTIES, ...RECEIVE_ONLY_PROPERTIES }).map(([k, v]) => `${k}=${v}`);
  const names = Object.keys(REPLICA_PROPERTIES);
  return `#!/bin/sh
# bdr zfs-guard: forced command for vector keys. Installed by bdr; local edits are overwritten.
# authorized_keys: restrict,command="<this file> <dataset prefix> <hold tag>"
set -f
# sshd passes the client's LANG/LC_* (Debian's AcceptEnv): byte-wise patterns and ZFS's English messages,
# which bdr classifies, must not depend on them. PATH is the guard's own, not the login environment's.
LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL PATH
ZFS='${zfsPath}'
# "options": this ZFS forces properties at receive time (-o); "set": they are set right after the receive.
OVERRIDE='${receiveProperties ? 'options' : 'set'}'
PREFIX=\${1-}
TAG=\${2-}
TAB=$(printf '\\t')
NL=$(printf '\\nx')
NL=\${NL%x}

refuse() {
  printf 'bdr-guard: refused: %s\\n' "$*" >&2
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

# Makes every file system at or below $1 inert with local values (local beats received, so no later
# stream can change them). Only what is not already local and safe is set: an incremental receive into a
# protected replica costs one zfs get, which lists every file system below $1 (its type line says which
# names are file systems; zfs-fuse's get has no -t, so snapshots are listed too and skipped) with the
# properties and their sources.
has_local() {
  case "$NL$current$NL" in
    *"$NL$ds$TAB$1$TAB$2\${TAB}local$NL"*) return 0 ;;
    *) return 1 ;;
  esac
}

protect() {
  current=$("$ZFS" get -H -r -o name,property,value,source type,${names.join(',')} "$1" </dev/null) || return 1
  printf '%s\\n' "$current" | while IFS="$TAB" read -r ds property value rest; do
    [ "$property:$value" = type:filesystem ] || continue
${Object.entries(REPLICA_PROPERTIES)
  .map(([k, v]) => `    ${[v, ...(ALSO_SAFE[k] ?? [])].map((ok) => `has_local ${k} ${ok} || `).join('')}"$ZFS" set ${k}=${v} "$ds" </dev/null || exit 1`)
  .join('\n')}
  done
}

valid_name "$PREFIX" || refuse "the guard was installed without a valid dataset prefix"
case $PREFIX in *@*) refuse "the guard's prefix must be a dataset" ;; esac
case $TAG in
  '') ;;
  -*|.*|*[!A-Za-z0-9_.:-]*) refuse "the guard was installed with an invalid hold tag" ;;
esac

cmd=\${SSH_ORIGINAL_COMMAND-}
[ -n "$cmd" ] || refuse "no command given; this key cannot open a shell"
[ "\${#cmd}" -le ${MAX_COMMAND_LENGTH} ] || refuse "the command is longer than ${MAX_COMMAND_LENGTH} characters"
case $cmd in
  *[!A-Za-z0-9_.:/@,=+\\ -]*) refuse "the command contains characters outside [A-Za-z0-9 _.:/@,=+-]" ;;
esac

# Split on spaces without the shell's word splitting or globbing: the characters are checked above.
rest=$cmd
set --
while [ -n "$rest" ]; do
  word=\${rest%% *}
  rest=\${rest#"$word"}
  rest=\${rest# }
  [ -z "$word" ] || set -- "$@" "$word"
done

[ "$#" -ge 2 ] || refuse "only zfs receive, list, get, hold, release and holds are allowed"
[ "$1" = zfs ] || refuse "only zfs commands are allowed, not '$1'"
sub=$2
shift 2

case $sub in
  receive|recv)
    target='' abort='' nomount='' resumable='' verbose='' move='' moves=''
    for a in "$@"; do
      if [ -n "$move" ]; then
        case $a in *@*) ;; *) refuse "+$move $a: not a snapshot" ;; esac
        under_prefix "$a" || refuse "+$move $a is outside $PREFIX"
        moves="$moves $move:$a"
        move=''
        continue
      fi
      case $a in
        +hold|+release)
          [ -n "$TAG" ] || refuse "$a is not allowed: this key has no hold tag"
          move=\${a#+}
          ;;
        -u) nomount=1 ;;
        -s) resumable=1 ;;
        -v) verbose=1 ;;
        -A) abort=1 ;;
        -F) refuse "zfs $sub -F is not allowed: it would let a stream destroy replica snapshots" ;;
        -*) refuse "zfs $sub option $a is not allowed" ;;
        *)
          [ -z "$target" ] || refuse "zfs $sub takes exactly one target"
          target=$a
          ;;
      esac
    done
    [ -z "$move" ] || refuse "+$move needs a snapshot"
    [ -n "$target" ] || refuse "zfs $sub needs a target below $PREFIX"
    under_prefix "$target" || refuse "receive target $target is outside $PREFIX"
    dataset=\${target%%@*}
    # The prefix carries the operator's quota and is never a receive target itself.
    [ "$dataset" != "$PREFIX" ] || refuse "zfs $sub into $PREFIX itself is not allowed; replicas go below it"
    if [ -n "$abort" ]; then
      if [ "$#" -ne 2 ] || [ "$dataset" != "$target" ]; then refuse "zfs $sub -A takes only a dataset"; fi
      exec "$ZFS" receive -A "$target"
    fi
    # A stream carries its own properties, mountpoint included: the receive must not mount anything.
    [ -n "$nomount" ] || refuse "zfs $sub must use -u: replicas are received unmounted"
    set -- receive -u
    [ -z "$resumable" ] || set -- "$@" -s
    [ -z "$verbose" ] || set -- "$@" -v
    if [ "$OVERRIDE" = options ]; then
      "$ZFS" "$@" ${settings.map((s) => `-o ${s}`).join(' ')} "$target" || exit
    else
      "$ZFS" "$@" "$target" || exit
    fi
    if ! protect "$dataset"; then
      printf 'bdr-guard: received into %s, but could not make it inert; the operator re-applies this\\n' "$dataset" >&2
      exit 1
    fi
    # The words in $moves were checked above (op:snapshot, no spaces or glob characters): split on purpose.
    # shellcheck disable=SC2086
    for m in $moves; do
      op=\${m%%:*}
      snap=\${m#*:}
      if out=$("$ZFS" "$op" "$TAG" "$snap" </dev/null 2>&1); then continue; fi
      case $op:$out in
        hold:*"already exists"*|release:*"no such tag"*|release:*"does not exist"*) ;;
        *)
          printf 'bdr-guard: received into %s, but zfs %s %s %s failed: %s\\n' "$dataset" "$op" "$TAG" "$snap" "$out" >&2
          exit 1
          ;;
      esac
    done
    exit 0
    ;;
  list|get)
    want='' names=0 props=''
    [ "$sub" = get ] && props=pending
    for a in "$@"; do
      if [ -n "$want" ]; then
        case $want in
          list) valid_list "$a" || refuse "invalid list argument $a" ;;
          depth) case $a in ''|*[!0-9]*) refuse "invalid depth $a" ;; esac ;;
        esac
        want=''
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
            props=given
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
    [ -n "$TAG" ] || refuse "zfs $sub is not allowed: this key has no hold tag"
    [ "$#" -ge 2 ] || refuse "zfs $sub needs a tag and snapshots"
    [ "$1" = "$TAG" ] || refuse "zfs $sub of tag $1 is not allowed; this key's tag is $TAG"
    shift
    for a in "$@"; do
      case $a in *@*) ;; *) refuse "$a is not a snapshot" ;; esac
      under_prefix "$a" || refuse "$a is outside $PREFIX"
    done
    set -- "$sub" "$TAG" "$@"
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

case $sub in
  hold|release) ;;
  *) set -- "$sub" "$@" ;;
esac
exec "$ZFS" "$@"
`;
}

/**
 * Writes the guard to the machine (atomic replace, mode 755). Idempotent. Pass the machine's
 * `ZfsCapabilities.receiveProperties` (probed over the operator's connection) as `receiveProperties`.
 */
export async function installGuard(
  connection: NodeConnection,
  options: { path?: string } & GuardScriptOptions = {},
): Promise<string> {
  const path = options.path ?? DEFAULT_GUARD_PATH;
  const script = guardScript({
    ...(options.zfsPath !== undefined ? { zfsPath: options.zfsPath } : {}),
    ...(options.receiveProperties !== undefined ? { receiveProperties: options.receiveProperties } : {}),
  });
  await writeRemoteFileAtomic(connection, path, script, { mode: '755', createParentMode: '755' });
  return path;
}

/**
 * The hold tag a vector key may place and release: "bdr:<kind>=<ns>/<name>" becomes
 * "bdr:<kind>:<ns>:<name>" (a valid ZFS hold tag; namespaces and names never contain ":").
 */
export function vectorHoldTag(owner: string): string {
  const [, kind = '', ns = '', name = ''] = /^bdr:([a-z]+)=([^/]+)\/(.+)$/.exec(assertOwnerTag(owner)) ?? [];
  return assertTag(`bdr:${kind}:${ns}:${name}`);
}

function assertTag(tag: string): string {
  const problem = nameProblem('snapshotShortName', tag);
  if (problem !== undefined) throw new RangeError(`invalid hold tag ${JSON.stringify(tag)}: ${problem}`);
  return tag;
}

/** The authorized_keys entry of a vector key: forced through the guard, restricted to `prefix`. */
export function vectorKeyEntry(input: {
  publicKey: string;
  /** Owner tag, e.g. "bdr:vector=ns/name". */
  owner: string;
  /**
   * The vector's dataset: it may receive below it (never into it: the operator keeps its quota there)
   * and list, get, hold and release at or below it.
   */
  prefix: string;
  guardPath?: string;
  /** The one hold tag this key may use; default `vectorHoldTag(owner)`. */
  holdTag?: string;
  /** Source address patterns (sshd `from=`), e.g. ["10.0.0.5"]: the primary's addresses, when known. */
  from?: readonly string[];
}): AuthorizedKeyEntry {
  const prefix = assertName('dataset', input.prefix);
  const guardPath = input.guardPath ?? DEFAULT_GUARD_PATH;
  if (!/^\/[A-Za-z0-9_./-]+$/.test(guardPath)) throw new RangeError(`unsafe guard path ${JSON.stringify(guardPath)}`);
  const tag = assertTag(input.holdTag ?? vectorHoldTag(input.owner));
  const from = assertFromPatterns(input.from ?? []);
  return {
    publicKey: input.publicKey,
    owner: assertOwnerTag(input.owner),
    options: [
      'restrict',
      // Prefix and tag are validated plain words, so they need no quoting inside sshd's `sh -c`.
      `command="${guardPath} ${prefix} ${tag}"`,
      ...(from.length > 0 ? [`from="${from.join(',')}"`] : []),
    ],
  };
}

/** Convenience: the rendered line (for display, or for files bdr does not manage). */
export function vectorKeyLine(input: Parameters<typeof vectorKeyEntry>[0]): string {
  return renderEntry(vectorKeyEntry(input));
}
