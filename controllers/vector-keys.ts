/**
 * Vector key pairs, kept in Secrets in the operator's namespace (so RBAC for Secrets stays in that one
 * namespace), one Secret per Vector with a deterministic name and labels naming the vector. A Secret holds
 * the current pair and, during a rotation, the incoming one: staging the next key in the Secret before it is
 * authorized anywhere means a crash mid-rotation never leaves an authorized key bdr has lost.
 *
 * Key material stays in this module's return values; errors and logs carry only names and fingerprints.
 */
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { Vector } from '../api/types.ts';
import { generateEd25519Key, publicKeyFingerprint } from '../nodes/keygen.ts';
import type { Clock } from './runtime/clock.ts';
import { isConflict, type KubeClient } from './runtime/kube.ts';

export const VECTOR_LABELS = {
  namespace: 'bdr.dev/vector-namespace',
  name: 'bdr.dev/vector-name',
  uid: 'bdr.dev/vector-uid',
} as const;
const CREATED_AT = 'bdr.dev/key-created-at';
const NEXT_CREATED_AT = 'bdr.dev/next-key-created-at';
const FIELDS = { privateKey: 'ssh-privatekey', publicKey: 'ssh-publickey', nextPrivateKey: 'next-privatekey', nextPublicKey: 'next-publickey' } as const;

export interface VectorKey {
  privateKey: string;
  publicKey: string;
  fingerprint: string;
  /** When the operator made it (ms); rotation counts from here. */
  createdAt: number;
}

export interface VectorKeys {
  /** "namespace/name" of the Vector. */
  vector: string;
  uid: string;
  secretName: string;
  current: VectorKey;
  /** The incoming key while a rotation is under way. */
  next?: VectorKey;
}

/**
 * `vector.<namespace>.<name>`: a namespace is a DNS label (no dots), so the first dot after the prefix
 * separates the two and no two vectors share a name. Names too long for that fall back to a digest.
 */
