/**
 * One connection per Machine, shared by every controller that works on it (the SSH layer multiplexes channels
 * over it). The Machine's Secret is resolved here; nodes/pool.ts replaces the connection when the spec or the
 * key changes and closes it when its Machine goes away. The private key is never logged.
 */
import type { Machine } from '../api/types.ts';
import type { NodeConnection } from '../nodes/connection.ts';
import { ConnectionPool, type ConnectionSpec } from '../nodes/pool.ts';
import { privateKeyFromSecret } from '../nodes/secret.ts';
import { parseDuration } from '../planning/duration.ts';
import { ZfsMachine } from '../zfs/machine.ts';
import { MachineSecretError } from './machine-errors.ts';
import type { KubeClient } from './runtime/kube.ts';

export interface MachineHandle {
  connection: NodeConnection;
  zfs: ZfsMachine;
}

export { MachineSecretError };

export class MachineConnections {
  private readonly pool = new ConnectionPool({ readyTimeoutMs: 20_000, connectAttempts: 2 });
  private readonly handles = new Map<string, MachineHandle>();

  constructor(
    /** Only Secrets are read: a repository (bdr plan --repo) can stand in for a cluster. */
    private readonly client: Pick<KubeClient, 'readSecret'>,
    /** Namespace of a privateKeySecretRef that names none (the schema's default). */
    private readonly defaultSecretNamespace = 'bdr-system',
  ) {}

  async get(machine: Machine): Promise<MachineHandle> {
    const name = machine.metadata.name;
    const timeout = parseDuration(machine.spec.connection.connectTimeout ?? '10s');
    const connection = this.pool.get(name, await this.connectionSpec(machine), timeout.ok ? { readyTimeoutMs: timeout.value } : {});
    const existing = this.handles.get(name);
    if (existing?.connection === connection) return existing;
    const handle = { connection, zfs: new ZfsMachine(connection) };
    this.handles.set(name, handle);
    return handle;
  }

  private async connectionSpec(machine: Machine): Promise<ConnectionSpec> {
    const conn = machine.spec.connection;
    if (conn.type === 'local') return { type: 'local' };
    const ref = conn.privateKeySecretRef;
    if (!ref) throw new MachineSecretError('spec.connection.privateKeySecretRef is not set');
    const namespace = ref.namespace ?? this.defaultSecretNamespace;
    const field = ref.key ?? 'ssh-privatekey';
    const data = await this.client.readSecret(namespace, ref.name);
    if (!data) throw new MachineSecretError(`Secret ${namespace}/${ref.name} does not exist; create it with the private key under ${JSON.stringify(field)}`);
    let privateKey: Buffer;
    try {
      privateKey = privateKeyFromSecret({ metadata: { name: ref.name, namespace }, data }, field);
    } catch (err) {
      throw new MachineSecretError((err as Error).message);
    }
    return { type: 'ssh', host: conn.host ?? '', port: conn.port, user: conn.user, hostKey: conn.hostKey ?? '', privateKey };
  }

  async drop(name: string): Promise<void> {
    this.handles.delete(name);
    await this.pool.release(name).catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    this.handles.clear();
    await this.pool.closeAll();
  }
}
