import type { NodeConnection } from './connection.ts';
import type { ZfsCapabilities } from '../zfs/capabilities.ts';
import {
  KEY_LOCATION_FORCED,
  KEY_LOCATION_SAFE,
  RECEIVE_ONLY_PROPERTIES,
  RECEIVED_MARK,
  REPLICA_ALSO_SAFE,
  replicaPolicy,
} from '../zfs/replica-policy.ts';
import { assertName, nameProblem } from '../api/names.ts';
import { assertFromPatterns, assertOwnerTag, renderEntry, type AuthorizedKeyEntry } from './authorized-keys.ts';
import { writeRemoteFileAtomic } from './remote-file.ts';

/**
 * The forced command for vector keys. A vector's primary holds a key that the secondary accepts only as
 *
 *   restrict,command="/usr/local/libexec/bdr/zfs-guard tank/replicas/ns/vec bdr:vector:ns:vec data" ssh-ed25519 AAAA… bdr:vector=ns/vec
 *
 * `restrict` turns off port, agent and X11 forwarding and ptys; sshd then runs the guard instead of what
 * the client asked for, with the request in SSH_ORIGINAL_COMMAND. The guard's three arguments are the
 * vector's dataset (PREFIX), its hold tag (TAG) and the replica's leaf name (LEAF, one dataset-name
 * component): the one file system the key may receive into is PREFIX/LEAF. The primary may be compromised,
 * so the guard allows exactly what a vector needs and adds its own protections instead of trusting the client:
 *
 *   zfs receive|recv -u [-s] [-v] PREFIX/LEAF[@snap] [+hold|+release <snapshot under PREFIX>]...
 *                                          (never -F; never the prefix, a sibling of LEAF or anything deeper)
 *   zfs receive -A PREFIX/LEAF                                         (abort a resumable receive)
 *   zfs list|get [-H] [-p] [-r] [-d N] [-o|-t|-s|-S list] [<properties>] <names at or below PREFIX>...
 *   zfs hold|release TAG <snapshots at or below PREFIX>...
 *   zfs holds [-H] [-r] <snapshots at or below PREFIX>...
 *
 * **It fails closed.** Whatever the receive's exit status (success, a stream that fails part-way, the client
 * disconnecting, SIGTERM/SIGHUP/SIGINT/SIGPIPE), every file system and volume at or below PREFIX is made
 * inert before the guard exits: a replication stream (`send -R`) whose second file system fails has already
 * received the first one, with the sender's properties. The guard ignores those signals itself (the receive
 * runs with them at their defaults, so a signal to the session's process group still stops it), and after
 * the receive ends, one `zfs get -r` lists the whole PREFIX tree; a `zfs set` follows for each value that
 * is not already local and safe (local beats received, so no later stream changes them). The guard then
 * exits with the receive's own status; if a value could not be set, non-zero with a `bdr-guard:` message.
 * SIGKILL cannot be caught: the operator re-checks the prefix over its own connection after every run that
 * sent a stream (`enforceReplicaProperties`, zfs/replica.ts, from the same table: zfs/replica-policy.ts).
 * zfs-fuse receives in its daemon, which finishes the file system it is reading when the `zfs` process dies;
 * that file system already exists then, so the guard's listing includes it.
 *
 * **The forced properties** (local values; the policy in zfs/replica-policy.ts; the optional ones exactly where
 * the machine's `zfs get` property table lists them, probed into `ZfsCapabilities.datasetProperties`, since a
 * `zfs get` naming a property the ZFS lacks fails as a whole):
 *
 *   canmount=noauto   (canmount=off also safe, as on operator-made containers) `zfs mount -a` and boot mount only
 *                     canmount=on file systems. Not inherited, so each one needs its own; set first, on every
 *                     file system before anything else: a `zfs set` of a mount-related property re-mounts a
 *                     file system (or its inheriting children) that can mount and is shared.
 *   mountpoint=none   a stream's mountpoint may name /root/.ssh or /etc; none also keeps a hand `zfs mount` from
 *                     placing it anywhere.
 *   sharenfs=off, sharesmb=off   `zfs share -a` and the NFS/SMB services export what is marked shared.
 *   readonly=on       a replica changed on the storage side diverges (the next incremental fails), and nothing
 *                     should write into it even when mounted by hand.
 *   setuid=off, exec=off, devices=off   should someone mount a replica by hand, its setuid binaries,
 *                     executables and device nodes stay inert.
 *   reservation=none, refreservation=none   a stream of a few kilobytes could otherwise reserve the pool's free
 *                     space (or the vector's whole quota) and starve every other dataset in the pool.
 *   zoned=off         (where present; FreeBSD's jailed=off likewise) zoned=on hands the file system's mounts to a
 *                     container or user namespace; a replica belongs to none.
 *   overlay=off       (OpenZFS) a mount over a non-empty directory would hide what is there.
 *   context, fscontext, defcontext, rootcontext=none   (OpenZFS) SELinux mount contexts label every file of
 *                     the mounted file system; a stream must not choose them.
 *   keylocation=prompt   (OpenZFS with encryption) only where the value is a file:// or http(s):// location:
 *                     `zfs load-key -a` (run at boot) would read that host file or fetch that URL. It is settable
 *                     only on an encryption root, where it is always local: only its value counts.
 *
 * Not forced as local values: mlslabel (both ZFS list it, neither lets it be set on Linux: "mlslabels are
 * unsupported" / "invalid mlslabel", and without Trusted Extensions it has no effect); volmode=none, a receive
 * option on OpenZFS (inherited by the volumes of a replication stream, so no /dev/zd* node appears for udev to
 * probe). Where ZFS has `receive -o` (OpenZFS, the "options" variant) the first eight above are also receive
 * options; every variant sets all of them afterwards (`-o` does not reach a replication stream's children for
 * a non-inherited property such as canmount).
 *
 * **Clone streams are refused.** An incremental stream from a snapshot the target lacks under that name is
 * received as a clone of whatever snapshot in the pool has the stream's base guid, so a clone stream naming
 * another replica's snapshot would share its blocks and pin it (it could not be destroyed). After the receive
 * a file system below PREFIX whose origin lies outside PREFIX is destroyed (`zfs destroy -r` of exactly
 * that dataset, which only this key's receive can have made) and the guard exits 1 with `bdr-guard: refused:
 * … is a clone of … outside PREFIX`.
 *
 * **Ownership mark.** After every receive, each file system at or below PREFIX/LEAF without a local
 * RECEIVED_MARK (`dev.bdr:received`) gets it, set to TAG: a received value never counts, so a stream cannot
 * forge the mark.
 *
 * **The listing is untrusted text**: a received string property may hold a newline, and so a forged line.
 * Each line is judged on its own (a forged line can add a `zfs set` of a safe value at or below PREFIX, never
 * hide a real line), and a destroy follows only a query of that one dataset's origin, which no stream writes.
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

export {
  KEY_LOCATION_FORCED,
  KEY_LOCATION_SAFE,
  RECEIVE_ONLY_PROPERTIES,
  RECEIVED_MARK,
  REPLICA_ALSO_SAFE,
  REPLICA_PROPERTIES,
  REPLICA_PROPERTIES_WHERE_PRESENT,
} from '../zfs/replica-policy.ts';

/**
 * The forced properties also given as `receive -o` options in the "options" variant: those recorded working
 * that way on OpenZFS (test/openzfs-vm/guard.ts). The others are set right after the receive, like all of them.
 */
