import { generateKeyPairSync, randomBytes } from 'node:crypto';
// ssh2 is CommonJS and Node's ESM loader does not see `utils` as a named export; take it from the default.
import ssh2 from 'ssh2';
import { fingerprint, parseHostKey } from './host-key.ts';

/**
 * Vector keys are made by the operator itself (no ssh-keygen on the operator host): an ed25519 pair from
 * Node's crypto, written in OpenSSH's own formats, which the primary's OpenSSH client reads as an identity
 * file and sshd reads in authorized_keys. The private half is returned to the caller only; nothing here logs it.
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
  // Node's own ed25519: ssh2's generateKeyPairSync drops a leading zero byte of the public key (about one key in
  // 256), which OpenSSH then refuses to load ("error in libcrypto").
  const pair = generateKeyPairSync('ed25519');
  const seed = base64url(pair.privateKey.export({ format: 'jwk' }).d, 'private');
  const pub = base64url(pair.publicKey.export({ format: 'jwk' }).x, 'public');
  return openSshEd25519(seed, pub);
}

/**
 * An ed25519 pair in OpenSSH's formats from its 32-byte seed and public key (PROTOCOL.key: an unencrypted
 * "openssh-key-v1" container holding one key). Fixed-length fields throughout, so no byte is ever dropped.
 */
export function openSshEd25519(seed: Uint8Array, pub: Uint8Array, comment = ''): GeneratedKey {
  if (seed.length !== 32 || pub.length !== 32) throw new RangeError('an ed25519 seed and public key are 32 bytes each');
  const publicBlob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);
  const check = randomBytes(4);
  let secret = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // Padded with 1, 2, 3, … to the cipher's block size (8 for "none").
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    uint32(1),
    sshString(publicBlob),
    sshString(secret),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  const privateKey = `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  const publicKey = `ssh-ed25519 ${publicBlob.toString('base64')}`;
  return { privateKey, publicKey, fingerprint: publicKeyFingerprint(publicKey) };
}

function base64url(value: string | undefined, which: string): Buffer {
  if (value === undefined) throw new Error(`ed25519 key export lacks its ${which} part`);
  return Buffer.from(value, 'base64url');
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function sshString(value: string | Uint8Array): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return Buffer.concat([uint32(bytes.length), bytes]);
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
