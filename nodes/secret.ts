/**
 * The private key of an SSH Machine lives in a Kubernetes Secret (`data` is base64). These helpers take it
 * out without ever putting key material into an error message.
 */
export const DEFAULT_PRIVATE_KEY_FIELD = 'ssh-privatekey';

export class SecretKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretKeyError';
  }
}

export interface SecretLike {
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string | undefined>;
  stringData?: Record<string, string | undefined>;
}

/** Returns the private key bytes from `data[field]` (base64) or `stringData[field]` (plain). */
export function privateKeyFromSecret(secret: SecretLike, field: string = DEFAULT_PRIVATE_KEY_FIELD): Buffer {
  const where = `Secret ${secret.metadata?.namespace ?? '?'}/${secret.metadata?.name ?? '?'} key ${JSON.stringify(field)}`;
  const b64 = secret.data?.[field];
  let key: Buffer | undefined;
  if (b64 !== undefined) {
    if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(b64)) throw new SecretKeyError(`${where} is not base64`);
    key = Buffer.from(b64, 'base64');
  } else if (secret.stringData?.[field] !== undefined) {
    key = Buffer.from(secret.stringData[field] ?? '', 'utf8');
  }
  if (key === undefined || key.length === 0) throw new SecretKeyError(`${where} is missing or empty`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) {
    throw new SecretKeyError(`${where} does not hold a PEM or OpenSSH private key`);
  }
  return key;
}
