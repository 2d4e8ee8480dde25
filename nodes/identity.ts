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

export async function installVectorIdentity(
  connection: NodeConnection,
  input: { dir: string; privateKey: string | Buffer; host: string; port: number; hostKey: string },
): Promise<VectorIdentityFiles> {
  if (!/^\/[A-Za-z0-9_./-]+$/.test(input.dir) || input.dir.includes('..')) throw new RangeError(`unsafe directory ${JSON.stringify(input.dir)}`);
  if (!/^[A-Za-z0-9.:-]+$/.test(input.host) || !Number.isInteger(input.port)) throw new RangeError('invalid host or port');
  const key = parseHostKey(input.hostKey);
  if (typeof key === 'string') throw new RangeError(`invalid host key: ${key}`);
  const identityFile = `${input.dir}/id`;
  const knownHostsFile = `${input.dir}/known_hosts`;
  const hostPattern = input.port === 22 ? input.host : `[${input.host}]:${input.port}`;
  const privateKey = typeof input.privateKey === 'string' ? input.privateKey : input.privateKey.toString('utf8');
  await writeRemoteFileAtomic(connection, identityFile, privateKey.endsWith('\n') ? privateKey : `${privateKey}\n`, {
    mode: '600',
    createParentMode: '700',
  });
  await writeRemoteFileAtomic(connection, knownHostsFile, `${hostPattern} ${key.type} ${key.blob.toString('base64')}\n`, { mode: '600' });
  return { identityFile, knownHostsFile };
}
