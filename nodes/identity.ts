import type { NodeConnection } from './connection.ts';
import { parseHostKey } from './host-key.ts';
import { writeRemoteFileAtomic } from './remote-file.ts';

/**
 * For the direct transfer path the primary's own OpenSSH client needs the vector's private key and the
 * secondary's pinned host key as files. bdr writes both (mode 600, atomic replace) into a directory it
 * owns on the primary, e.g. /var/lib/bdr/vectors/<namespace>/<name>/.
 */
export interface VectorIdentityFiles {
  identityFile: string;
  knownHostsFile: string;
}

export interface VectorIdentityInput {
  dir: string;
  privateKey: string | Buffer;
  host: string;
  port: number;
  hostKey: string;
}

const IDENTITY = 'id';
const KNOWN_HOSTS = 'known_hosts';

function checkDir(dir: string): void {
  if (!/^\/[A-Za-z0-9_./-]+$/.test(dir) || dir.split('/').some((c) => c === '..' || c === '.')) {
    throw new RangeError(`unsafe directory ${JSON.stringify(dir)}`);
  }
}

/** The two files' paths and exact contents (pure), so that drift checks compare byte for byte. */
export function vectorIdentityContent(input: VectorIdentityInput): { files: VectorIdentityFiles; identity: string; knownHosts: string } {
  checkDir(input.dir);
  if (!/^[A-Za-z0-9.:-]+$/.test(input.host) || !Number.isInteger(input.port)) throw new RangeError('invalid host or port');
  const key = parseHostKey(input.hostKey);
  if (typeof key === 'string') throw new RangeError(`invalid host key: ${key}`);
  const hostPattern = input.port === 22 ? input.host : `[${input.host}]:${input.port}`;
  const privateKey = typeof input.privateKey === 'string' ? input.privateKey : input.privateKey.toString('utf8');
  return {
    files: { identityFile: `${input.dir}/${IDENTITY}`, knownHostsFile: `${input.dir}/${KNOWN_HOSTS}` },
    identity: privateKey.endsWith('\n') ? privateKey : `${privateKey}\n`,
    knownHosts: `${hostPattern} ${key.type} ${key.blob.toString('base64')}\n`,
  };
}

export async function installVectorIdentity(connection: NodeConnection, input: VectorIdentityInput): Promise<VectorIdentityFiles> {
  const { files, identity, knownHosts } = vectorIdentityContent(input);
  // Every directory it creates is 0700 (the namespace level too, which names the vectors), not only the last.
  const r = await connection.exec(['sh', '-c', 'umask 077 && mkdir -p -- "$1"', 'sh', input.dir]);
  if (r.code !== 0) throw new Error(`${connection.description}: cannot create ${input.dir}: ${r.stderr.trim()}`);
  await writeRemoteFileAtomic(connection, files.identityFile, identity, { mode: '600', createParentMode: '700' });
  await writeRemoteFileAtomic(connection, files.knownHostsFile, knownHosts, { mode: '600' });
  return files;
}

/** Removes a vector's directory (key and known_hosts), and its namespace directory once empty. */
export async function removeVectorIdentity(connection: NodeConnection, dir: string): Promise<void> {
  checkDir(dir);
  const r = await connection.exec(['sh', '-c', 'rm -rf -- "$1" && { rmdir -- "$(dirname -- "$1")" 2>/dev/null || true; }', 'sh', dir]);
  if (r.code !== 0) throw new Error(`${connection.description}: cannot remove ${dir}: ${r.stderr.trim()}`);
}

/** One vector directory found under a root: `<root>/<namespace>/<name>/` with what its two files hold. */
export interface FoundIdentity {
  namespace: string;
  name: string;
  dir: string;
  /** File name → mode and content, for the files present. */
  files: Map<string, { mode: string; content: string }>;
}

// One command lists every vector directory with both files' modes, sizes and bytes; sizes frame the content.
const LIST_SCRIPT = `root=$1
[ -d "$root" ] || exit 0
for d in "$root"/*/*; do
  [ -d "$d" ] || continue
  printf 'D %s\\n' "$d"
  for f in ${IDENTITY} ${KNOWN_HOSTS}; do
    [ -f "$d/$f" ] || continue
    printf 'F %s %s %s\\n' "$f" "$(stat -c %a -- "$d/$f")" "$(wc -c < "$d/$f" | tr -d ' ')"
    cat -- "$d/$f"
  done
done`;

/** Every vector directory under `root` on a machine, in one command (drift checks on primaries). */
export async function listVectorIdentities(connection: NodeConnection, root: string): Promise<FoundIdentity[]> {
  checkDir(root);
  const r = await connection.exec(['sh', '-c', LIST_SCRIPT, 'sh', root]);
  if (r.code !== 0) throw new Error(`${connection.description}: cannot list ${root}: ${r.stderr.trim()}`);
  const out: FoundIdentity[] = [];
  const buf = Buffer.from(r.stdout, 'utf8');
  let pos = 0;
  const line = (): string | undefined => {
    if (pos >= buf.length) return undefined;
    const end = buf.indexOf(10, pos);
    const text = buf.subarray(pos, end < 0 ? buf.length : end).toString('utf8');
    pos = end < 0 ? buf.length : end + 1;
    return text;
  };
  let current: FoundIdentity | undefined;
  for (let l = line(); l !== undefined; l = line()) {
    if (l.startsWith('D ')) {
      const dir = l.slice(2);
      const rel = dir.slice(root.replace(/\/+$/, '').length + 1).split('/');
      current = { namespace: rel[0] ?? '', name: rel[1] ?? '', dir, files: new Map() };
      out.push(current);
    } else if (l.startsWith('F ') && current) {
      const [, file = '', mode = '', size = '0'] = l.split(' ');
      const n = Number(size);
      current.files.set(file, { mode, content: buf.subarray(pos, pos + n).toString('utf8') });
      pos += n;
    } else {
      throw new Error(`${connection.description}: unexpected listing of ${root}`);
    }
  }
  return out;
}
