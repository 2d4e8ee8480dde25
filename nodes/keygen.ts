// ssh2 is CommonJS and Node's ESM loader does not see `utils` as a named export; take it from the default.
import ssh2 from 'ssh2';
import { fingerprint, parseHostKey } from './host-key.ts';

/**
 * Vector keys are made by the operator itself (no ssh-keygen on the operator host): ssh2 writes an ed25519
 * pair in OpenSSH's own formats, which the primary's OpenSSH client reads as an identity file and sshd reads
 * in authorized_keys. The private half is returned to the caller only; nothing here logs it.
 */
export interface GeneratedKey {
  /** "-----BEGIN OPENSSH PRIVATE KEY-----…", newline-terminated. */
  privateKey: string;
  /** "ssh-ed25519 AAAA…" without a comment. */
  publicKey: string;
  /** "SHA256:…", as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

export function generateEd25519Key(): GeneratedKey {
  const pair = ssh2.utils.generateKeyPairSync('ed25519');
  const publicKey = pair.public.trim().split(/\s+/).slice(0, 2).join(' ');
  const privateKey = pair.private.endsWith('\n') ? pair.private : `${pair.private}\n`;
  return { privateKey, publicKey, fingerprint: publicKeyFingerprint(publicKey) };
}

/** The public half of an OpenSSH private key, "ssh-ed25519 AAAA…"; throws without echoing the key. */
export function publicKeyOf(privateKey: string): string {
  const parsed = ssh2.utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error) throw new Error('not a readable OpenSSH private key');
  return `${key.type} ${key.getPublicSSH().toString('base64')}`;
}

export function publicKeyFingerprint(publicKey: string): string {
  const parsed = parseHostKey(publicKey);
  if (typeof parsed === 'string') throw new RangeError(`invalid public key: ${parsed}`);
  return fingerprint(parsed.blob);
}
