/**
 * Self-signed serving certificates, the way client-go's GenerateSelfSignedCertKey makes them for
 * kube-apiserver: a throw-away CA and a serving certificate it signs, for 127.0.0.1, ::1 and localhost.
 *
 * Plain http is not an option, because kubectl sends a kubeconfig's bearer token only over TLS (client-go reads
 * auth info only when the transport is TLS). node:crypto makes keys and signatures but cannot write an X.509
 * certificate, so @peculiar/x509 writes them, over node's WebCrypto (hence async).
 */
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API; this import
// must come before the library's (ES modules run their imports in order).
import 'reflect-metadata';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';

// Passed to every call rather than set in the library's global provider, so no other user of it is affected.
const crypto = webcrypto;
const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** 16 random bytes, positive and without a leading zero byte (RFC 5280 4.1.2.2: at most 20 octets). */
function serialNumber(): string {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  return serial.toString('hex');
}

export interface ServingCertificate {
  /** PEM of the CA that signed `cert`: what a kubeconfig's certificate-authority-data holds. */
  ca: string;
  /** PEM of the serving certificate (127.0.0.1, ::1 and localhost). */
  cert: string;
  /** PEM (PKCS#8) of the serving certificate's private key. */
  key: string;
}

/**
 * A new CA and a serving certificate for 127.0.0.1, ::1 and localhost, valid from an hour ago (clock skew)
 * for `days`. The CA's private key is dropped at once: nothing else is ever signed with it.
 */
export async function selfSignedServingCertificate(now = new Date(), days = 3650): Promise<ServingCertificate> {
  // Extractable only where it must be: the serving key goes into the PEM, the CA key never leaves.
  const ca = await crypto.subtle.generateKey(P256, false, ['sign', 'verify']);
  const leaf = await crypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const notBefore = new Date(now.getTime() - 3600_000);
  const notAfter = new Date(now.getTime() + days * 86_400_000);
  const caName = `CN=bdr-ca@${Math.floor(now.getTime() / 1000)}`;
  const caCert = await X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: caName,
      issuer: caName,
      notBefore,
      notAfter,
      signingAlgorithm: ECDSA_SHA256,
      publicKey: ca.publicKey,
      signingKey: ca.privateKey,
      extensions: [
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        new BasicConstraintsExtension(true, undefined, true),
        await SubjectKeyIdentifierExtension.create(ca.publicKey, false, crypto),
        await AuthorityKeyIdentifierExtension.create(ca.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const leafCert = await X509CertificateGenerator.create(
    {
      serialNumber: serialNumber(),
      subject: `CN=bdr@${Math.floor(now.getTime() / 1000)}`,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ECDSA_SHA256,
      publicKey: leaf.publicKey,
      signingKey: ca.privateKey,
      extensions: [
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
        new BasicConstraintsExtension(false, undefined, true),
        new SubjectAlternativeNameExtension(
          [
            { type: 'ip', value: '127.0.0.1' },
            { type: 'ip', value: '::1' },
            { type: 'dns', value: 'localhost' },
          ],
          false,
        ),
        await SubjectKeyIdentifierExtension.create(leaf.publicKey, false, crypto),
        await AuthorityKeyIdentifierExtension.create(ca.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const key = KeyObject.from(leaf.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
  // The library ends its PEM without a newline; files and kubeconfigs expect one.
  return { ca: `${caCert.toString('pem')}\n`, cert: `${leafCert.toString('pem')}\n`, key };
}
