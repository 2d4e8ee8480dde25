import { appendFile } from 'node:fs/promises';
import { SshConnection, type SshOptions } from '../../nodes/ssh.ts';
import { generateKeyPair, type KeyPair } from './keys.ts';
import { startSshd, type TestSshd, type TestSshdOptions } from './sshd.ts';

/** The Machine resource as a plain object (apiVersion bdr.dev/v1alpha1), independent of api/ types. */
export interface MachineResource {
  apiVersion: 'bdr.dev/v1alpha1';
  kind: 'Machine';
  metadata: { name: string; namespace: string };
  spec: {
    connection: {
      type: 'ssh';
      host: string;
      port: number;
      user: string;
      hostKey: string;
      privateKeySecretRef: { name: string; namespace: string; key: string };
    };
  };
}

export interface SecretResource {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string };
  type: 'kubernetes.io/ssh-auth';
  data: { 'ssh-privatekey': string };
}

export interface TestMachine {
  readonly name: string;
  readonly namespace: string;
  readonly sshd: TestSshd;
  /** The operator's key for this machine, authorized without restrictions. */
  readonly operatorKey: KeyPair;
  /** The Machine resource that describes how to reach this machine. */
  readonly machine: MachineResource;
  /** The Secret its `privateKeySecretRef` points at. */
  readonly secret: SecretResource;
  /** Connection target in the plain form nodes/ takes. */
  readonly target: { host: string; port: number; user: string; hostKey: string; privateKey: string };
  /** Opens a new (lazy) SSH connection to the machine as the operator. */
  connect(options?: SshOptions): SshConnection;
  stop(): Promise<void>;
}

export interface TestMachineOptions extends TestSshdOptions {
  name?: string;
  namespace?: string;
}

/** Starts an sshd "machine" and returns it with its Machine resource, Secret and an operator key. */
export async function startTestMachine(options: TestMachineOptions = {}): Promise<TestMachine> {
  const sshd = await startSshd(options);
  const name = options.name ?? 'test-machine';
  // The operator reads Secrets only from its own namespace.
  const namespace = options.namespace ?? 'bdr-system';
  const operatorKey = await generateKeyPair(sshd.dir, 'operator_ed25519', `bdr-operator@${name}`);
  await appendFile(sshd.authorizedKeysPath, `${operatorKey.publicKey}\n`);
  const secretName = `${name}-ssh`;
  const machine: MachineResource = {
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name, namespace },
    spec: {
      connection: {
        type: 'ssh',
        host: sshd.host,
        port: sshd.port,
        user: 'root',
        hostKey: sshd.hostKey,
        privateKeySecretRef: { name: secretName, namespace, key: 'ssh-privatekey' },
      },
    },
  };
  const secret: SecretResource = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName, namespace },
    type: 'kubernetes.io/ssh-auth',
    data: { 'ssh-privatekey': Buffer.from(operatorKey.privateKey).toString('base64') },
  };
  const target = { host: sshd.host, port: sshd.port, user: 'root', hostKey: sshd.hostKey, privateKey: operatorKey.privateKey };
  const connections: SshConnection[] = [];
  return {
    name,
    namespace,
    sshd,
    operatorKey,
    machine,
    secret,
    target,
    connect: (sshOptions) => {
      const connection = new SshConnection(target, sshOptions);
      connections.push(connection);
      return connection;
    },
    stop: async () => {
      await Promise.all(connections.map((c) => c.close()));
      await sshd.stop();
    },
  };
}
