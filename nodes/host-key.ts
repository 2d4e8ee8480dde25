import { createHash } from 'node:crypto';

/** A host key as pinned in a Machine spec: known_hosts style "<type> <base64 blob>". */
export interface PinnedHostKey {
  type: string;
  blob: Buffer;
  fingerprint: string;
}

const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
]);

/** Parses "<type> <base64> [comment]"; returns a problem description instead of throwing. */
export function parseHostKey(text: string): PinnedHostKey | string {
  const [type, b64] = text.trim().split(/\s+/);
  if (type === undefined || b64 === undefined) return 'host key must look like "ssh-ed25519 AAAA…"';
  if (!KEY_TYPES.has(type)) return `unsupported host key type ${JSON.stringify(type)}`;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return 'host key is not base64';
  const blob = Buffer.from(b64, 'base64');
  // The blob starts with its own type as an SSH string; a mismatch means a pasted key of another kind.
  const len = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (len < 0 || blob.length < 4 + len || blob.subarray(4, 4 + len).toString('latin1') !== type) {
    return `host key blob does not contain a ${type} key`;
  }
  return { type, blob, fingerprint: fingerprint(blob) };
}

/** OpenSSH's "SHA256:…" fingerprint of a public key blob (what `ssh-keygen -lf` prints). */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Host key algorithms to offer so that the server presents the pinned key and no other. */
export function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}