const RECEIVE_OPTION_PROPERTIES = ['canmount', 'mountpoint', 'sharenfs', 'sharesmb', 'readonly', 'setuid', 'exec', 'devices'] as const;

/** Longest request the guard accepts (a hold of many snapshots stays far below it). */
const MAX_COMMAND_LENGTH = 65536;

export interface GuardScriptOptions {
  /** The zfs program on the storage machine. */
  zfsPath?: string;
  /**
   * The machine's ZFS takes `receive -o`/`-x` (`ZfsCapabilities.receiveProperties`): the guard then also
   * passes the forced properties as receive options. Otherwise (default, works everywhere) it only sets them
   * as local values right after each receive, as it does in both variants.
   */
  receiveProperties?: boolean;
  /**
   * The native properties the machine's ZFS has (`ZfsCapabilities.datasetProperties`): which of the optional
   * protective properties the guard forces. Omitted: only those every ZFS has.
   */
  datasetProperties?: readonly string[];
  /** `zfs get -t` exists (`ZfsCapabilities.getTypeFilter`): the guard's listing then leaves snapshots out. */
  getTypeFilter?: boolean;
}

/** The guard's options for a machine, from its probed capabilities. */
export function guardOptions(capabilities: Pick<ZfsCapabilities, 'receiveProperties' | 'datasetProperties' | 'getTypeFilter'>): GuardScriptOptions {
  return {
    receiveProperties: capabilities.receiveProperties,
    getTypeFilter: capabilities.getTypeFilter,
    ...(capabilities.datasetProperties !== undefined ? { datasetProperties: capabilities.datasetProperties } : {}),
  };
}

