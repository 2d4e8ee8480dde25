/**
 * Vector keys against OpenSSH itself (the oracle): ssh-keygen must load the private key, derive the same public
 * key, and accept a signature made with it for the public key bdr authorizes. Keys whose public half starts with a
 * zero byte get a test of their own: ssh2's generator dropped that byte (about one key in 256), which OpenSSH
 * then refused to load.
 */
import { generateKeyPairSync } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { generateEd25519Key, openSshEd25519, publicKeyOf, type GeneratedKey } from '../../nodes/keygen.ts';
import { tempDir } from '../gitops/harness.ts';

const tmp = tempDir('bdr-keygen-');
afterAll(() => tmp.remove());

let n = 0;
/** What OpenSSH makes of the key: the public key it derives, and whether it verifies a signature made with it. */
async function openssh(key: GeneratedKey): Promise<{ derived: string; verified: boolean; fingerprint: string }> {
  const dir = join(tmp.path, String(++n));
  await execa('mkdir', ['-p', dir]);
  const file = join(dir, 'id');
  await writeFile(file, key.privateKey);
  await chmod(file, 0o600);
  const derived = (await execa('ssh-keygen', ['-y', '-f', file])).stdout.trim().split(' ').slice(0, 2).join(' ');
  const fingerprint = (await execa('ssh-keygen', ['-l', '-f', file])).stdout.split(' ')[1] ?? '';
  await writeFile(join(dir, 'data'), 'restore point');
  await execa('ssh-keygen', ['-Y', 'sign', '-f', file, '-n', 'bdr-test', join(dir, 'data')]);
  await writeFile(join(dir, 'allowed'), `vector ${key.publicKey}\n`);
  const verify = await execa('ssh-keygen', ['-Y', 'verify', '-f', join(dir, 'allowed'), '-I', 'vector', '-n', 'bdr-test', '-s', join(dir, 'data.sig')], {
    inputFile: join(dir, 'data'),
    reject: false,
  });
  return { derived, verified: verify.exitCode === 0, fingerprint };
}

function rawPair(wantLeadingZero: boolean): { seed: Buffer; pub: Buffer } {
  for (;;) {
    const pair = generateKeyPairSync('ed25519');
    const pub = Buffer.from(pair.publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
    if ((pub[0] === 0) !== wantLeadingZero) continue;
    return { seed: Buffer.from(pair.privateKey.export({ format: 'jwk' }).d ?? '', 'base64url'), pub };
  }
}

describe('vector keys (ed25519, OpenSSH formats)', () => {
  it('OpenSSH loads a generated key, derives the public key bdr authorizes, verifies its signature, and agrees on the fingerprint', async () => {
    for (let i = 0; i < 5; i++) {
      const key = generateEd25519Key();
      const seen = await openssh(key);
      expect(seen).toEqual({ derived: key.publicKey, verified: true, fingerprint: key.fingerprint });
      expect(publicKeyOf(key.privateKey)).toBe(key.publicKey);
    }
  });

  it('a public key that starts with a zero byte keeps all 32 bytes', async () => {
    const { seed, pub } = rawPair(true);
    const key = openSshEd25519(seed, pub);
    // "ssh-ed25519" blob: 4 + 11 + 4 + 32 bytes.
    expect(Buffer.from(key.publicKey.split(' ')[1] ?? '', 'base64')).toHaveLength(51);
    expect(await openssh(key)).toEqual({ derived: key.publicKey, verified: true, fingerprint: key.fingerprint });
  });

  it('every generated public key blob has the fixed ed25519 length (1,000 keys)', () => {
    const lengths = new Set<number>();
    for (let i = 0; i < 1000; i++) lengths.add(Buffer.from(generateEd25519Key().publicKey.split(' ')[1] ?? '', 'base64').length);
    expect([...lengths]).toEqual([51]);
  });

  it('refuses a seed or public key of the wrong length', () => {
    const { seed, pub } = rawPair(false);
    expect(() => openSshEd25519(seed.subarray(1), pub)).toThrow(RangeError);
    expect(() => openSshEd25519(seed, pub.subarray(1))).toThrow(RangeError);
  });
});