export function vectorKeySecretName(namespace: string, name: string): string {
  const plain = `vector.${namespace}.${name}`;
  if (plain.length <= 253) return plain;
  return `vector.${namespace}.${createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 32)}`;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

function keyFrom(data: Record<string, string>, privateField: string, publicField: string, createdAt: string | undefined): VectorKey | undefined {
  const privateKey = unb64(data[privateField]);
  const publicKey = unb64(data[publicField])?.trim();
  if (!privateKey || !publicKey) return undefined;
  const at = createdAt ? Date.parse(createdAt) : NaN;
  return { privateKey, publicKey, fingerprint: publicKeyFingerprint(publicKey), createdAt: Number.isFinite(at) ? at : 0 };
}

function parse(secret: V1Secret): VectorKeys | undefined {
  const labels = secret.metadata?.labels ?? {};
  const annotations = secret.metadata?.annotations ?? {};
  const data = secret.data ?? {};
  const ns = labels[VECTOR_LABELS.namespace];
  const name = labels[VECTOR_LABELS.name];
  if (!ns || !name) return undefined;
  const current = keyFrom(data, FIELDS.privateKey, FIELDS.publicKey, annotations[CREATED_AT]);
  if (!current) return undefined;
  const next = keyFrom(data, FIELDS.nextPrivateKey, FIELDS.nextPublicKey, annotations[NEXT_CREATED_AT]);
  return {
    vector: `${ns}/${name}`,
    uid: labels[VECTOR_LABELS.uid] ?? '',
    secretName: secret.metadata?.name ?? vectorKeySecretName(ns, name),
    current,
    ...(next ? { next } : {}),
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

export class VectorKeyStore {
  /** What this process last read or wrote, per vector; Secrets change only through here. */
  private readonly cache = new Map<string, VectorKeys>();

  constructor(
    private readonly client: KubeClient,
    /** The operator's namespace. */
    readonly namespace: string,
    private readonly clock: Clock,
  ) {}

  /** The vector's keys, made and stored on first use. A Secret left by an earlier Vector of that name is replaced. */
  async ensure(vector: Vector): Promise<{ keys: VectorKeys; created: boolean }> {
    const ns = vector.metadata.namespace ?? 'default';
    const key = `${ns}/${vector.metadata.name}`;
    const uid = vector.metadata.uid ?? '';
    const cached = this.cache.get(key);
    if (cached && cached.uid === uid) return { keys: cached, created: false };
    const secretName = vectorKeySecretName(ns, vector.metadata.name);
    const existing = await this.client.getSecret(this.namespace, secretName);
    const parsed = existing ? parse(existing) : undefined;
    if (parsed && parsed.uid === uid) {
      this.cache.set(key, parsed);
      return { keys: parsed, created: false };
    }
    if (existing) await this.client.deleteSecret(this.namespace, secretName);
    const made = generateEd25519Key();
    const current: VectorKey = { ...made, createdAt: this.clock.now() };
    try {
      await this.client.createSecret(this.namespace, {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/ssh-auth',
        metadata: {
          name: secretName,
          namespace: this.namespace,
          labels: { [VECTOR_LABELS.namespace]: ns, [VECTOR_LABELS.name]: vector.metadata.name, [VECTOR_LABELS.uid]: uid },
          annotations: { [CREATED_AT]: iso(current.createdAt) },
        },
        data: { [FIELDS.privateKey]: b64(current.privateKey), [FIELDS.publicKey]: b64(current.publicKey) },
      });
    } catch (err) {
      // Another instance (a previous leader) made it meanwhile: use theirs.
      if (!isConflict(err)) throw err;
      this.cache.delete(key);
      return this.ensure(vector);
    }
    const keys: VectorKeys = { vector: key, uid, secretName, current };
    this.cache.set(key, keys);
    return { keys, created: true };
  }

  /** Makes the incoming key and stores it beside the current one. */
  async stageNext(keys: VectorKeys): Promise<VectorKeys> {
    if (keys.next) return keys;
    const made = generateEd25519Key();
    const next: VectorKey = { ...made, createdAt: this.clock.now() };
    await this.client.patchSecret(this.namespace, keys.secretName, {
      metadata: { annotations: { [NEXT_CREATED_AT]: iso(next.createdAt) } },
      data: { [FIELDS.nextPrivateKey]: b64(next.privateKey), [FIELDS.nextPublicKey]: b64(next.publicKey) },
    });
    const staged = { ...keys, next };
    this.cache.set(keys.vector, staged);
    return staged;
  }

  /** The incoming key becomes the current one; the old one is forgotten. */
  async promote(keys: VectorKeys): Promise<VectorKeys> {
    const next = keys.next;
    if (!next) return keys;
    await this.client.patchSecret(this.namespace, keys.secretName, {
      metadata: { annotations: { [CREATED_AT]: iso(next.createdAt), [NEXT_CREATED_AT]: null } },
      data: {
        [FIELDS.privateKey]: b64(next.privateKey),
        [FIELDS.publicKey]: b64(next.publicKey),
        [FIELDS.nextPrivateKey]: null,
        [FIELDS.nextPublicKey]: null,
      },
    });
    const promoted: VectorKeys = { vector: keys.vector, uid: keys.uid, secretName: keys.secretName, current: next };
    this.cache.set(keys.vector, promoted);
    return promoted;
  }

  async remove(namespace: string, name: string): Promise<void> {
    await this.client.deleteSecret(this.namespace, vectorKeySecretName(namespace, name));
    this.cache.delete(`${namespace}/${name}`);
  }

  /** Keys known without asking the API (what this process read or wrote). */
  cached(vectorKey: string): VectorKeys | undefined {
    return this.cache.get(vectorKey);
  }

  /** Drops what this process remembers, so the next use reads the Secret again. */
  forget(vectorKey: string): void {
    this.cache.delete(vectorKey);
  }

  /**
   * Every vector key Secret (one list call), for the drift sweep. The cache is left alone: a list that began
   * before a rotation's write must not replace what that write stored.
   */
  async listAll(): Promise<Map<string, VectorKeys>> {
    const secrets = await this.client.listSecrets(this.namespace, VECTOR_LABELS.name);
    const out = new Map<string, VectorKeys>();
    for (const s of secrets) {
      const parsed = parse(s);
      if (parsed) out.set(parsed.vector, parsed);
    }
    return out;
  }
}