/** Words that go into the script unquoted: property names and values from the policy's own tables. */
function plainWord(word: string): string {
  if (!/^[a-z0-9][a-z0-9_]*$/.test(word)) throw new RangeError(`not a plain word for the guard script: ${JSON.stringify(word)}`);
  return word;
}

export function guardScript(options: GuardScriptOptions | string = {}): string {
  const { zfsPath = 'zfs', receiveProperties = false, datasetProperties, getTypeFilter = false } = typeof options === 'string' ? { zfsPath: options } : options;
  if (!/^[A-Za-z0-9_./-]+$/.test(zfsPath)) throw new RangeError(`unsafe zfs path ${JSON.stringify(zfsPath)}`);
  const policy = replicaPolicy(datasetProperties);
  const receiveSettings = [
    ...RECEIVE_OPTION_PROPERTIES.map((k) => `-o ${k}=${plainWord(policy.local[k] ?? '')}`),
    ...Object.entries(RECEIVE_ONLY_PROPERTIES).map(([k, v]) => `-o ${plainWord(k)}=${plainWord(v)}`),
  ].join(' ');
  const listed = ['origin', ...policy.properties.map(plainWord), RECEIVED_MARK].join(',');
  const judged = Object.entries(policy.local).map(
    ([k, v]) => `    ${plainWord(k)}) local_is ${[v, ...(REPLICA_ALSO_SAFE[k] ?? [])].map(plainWord).join(' ')} || fix=${plainWord(v)} ;;`,
  );
  if (policy.keylocation) {
    judged.push(`    keylocation) case $value in ${KEY_LOCATION_SAFE.join('|')}) ;; *) fix=${plainWord(KEY_LOCATION_FORCED)} ;; esac ;;`);
  }
  return `#!/bin/sh
# bdr zfs-guard: forced command for vector keys. Installed by bdr; local edits are overwritten.
# authorized_keys: restrict,command="<this file> <dataset prefix> <hold tag> <replica leaf>"
set -f
# sshd passes the client's LANG/LC_* (Debian's AcceptEnv): byte-wise patterns and ZFS's English messages,
# which bdr classifies, must not depend on them. PATH is the guard's own, not the login environment's.
LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL PATH
ZFS='${zfsPath}'
# "options": this ZFS also takes the forced properties as receive options (-o); "set": only set afterwards.
OVERRIDE='${receiveProperties ? 'options' : 'set'}'
PREFIX=\${1-}
TAG=\${2-}
LEAF=\${3-}
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

# Whether the listed value ($value from $source) is a local one among the safe values given.
local_is() {
  [ "$source" = local ] || return 1
  for ok in "$@"; do
    [ "$value" != "$ok" ] || return 0
  done
  return 1
}

# Sets $fix to the value that makes $property inert, or to '' when it already is.
judge() {
  fix=''
  case $property in
${judged.join('\n')}
  esac
}

set_property() {
  "$ZFS" set "$1" "$ds" </dev/null || failed=1
}

# Makes every file system and volume at or below the prefix inert (see the list in bdr's nodes/guard.ts): one
# zfs get lists them with the forced properties, their origin and the receive mark, and only what is not already
# local and safe is set. The listing is untrusted text (a received string property may hold a newline), so each
# line is judged on its own and only names at or below the prefix are touched; snapshots (zfs-fuse's get has no
# -t) and properties a dataset's type lacks ("-" from "-") are skipped. canmount goes first on every file system:
# a zfs set of a mount-related property mounts a file system, or its inheriting children, that can mount.
protect() {
  failed=''
  suspects=''
  listing=$("$ZFS" get -H -r ${getTypeFilter ? '-t filesystem,volume ' : ''}-o name,property,value,source ${listed} "$PREFIX" </dev/null) || return 1
  # Snapshot lines go before the two passes (read takes a byte at a time); grep finding none is status 1, not an error.
  listing=$(printf '%s\n' "$listing" | grep -v "^[^$TAB]*[@#]") || [ "$?" -eq 1 ] || return 1
  for pass in canmount rest; do
    while IFS="$TAB" read -r ds property value source; do
      case $ds in
        *@*|*#*) continue ;;
        "$PREFIX"|"$PREFIX"/*) ;;
        *) continue ;;
      esac
      if [ "$pass" = canmount ]; then
        [ "$property" = canmount ] || continue
      else
        [ "$property" != canmount ] || continue
      fi
      case $property in
        origin)
          case $value in
            -|"$PREFIX"@*|"$PREFIX"/*) ;;
            *) [ "$ds" = "$PREFIX" ] || suspects="$ds$NL$suspects" ;;
          esac
          ;;
        ${RECEIVED_MARK})
          case $ds in
            "$PREFIX/$LEAF"|"$PREFIX/$LEAF"/*) [ "$source" = local ] || set_property "${RECEIVED_MARK}=$TAG" ;;
          esac
          ;;
        *)
          [ "$value$TAB$source" != "-$TAB-" ] || continue
          judge
          [ -z "$fix" ] || set_property "$property=$fix"
          ;;
      esac
    done <<EOF
$listing
EOF
  done
  refuse_clones
  [ -z "$failed" ]
}

# A file system whose origin lies outside the prefix was made by a clone stream naming another dataset's
# snapshot by guid: it shares that snapshot's blocks and pins it. Deepest first (the listing is parents first,
# the suspects were prepended), each is confirmed by a query of its own origin (the listing may carry forged
# lines) and destroyed: only this key's receive can have made it.
refuse_clones() {
  clones=''
  while IFS= read -r ds; do
    [ -n "$ds" ] || continue
    case $NL$clones in *"$NL$ds$NL"*) continue ;; esac
    clones="$clones$ds$NL"
    if ! origin=$("$ZFS" get -H -o value origin "$ds" </dev/null); then
      failed=1
      continue
    fi
    case $origin in -|"$PREFIX"@*|"$PREFIX"/*) continue ;; esac
    refused_clone=1
    if "$ZFS" destroy -r "$ds" </dev/null; then
      printf 'bdr-guard: refused: %s is a clone of %s outside %s; it was destroyed\\n' "$ds" "$origin" "$PREFIX" >&2
    else
      printf 'bdr-guard: refused: %s is a clone of %s outside %s, and could not be destroyed\\n' "$ds" "$origin" "$PREFIX" >&2
      failed=1
    fi
  done <<EOF
$suspects
EOF
}

valid_name "$PREFIX" || refuse "the guard was installed without a valid dataset prefix"
case $PREFIX in *@*) refuse "the guard's prefix must be a dataset" ;; esac
case $TAG in
  '') ;;
  -*|.*|*[!A-Za-z0-9_.:-]*) refuse "the guard was installed with an invalid hold tag" ;;
esac
case $LEAF in
  '') ;;
  -*|.*|*[!A-Za-z0-9_.:-]*) refuse "the guard was installed with an invalid replica leaf" ;;
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
    # The receive marks what it made with the tag, and may reach this key's own replica only.
    [ -n "$TAG" ] || refuse "zfs $sub is not allowed: this key has no hold tag"
    [ -n "$LEAF" ] || refuse "zfs $sub is not allowed: this key has no replica leaf"
    [ "$dataset" = "$PREFIX/$LEAF" ] || refuse "receive target $target is not this key's replica $PREFIX/$LEAF"
    if [ -n "$abort" ]; then
      if [ "$#" -ne 2 ] || [ "$dataset" != "$target" ]; then refuse "zfs $sub -A takes only a dataset"; fi
      exec "$ZFS" receive -A "$target"
    fi
    # A stream carries its own properties, mountpoint included: the receive must not mount anything.
    [ -n "$nomount" ] || refuse "zfs $sub must use -u: replicas are received unmounted"
    set -- receive -u
    [ -z "$resumable" ] || set -- "$@" -s
    [ -z "$verbose" ] || set -- "$@" -v
    # Fails closed: from here the guard outlives these signals (the receive gets them at their defaults, so a
    # signal to the session's process group still stops it) and makes the prefix inert whatever happened.
    trap '' HUP INT TERM PIPE
    if [ "$OVERRIDE" = options ]; then
      ( trap - HUP INT TERM PIPE; exec "$ZFS" "$@" ${receiveSettings} "$target" )
    else
      ( trap - HUP INT TERM PIPE; exec "$ZFS" "$@" "$target" )
    fi
    status=$?
    refused_clone=''
    if ! protect; then
      printf 'bdr-guard: could not make everything at or below %s inert after zfs receive (exit %s); the operator re-checks it\\n' "$PREFIX" "$status" >&2
      [ "$status" -ne 0 ] || status=1
      exit "$status"
    fi
    [ -z "$refused_clone" ] || exit 1
    [ "$status" -eq 0 ] || exit "$status"
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
 * Writes the guard to the machine (atomic replace, mode 755). Idempotent. Pass the machine's probed
 * capabilities through `guardOptions` (receive options, the property table, `get -t`).
 */
export async function installGuard(
  connection: NodeConnection,
  options: { path?: string } & GuardScriptOptions = {},
): Promise<string> {
  const { path = DEFAULT_GUARD_PATH, ...scriptOptions } = options;
  await writeRemoteFileAtomic(connection, path, guardScript(scriptOptions), { mode: '755', createParentMode: '755' });
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

/** The authorized_keys entry of a vector key: forced through the guard, restricted to `prefix`/`leaf`. */
export function vectorKeyEntry(input: {
  publicKey: string;
  /** Owner tag, e.g. "bdr:vector=ns/name". */
  owner: string;
  /**
   * The vector's dataset: it may list, get, hold and release at or below it, and receive into `leaf` below it
   * (never into it: the operator keeps its quota there).
   */
  prefix: string;
  /** The replica's name below `prefix` (one dataset-name component): the one file system the key may receive into. */
  leaf: string;
  guardPath?: string;
  /** The one hold tag this key may use; default `vectorHoldTag(owner)`. */
  holdTag?: string;
  /** Source address patterns (sshd `from=`), e.g. ["10.0.0.5"]: the primary's addresses, when known. */
  from?: readonly string[];
}): AuthorizedKeyEntry {
  const prefix = assertName('dataset', input.prefix);
  const leafProblem = nameProblem('snapshotShortName', input.leaf);
  if (leafProblem !== undefined) throw new RangeError(`invalid replica leaf ${JSON.stringify(input.leaf)}: ${leafProblem}`);
  const leaf = input.leaf;
  assertName('dataset', `${prefix}/${leaf}`);
  const guardPath = input.guardPath ?? DEFAULT_GUARD_PATH;
  if (!/^\/[A-Za-z0-9_./-]+$/.test(guardPath)) throw new RangeError(`unsafe guard path ${JSON.stringify(guardPath)}`);
  const tag = assertTag(input.holdTag ?? vectorHoldTag(input.owner));
  const from = assertFromPatterns(input.from ?? []);
  return {
    publicKey: input.publicKey,
    owner: assertOwnerTag(input.owner),
    options: [
      'restrict',
      // Prefix, tag and leaf are validated plain words, so they need no quoting inside sshd's `sh -c`.
      `command="${guardPath} ${prefix} ${tag} ${leaf}"`,
      ...(from.length > 0 ? [`from="${from.join(',')}"`] : []),
    ],
  };
}

/** Convenience: the rendered line (for display, or for files bdr does not manage). */
export function vectorKeyLine(input: Parameters<typeof vectorKeyEntry>[0]): string {
  return renderEntry(vectorKeyEntry(input));
}
