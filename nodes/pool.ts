import { createHash } from 'node:crypto';
import type { NodeConnection } from './connection.ts';
import { LocalConnection } from './local.ts';
import { SshConnection, type SshOptions } from './ssh.ts';

/** A Machine's connection block with the Secret already resolved (see `privateKeyFromSecret`). */
export type ConnectionSpec =
  | { type: 'local' }
  | { type: 'ssh'; host: string; port?: number; user?: string; hostKey: string; privateKey: string | Buffer };

export function createConnection(spec: ConnectionSpec, options: SshOptions = {}): NodeConnection {
  return spec.type === 'local'
    ? new LocalConnection()
    : new SshConnection({ host: spec.host, port: spec.port ?? 22, user: spec.user ?? 'root', hostKey: spec.hostKey, privateKey: spec.privateKey }, options);
}

/** Identity of a spec; the private key only enters as a hash, so the fingerprint can be kept and logged. */
function specFingerprint(spec: ConnectionSpec): string {
  if (spec.type === 'local') return 'local';
  const key = createHash('sha256').update(spec.privateKey).digest('hex');
  return JSON.stringify([spec.host, spec.port ?? 22, spec.user ?? 'root', spec.hostKey.trim(), key]);
}

/**
 * One connection per machine for the whole operator: controllers ask for a machine's connection by key
 * (e.g. "namespace/name") on every reconcile and get the same one back while the Machine's spec and
 * Secret are unchanged. A changed host, key or Secret closes the old connection and opens a new one.
 */
export class ConnectionPool {
  private readonly entries = new Map<string, { fingerprint: string; connection: NodeConnection }>();

  constructor(private readonly sshOptions: SshOptions = {}) {}

  /** `options` override the pool's SSH options for this machine (e.g. its Machine's connectTimeout). */
  get(key: string, spec: ConnectionSpec, options: SshOptions = {}): NodeConnection {
    const sshOptions = { ...this.sshOptions, ...options };
    const fingerprint = `${specFingerprint(spec)}${spec.type === 'ssh' ? JSON.stringify(sshOptions) : ''}`;
    const existing = this.entries.get(key);
    if (existing?.fingerprint === fingerprint) return existing.connection;
    if (existing) void existing.connection.close().catch(() => undefined);
    const connection = createConnection(spec, sshOptions);
    this.entries.set(key, { fingerprint, connection });
    return connection;
  }

  /** Forgets a machine (deleted Machine) and closes its connection. */
  async release(key: string): Promise<void> {
    const existing = this.entries.get(key);
    this.entries.delete(key);
    await existing?.connection.close();
  }

  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.connection.close().catch(() => undefined)));
  }

  get size(): number {
    return this.entries.size;
  }
}
