/**
 * Self-signed serving certificates from node:crypto alone, the way client-go's GenerateSelfSignedCertKey does
 * it for kube-apiserver: a throw-away CA and a serving certificate it signs, for 127.0.0.1 and localhost.
 *
 * node:crypto makes keys and signatures but cannot write an X.509 certificate, and no well-kept library that
 * does is installed; plain http is not an option either, because kubectl sends a kubeconfig's bearer token
 * only over TLS (client-go reads auth info only when the transport is TLS). So this module writes the few DER
 * structures a certificate needs (RFC 5280) and lets node:crypto sign them with ECDSA P-256.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

// DER: tag, length, content.
function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Buffer[]): Buffer => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => der(0x31, Buffer.concat(items));
const octets = (b: Buffer): Buffer => der(0x04, b);
const bool = (v: boolean): Buffer => der(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, inner: Buffer): Buffer => der(0xa0 + n, inner);

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && b[i + 1]! < 0x80) i++;
  const v = b.subarray(i);
  return der(0x02, v[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [40 * arcs[0]! + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const groups: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) groups.unshift(0x80 | (v & 0x7f));
    out.push(...groups);
  }
  return der(0x06, Buffer.from(out));
}

/** A BIT STRING of whole bytes (signatures). */
const bitString = (b: Buffer): Buffer => der(0x03, Buffer.concat([Buffer.from([0]), b]));

/** keyUsage bits, numbered from the most significant bit as RFC 5280 does; DER drops trailing zero bits. */
function keyUsage(bits: number[]): Buffer {
  let byte = 0;
  for (const bit of bits) byte |= 0x80 >> bit;
  let unused = 0;
  while (unused < 7 && ((byte >> unused) & 1) === 0) unused++;
  return der(0x03, Buffer.from([unused, byte]));
}

function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14); // YYYYMMDDHHMMSS
  // UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
  return d.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(`${iso.slice(2)}Z`)) : der(0x18, Buffer.from(`${iso}Z`));
}

const commonName = (cn: string): Buffer => seq(set(seq(oid('2.5.4.3'), der(0x0c, Buffer.from(cn, 'utf8')))));

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

/** RFC 5280 key identifier: SHA-1 of the subjectPublicKey bits. */
function keyId(spki: Buffer): Buffer {
  // The SPKI of a P-256 key ends with the BIT STRING holding the 65-byte uncompressed point.
  return createHash('sha1').update(spki.subarray(spki.length - 65)).digest();
}

interface CertSpec {
  subject: string;
  issuer: string;
  spki: Buffer;
  issuerSpki: Buffer;
  signer: KeyObject;
  notBefore: Date;
  notAfter: Date;
  extensions: Buffer[];
}

function certificate(spec: CertSpec): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    ECDSA_SHA256,
    commonName(spec.issuer),
    seq(time(spec.notBefore), time(spec.notAfter)),
    commonName(spec.subject),
    spec.spki,
    explicit(
      3,
      seq(
        ...spec.extensions,
        extension('2.5.29.14', false, octets(keyId(spec.spki))),
        extension('2.5.29.35', false, seq(der(0x80, keyId(spec.issuerSpki)))),
      ),
    ),
  );
  return seq(tbs, ECDSA_SHA256, bitString(sign('sha256', tbs, spec.signer)));
}

function pem(label: string, body: Buffer): string {
  const lines = body.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export interface ServingCertificate {
  /** PEM of the CA that signed `cert`: what a kubeconfig's certificate-authority-data holds. */
  ca: string;
  /** PEM of the serving certificate (127.0.0.1 and localhost). */
  cert: string;
  /** PEM (PKCS#8) of the serving certificate's private key. */
  key: string;
}

/**
 * A new CA and a serving certificate for 127.0.0.1, ::1 and localhost, valid from an hour ago (clock skew)
 * for `days`. The CA's private key is dropped at once: nothing else is ever signed with it.
 */
export function selfSignedServingCertificate(now = new Date(), days = 3650): ServingCertificate {
  const ca = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const leaf = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const caSpki = ca.publicKey.export({ type: 'spki', format: 'der' });
  const leafSpki = leaf.publicKey.export({ type: 'spki', format: 'der' });
  const notBefore = new Date(now.getTime() - 3600_000);
  const notAfter = new Date(now.getTime() + days * 86_400_000);
  const caName = `bdr-ca@${Math.floor(now.getTime() / 1000)}`;
  const caCert = certificate({
    subject: caName,
    issuer: caName,
    spki: caSpki,
    issuerSpki: caSpki,
    signer: ca.privateKey,
    notBefore,
    notAfter,
    extensions: [
      extension('2.5.29.15', true, keyUsage([0, 5, 6])), // digitalSignature, keyCertSign, cRLSign
      extension('2.5.29.19', true, seq(bool(true))), // CA
    ],
  });
  const san = seq(der(0x87, Buffer.from([127, 0, 0, 1])), der(0x87, Buffer.concat([Buffer.alloc(15), Buffer.from([1])])), der(0x82, Buffer.from('localhost')));
  const leafCert = certificate({
    subject: `bdr@${Math.floor(now.getTime() / 1000)}`,
    issuer: caName,
    spki: leafSpki,
    issuerSpki: caSpki,
    signer: ca.privateKey,
    notBefore,
    notAfter,
    extensions: [
      extension('2.5.29.15', true, keyUsage([0])), // digitalSignature
      extension('2.5.29.37', false, seq(oid('1.3.6.1.5.5.7.3.1'))), // serverAuth
      extension('2.5.29.19', true, seq()), // not a CA
      extension('2.5.29.17', false, san),
    ],
  });
  return { ca: pem('CERTIFICATE', caCert), cert: pem('CERTIFICATE', leafCert), key: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
