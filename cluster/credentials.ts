/**
 * What a client needs to reach the API server, and the server to check it: a bearer token (like a
 * kube-apiserver static token) and a serving certificate with its CA. With a data directory they persist in
 * `credentials.json` (0600), so a restarted server keeps the token and certificate its kubeconfig already holds.
 */
import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePrivateFileAtomic } from './private-files.ts';
import { selfSignedServingCertificate, type ServingCertificate } from './x509.ts';

export interface Credentials extends ServingCertificate {
  token: string;
}

export const CREDENTIALS_FILE = 'credentials.json';

function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** A certificate still good for a day, for 127.0.0.1, from a CA that signed it. */
function usable(c: Partial<Credentials>, now: Date): boolean {
  try {
    const ca = new X509Certificate(c.ca ?? '');
    const cert = new X509Certificate(c.cert ?? '');
    return cert.verify(ca.publicKey) && cert.checkIP('127.0.0.1') !== undefined && new Date(cert.validTo).getTime() > now.getTime() + 86_400_000 && typeof c.key === 'string';
  } catch {
    return false;
  }
}

/** Reads `dir/credentials.json`, completing or renewing what is missing or expiring; without `dir`, new ones. */
export async function loadCredentials(dir: string | undefined, now = new Date()): Promise<Credentials> {
  if (!dir) return { token: newToken(), ...(await selfSignedServingCertificate(now)) };
  const path = join(dir, CREDENTIALS_FILE);
  let stored: Partial<Credentials> = {};
  if (existsSync(path)) {
    try {
      stored = JSON.parse(readFileSync(path, 'utf8')) as Partial<Credentials>;
    } catch {
      stored = {};
    }
  }
  const token = typeof stored.token === 'string' && stored.token.length >= 32 ? stored.token : newToken();
  const serving = usable(stored, now) ? { ca: stored.ca!, cert: stored.cert!, key: stored.key! } : await selfSignedServingCertificate(now);
  const creds: Credentials = { token, ...serving };
  if (JSON.stringify(creds) !== JSON.stringify({ token: stored.token, ca: stored.ca, cert: stored.cert, key: stored.key })) {
    writePrivateFileAtomic(path, `${JSON.stringify(creds, null, 2)}\n`);
  }
  return creds;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * True when an Authorization header carries `Bearer <token>`. Compared in constant time over digests, so
 * neither the token's bytes nor its length leak through timing.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const offered = m?.[1] ?? '';
  return timingSafeEqual(digest(offered), digest(token)) && m !== null;
}
