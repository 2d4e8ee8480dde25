/**
 * One connection per Machine, shared by every controller that works on it (the SSH layer multiplexes channels
 * over it). A connection is replaced when what it was made from changes (spec.connection or the key in the
 * Secret), and closed when its Machine goes away. The private key is compared by hash, never kept in a log.
 */
import { createHash } from 'node:crypto';
import type { Machine } from '../api/types.ts';
import type { NodeConnection } from '../nodes/connection.ts';
import { LocalConnection } from '../nodes/local.ts';
import { privateKeyFromSecret } from '../nodes/secret.ts';
import { SshConnection } from '../nodes/ssh.ts';
import { ZfsMachine } from '../zfs/machine.ts';
import type { KubeClient } from './runtime/kube.ts';

export interface MachineHandle {
  connection: NodeConnection;
  zfs: ZfsMachine;
  /** Identifies what the connection was built from (spec and key hash). */
  fingerprint: string;
}

/** The Secret a Machine names is missing or unusable: a user must create or fix it. */
export class MachineSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MachineSecretError';
  }
}

export class MachineConnections {
  private readonly handles = new Map<string, MachineHandle>();

  constructor(
    private readonly client: KubeClient,
    /** Namespace of a privateKeySecretRef that names none (the schema's default). */
    private readonly defaultSecretNamespace = 'bdr-system',
  ) {}

  async get(machine: Machine): Promise<MachineHandle> {
    const name = machine.metadata.name;
    const conn = machine.spec.connection;
    let privateKey: Buffer | undefined;
    if (conn.type === 'ssh') {
      const ref = conn.privateKeySecretRef;
      if (!ref) throw new MachineSecretError('spec.connection.privateKeySecretRef is not set');
      const namespace = ref.namespace ?? this.defaultSecretNamespace;
      const data = await this.client.readSecret(namespace, ref.name);
      if (!data) throw new MachineSecretError(`Secret ${namespace}/${ref.name} does not exist; create it with the private key under ${JSON.stringify(ref.key ?? 'ssh-privatekey')}`);
      try {
        privateKey = privateKeyFromSecret({ metadata: { name: ref.name, namespace }, data }, ref.key ?? 'ssh-privatekey');
      } catch (err) {
        throw new MachineSecretError((err as Error).message);
      }
    }
    const fingerprint = createHash('sha256')
      .update(JSON.stringify(conn))
      .update(privateKey ?? Buffer.alloc(0))
      .digest('hex');
    const existing = this.handles.get(name);
    if (existing && existing.fingerprint === fingerprint) return existing;
    if (existing) await existing.connection.close().catch(() => undefined);

    const connection: NodeConnection =
      conn.type === 'local'
        ? new LocalConnection()
        : new SshConnection(
            { host: conn.host ?? '', port: conn.port, user: conn.user, hostKey: conn.hostKey ?? '', privateKey: privateKey ?? '' },
            { readyTimeoutMs: 20_000, connectAttempts: 2 },
          );
    const handle = { connection, zfs: new ZfsMachine(connection), fingerprint };
    this.handles.set(name, handle);
    return handle;
  }

  async drop(name: string): Promise<void> {
    const handle = this.handles.get(name);
    this.handles.delete(name);
    await handle?.connection.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    const all = [...this.handles.keys()];
    await Promise.all(all.map((n) => this.drop(n)));
  }
}
