import type { NodeConnection } from './connection.ts';

/**
 * Small files on a machine (authorized_keys, the guard script), read and replaced through any
 * NodeConnection. The shell scripts are constants; paths and modes travel as positional arguments, so
 * nothing a caller passes is ever parsed as shell syntax.
 */

export interface RemoteFile {
  exists: boolean;
  content: string;
  /** Octal permission bits ("600"), owner and group ids; undefined when the file does not exist. */
  mode?: string;
  uid?: number;
  gid?: number;
  /** `cksum` of the content as read; passed back to `writeFileAtomic` to detect concurrent edits. */
  version: string;
}

export class RemoteFileError extends Error {
  constructor(
    message: string,
    readonly conflict = false,
  ) {
    super(message);
    this.name = 'RemoteFileError';
  }
}

const READ_SCRIPT = `f=$1
if [ ! -e "$f" ]; then echo absent; exit 0; fi
stat -c '%a %u %g' -- "$f" || exit 1
cksum < "$f" || exit 1
cat -- "$f"`;

// Writers take a lock directory (mkdir is atomic) around compare-and-replace, so two edits cannot both
// pass the version check. A lock older than a minute belongs to a writer that died and is broken.
// Exit 75 (EX_TEMPFAIL) marks "changed under us" or "still locked": the caller re-reads and retries.
const WRITE_SCRIPT = `set -e
f=$1 mode=$2 owner=$3 expect=$4 mkparent=$5
if [ -n "$mkparent" ]; then mkdir -p -m "$mkparent" -- "$(dirname -- "$f")"; fi
lock="$f.bdr-lock"
tries=0
until mkdir -- "$lock" 2>/dev/null; do
  find "$lock" -maxdepth 0 -mmin +1 -exec rmdir {} \\; 2>/dev/null || true
  tries=$((tries + 1))
  if [ "$tries" -ge 100 ]; then echo "$f is locked by another edit ($lock)" >&2; exit 75; fi
  sleep 0.1
done
t="$f.bdr-tmp.$$"
trap 'rm -f -- "$t"; rmdir -- "$lock"' EXIT
if [ "$expect" = absent ]; then
  if [ -e "$f" ]; then echo "$f appeared while it was being edited" >&2; exit 75; fi
elif [ -n "$expect" ]; then
  cur=$(cksum < "$f" 2>/dev/null || echo absent)
  if [ "$cur" != "$expect" ]; then echo "$f changed while it was being edited" >&2; exit 75; fi
fi
umask 077
cat > "$t"
chmod "$mode" -- "$t"
if [ -n "$owner" ]; then chown "$owner" -- "$t"; fi
mv -f -- "$t" "$f"`;

function checkPath(path: string): void {
  if (!/^\/[A-Za-z0-9_./~+-]*$/.test(path) || path.includes('/../') || path.endsWith('/..')) {
    throw new RemoteFileError(`unsafe path ${JSON.stringify(path)}`);
  }
}

export async function readRemoteFile(connection: NodeConnection, path: string): Promise<RemoteFile> {
  checkPath(path);
  const r = await connection.exec(['sh', '-c', READ_SCRIPT, 'sh', path]);
  if (r.code !== 0) throw new RemoteFileError(`${connection.description}: cannot read ${path}: ${r.stderr.trim()}`);
  if (r.stdout === 'absent\n') return { exists: false, content: '', version: 'absent' };
  const first = r.stdout.indexOf('\n');
  const second = r.stdout.indexOf('\n', first + 1);
  const [mode, uid, gid] = r.stdout.slice(0, first).split(' ');
  return {
    exists: true,
    mode,
    uid: Number(uid),
    gid: Number(gid),
    version: r.stdout.slice(first + 1, second),
    content: r.stdout.slice(second + 1),
  };
}

export interface WriteOptions {
  /** Octal permission bits, e.g. "600". */
  mode: string;
  /** "uid:gid" to chown the new file to; omitted keeps the writer's. */
  owner?: string;
  /** `version` from the read this write is based on; the write fails with a conflict if it changed. */
  expectVersion?: string;
  /** Create the parent directory with this mode when missing (e.g. "700" for ~/.ssh). */
  createParentMode?: string;
}

/** Replaces the file atomically: a temp file in the same directory, then rename over the original. */
export async function writeRemoteFileAtomic(connection: NodeConnection, path: string, content: string, options: WriteOptions): Promise<void> {
  checkPath(path);
  if (!/^[0-7]{3,4}$/.test(options.mode)) throw new RemoteFileError(`invalid mode ${options.mode}`);
  if (options.owner !== undefined && !/^\d+:\d+$/.test(options.owner)) throw new RemoteFileError(`invalid owner ${options.owner}`);
  if (options.createParentMode !== undefined && !/^[0-7]{3,4}$/.test(options.createParentMode)) {
    throw new RemoteFileError(`invalid mode ${options.createParentMode}`);
  }
  const expect = options.expectVersion ?? '';
  if (!/^[a-z0-9 ]*$/.test(expect)) throw new RemoteFileError('invalid version');
  const r = await connection.exec(
    ['sh', '-c', WRITE_SCRIPT, 'sh', path, options.mode, options.owner ?? '', expect, options.createParentMode ?? ''],
    { stdin: content },
  );
  if (r.code === 75) throw new RemoteFileError(`${connection.description}: ${r.stderr.trim()}`, true);
  if (r.code !== 0) throw new RemoteFileError(`${connection.description}: cannot write ${path}: ${r.stderr.trim()}`);
}
