/**
 * One connection per Machine, shared by every controller that works on it (the SSH layer multiplexes channels
 * over it). The Machine's Secret is resolved here; nodes/pool.ts replaces the connection when the spec or the
 * key changes and closes it when its Machine goes away. The private key is never logged.
 *
 * Secrets are read from the operator's own namespace only. Machines are cluster-scoped, so anyone allowed to
 * create one could otherwise name any Secret in the cluster and have bdr use it (and show its parse errors);
 * RBAC may grant the operator more, this rule holds whatever RBAC says.
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
    /** The operator's namespace: the only one Secrets are read from, and that of a ref that names none. */
    private readonly secretNamespace = 'bdr-system',
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
    const namespace = ref.namespace ?? this.secretNamespace;
    const field = ref.key ?? 'ssh-privatekey';
    if (namespace !== this.secretNamespace) {
      throw new MachineSecretError(
        `spec.connection.privateKeySecretRef names Secret ${namespace}/${ref.name}, but bdr reads Secrets only from its own namespace ${this.secretNamespace}; move the Secret there and set privateKeySecretRef.namespace to ${this.secretNamespace} (or leave it out)`,
        'SecretNamespaceNotAllowed',
      );
    }
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
