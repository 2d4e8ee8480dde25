/**
 * The pieces of the API server's authentication: the self-signed certificates (checked by node:crypto and by
 * the openssl command, independent of the library that writes them), the token file, the token check, and
 * restrictTree.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearerMatches, loadCredentials } from '../../cluster/credentials.ts';
import { restrictTree } from '../../cluster/private-files.ts';
import { selfSignedServingCertificate } from '../../cluster/x509.ts';

const mode = (p: string) => lstatSync(p).mode & 0o7777;

describe('self-signed serving certificate', () => {
  it('is a CA-signed certificate for 127.0.0.1, ::1 and localhost, for server authentication only', async () => {
    const now = new Date(Date.UTC(2030, 5, 1));
    const c = await selfSignedServingCertificate(now, 30);
    const ca = new X509Certificate(c.ca);
    const cert = new X509Certificate(c.cert);
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(ca.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(c.cert.endsWith('-----END CERTIFICATE-----\n')).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.subjectAltName).toBe('IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:localhost');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('10.0.0.1')).toBeUndefined();
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(new Date(cert.validFrom).toISOString()).toBe('2030-05-31T23:00:00.000Z');
    expect(new Date(cert.validTo).toISOString()).toBe('2030-07-01T00:00:00.000Z');
    expect(cert.checkPrivateKey(createPrivateKey(c.key))).toBe(true);
    // An independent parser and verifier (OpenSSL's) agrees.
    const dir = mkdtempSync(join(tmpdir(), 'bdr-x509-'));
    writeFileSync(join(dir, 'ca.pem'), c.ca);
    writeFileSync(join(dir, 'cert.pem'), c.cert);
    const verified = await execa('openssl', ['verify', '-attime', String(Math.floor(now.getTime() / 1000)), '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.pem'), join(dir, 'cert.pem')], { reject: false });
    expect(verified.stdout, verified.stderr).toBe(`${join(dir, 'cert.pem')}: OK`);
    // The CA may sign certificates (and nothing else signs with its key); the serving certificate may not.
    const caText = (await execa('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'ca.pem')])).stdout;
    expect(caText).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign\n/);
    expect(caText).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE\n/);
    const certText = (await execa('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'cert.pem')])).stdout;
    expect(certText).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(certText).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE\n/);
    expect(certText).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
  });

  it('writes UTCTime through 2049 and GeneralizedTime after (RFC 5280 4.1.2.5)', async () => {
    const c = await selfSignedServingCertificate(new Date(Date.UTC(2049, 11, 31)), 2);
    expect(new Date(new X509Certificate(c.cert).validTo).toISOString()).toBe('2050-01-02T00:00:00.000Z');
    const dir = mkdtempSync(join(tmpdir(), 'bdr-x509-'));
    writeFileSync(join(dir, 'cert.pem'), c.cert);
    const asn1 = (await execa('openssl', ['asn1parse', '-in', join(dir, 'cert.pem')])).stdout;
    expect(asn1).toMatch(/UTCTIME +:491230230000Z/);
    expect(asn1).toMatch(/GENERALIZEDTIME +:20500102000000Z/);
  });
});

describe('credentials of a data directory', () => {
  it('keeps the token and certificate across loads, in a 0600 file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bdr-creds-'));
    const first = await loadCredentials(dir);
    expect(first.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(mode(join(dir, 'credentials.json'))).toBe(0o600);
    expect(await loadCredentials(dir)).toEqual(first);
    expect((await loadCredentials(undefined)).token).not.toBe(first.token);
  });

  it('replaces a certificate about to expire, keeping the token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bdr-creds-'));
    const first = await loadCredentials(dir, new Date(Date.UTC(2030, 0, 1)));
    const later = await loadCredentials(dir, new Date(Date.UTC(2039, 11, 31, 12)));
    expect(later.token).toBe(first.token);
    expect(later.ca).not.toBe(first.ca);
    expect(new Date(new X509Certificate(later.cert).validTo).getTime()).toBeGreaterThan(Date.UTC(2049, 0, 1));
  });

  it('starts over from a damaged file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bdr-creds-'));
    writeFileSync(join(dir, 'credentials.json'), '{"token": "short", "cert": "nope"');
    const c = await loadCredentials(dir);
    expect(c.token).toHaveLength(43);
    expect(JSON.parse(readFileSync(join(dir, 'credentials.json'), 'utf8'))).toEqual(c);
  });
});

describe('bearer token check', () => {
  const token = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ';
  it('accepts exactly "Bearer <token>", the scheme in any case', () => {
    for (const h of [`Bearer ${token}`, `bearer ${token}`, `BEARER  ${token}`, `Bearer ${token} `]) expect(bearerMatches(h, token), h).toBe(true);
    for (const h of [undefined, '', 'Bearer', `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `Basic ${token}`, token, `Bearer ${token} extra`, `Bearer  `]) {
      expect(bearerMatches(h, token), String(h)).toBe(false);
    }
  });
  it('accepts no other header', () => {
    fc.assert(fc.property(fc.string(), (h) => bearerMatches(h, token) === (h.trim().replace(/^bearer\s+/i, '') === token && /^bearer\s/i.test(h))));
  });
});

describe('restrictTree', () => {
  it('removes group and other bits below a directory, and leaves symbolic links and their targets alone', () => {
    const root = mkdtempSync(join(tmpdir(), 'bdr-restrict-'));
    const outside = join(mkdtempSync(join(tmpdir(), 'bdr-outside-')), 'target');
    writeFileSync(outside, 'x', { mode: 0o644 });
    chmodSync(outside, 0o644);
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    writeFileSync(join(root, 'a', 'b', 'f'), 'f');
    writeFileSync(join(root, 'a', 'run.sh'), '#!/bin/sh\n');
    chmodSync(join(root, 'a', 'b', 'f'), 0o664);
    chmodSync(join(root, 'a', 'run.sh'), 0o755);
    chmodSync(join(root, 'a'), 0o775);
    symlinkSync(outside, join(root, 'a', 'link'));
    restrictTree(join(root, 'a'));
    expect([mode(join(root, 'a')), mode(join(root, 'a', 'b')), mode(join(root, 'a', 'b', 'f')), mode(join(root, 'a', 'run.sh'))]).toEqual([0o700, 0o700, 0o600, 0o700]);
    expect(mode(outside)).toBe(0o644);
    restrictTree(join(root, 'missing'));
  });
});
