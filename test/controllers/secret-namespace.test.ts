/**
 * The operator reads Secrets from its own namespace only: a Machine (cluster-scoped, so anyone who may create
 * one could name any Secret) that points elsewhere gets a condition saying so, and no read happens.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Machine } from '../../api/types.ts';
import { MachineConnections, MachineSecretError } from '../../controllers/machine-connections.ts';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { machineKind } from '../../api/kinds/index.ts';
import { silentLogger } from '../../metrics/log.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

const PEM = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

const secret = (namespace: string, name: string) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace },
  data: { 'ssh-privatekey': Buffer.from(PEM).toString('base64') },
});

const machine = (name: string, ref: { name: string; namespace?: string }): Machine =>
  ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name },
    // Port 1 on loopback refuses at once: what matters here is whether the Secret is read, not the login.
    spec: { connection: { type: 'ssh', host: '127.0.0.1', port: 1, user: 'bdr', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', privateKeySecretRef: ref }, pools: ['tank'] },
  }) as unknown as Machine;

const secretReads = (tc: TestCluster, namespace: string) => tc.requests.filter((r) => r.method === 'GET' && r.url.startsWith(`/api/v1/namespaces/${namespace}/secrets`));

describe('Secrets only from the operator namespace', () => {
  let tc: TestCluster;
  let operator: Operator;

  beforeAll(async () => {
    tc = await startTestCluster();
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'tenant-a' } });
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
    tc.apply(secret('tenant-a', 'their-key'));
    tc.apply(secret('bdr-system', 'our-key'));
    tc.apply(machine('foreign', { name: 'their-key', namespace: 'tenant-a' }));
    tc.apply(machine('own', { name: 'our-key' }));
    tc.apply(machine('missing', { name: 'no-such-key' }));
    operator = await startOperator({ kubeConfig: tc.kubeConfig, leaderElection: false, metrics: false, log: silentLogger });
    await operator.ready;
  }, 60_000);

  afterAll(async () => {
    await operator?.stop();
    await tc?.stop();
  });

  it('gives a Machine naming a Secret in another namespace Ready=False with the rule, and never reads it', async () => {
    const client = new KubeClient(tc.kubeConfig);
    const ready = await eventually(async () => {
      const m = await client.get<Machine>(resourceOf(machineKind), 'foreign');
      return m?.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'False');
    }, 'Machine/foreign Ready=False');
    expect(ready.reason).toBe('SecretNamespaceNotAllowed');
    expect(ready.message).toContain('Secret tenant-a/their-key');
    expect(ready.message).toContain('bdr reads Secrets only from its own namespace bdr-system');
    expect(ready.message).not.toContain(PEM.split('\n')[1]!);
    // The Machine in the rule's namespace was read: the operator does reach Secrets, just not those.
    await eventually(() => (secretReads(tc, 'bdr-system').some((r) => r.url.startsWith('/api/v1/namespaces/bdr-system/secrets/our-key')) ? true : undefined), 'the read of bdr-system/our-key');
    expect(secretReads(tc, 'tenant-a')).toEqual([]);
    // Only a change of the Machine can lift it, so it is Stalled (a human must act), not retried.
    const m = await client.get<Machine>(resourceOf(machineKind), 'foreign');
    expect(m?.status?.conditions?.find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'SecretNamespaceNotAllowed' });
  });

  it('keeps SecretNotFound for a Secret missing from the operator namespace', async () => {
    const client = new KubeClient(tc.kubeConfig);
    const ready = await eventually(async () => {
      const m = await client.get<Machine>(resourceOf(machineKind), 'missing');
      return m?.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'False');
    }, 'Machine/missing Ready=False');
    expect(ready.reason).toBe('SecretNotFound');
    expect(ready.message).toContain('Secret bdr-system/no-such-key does not exist');
  });

  it('refuses before reading, for whatever namespace the operator runs in', async () => {
    const reads: string[] = [];
    const reader = { readSecret: (ns: string, name: string) => (reads.push(`${ns}/${name}`), Promise.resolve({ 'ssh-privatekey': Buffer.from(PEM).toString('base64') })) };
    const connections = new MachineConnections(reader, 'ops');
    try {
      for (const ns of ['bdr-system', 'tenant-a', 'kube-system']) {
        await expect(connections.get(machine('m', { name: 'k', namespace: ns }))).rejects.toThrow(MachineSecretError);
        await expect(connections.get(machine('m', { name: 'k', namespace: ns }))).rejects.toMatchObject({ reason: 'SecretNamespaceNotAllowed' });
      }
      await expect(connections.get(machine('m', { name: 'k', namespace: 'tenant-a' }))).rejects.toThrow(/Secret tenant-a\/k, but bdr reads Secrets only from its own namespace ops/);
      expect(reads).toEqual([]);
      await connections.get(machine('m', { name: 'k', namespace: 'ops' }));
      await connections.get(machine('m2', { name: 'k2' }));
      expect(reads).toEqual(['ops/k', 'ops/k2']);
    } finally {
      await connections.closeAll();
    }
  });
});
