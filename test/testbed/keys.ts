import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk } from './run.ts';

export interface KeyPair {
  /** OpenSSH-format private key (what goes into a Secret's `ssh-privatekey`). */
  privateKey: string;
  /** One authorized_keys / known_hosts style line: "ssh-ed25519 AAAA… comment". */
  publicKey: string;
  /** "ssh-ed25519 AAAA…" without the comment, as pinned in a Machine's hostKey. */
  publicKeyNoComment: string;
  privateKeyPath: string;
}

/** Generates an ed25519 key pair with ssh-keygen in `dir` (files `name` and `name.pub`). */
export async function generateKeyPair(dir: string, name: string, comment = name): Promise<KeyPair> {
  const privateKeyPath = join(dir, name);
  await rm(privateKeyPath, { force: true });
  await rm(`${privateKeyPath}.pub`, { force: true });
  await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', privateKeyPath]);
  const publicKey = (await readFile(`${privateKeyPath}.pub`, 'utf8')).trim();
  const [type, blob] = publicKey.split(' ');
  return {
    privateKey: await readFile(privateKeyPath, 'utf8'),
    publicKey,
    publicKeyNoComment: `${type} ${blob}`,
    privateKeyPath,
  };
}
