import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageTargetKind, vectorKind } from '../../api/kinds/index.ts';
import type { StorageTarget, Vector } from '../../api/types.ts';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { silentLogger } from '../../metrics/log.ts';
import { TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

/** The Vector controller inside the operator: watches retry a vector that no machine could take, and the gauge. */
describe('the operator with Vectors', () => {
  const bed = new TestBed();
  let a: TestMachine;
  let b: TestMachine;
  let sourcePool: TestPool;
  let replicaPool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let operator: Operator;
  const getVector = () => client.get<Vector>(resourceOf(vectorKind), 'v', 'default');
  const condition = (v: Vector | undefined, type: string) => v?.status?.conditions?.find((c) => c.type === type);

  beforeAll(async () => {
    [a, b, sourcePool, replicaPool] = await Promise.all([bed.machine('a'), bed.machine('b'), bed.pool(), bed.pool()]);
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
    for (const [m, role, pool] of [[a, 'Source', sourcePool], [b, 'Storage', replicaPool]] as const) {
      tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
      tc.apply({
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Machine',
        metadata: { name: m.name },
        spec: {
          role,
          pools: [pool.name],
          connection: { ...m.machine.spec.connection, privateKeySecretRef: { name: m.secret.metadata.name } },
          paths: { authorizedKeys: m.sshd.authorizedKeysPath, guard: join(m.sshd.dir, 'zfs-guard'), vectorKeys: join(m.sshd.dir, 'vectors') },
          allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }],
        },
      });
    }
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: 'default' }, spec: { keepLast: 1 } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'src', namespace: 'default' },
      spec: { machineRef: { name: 'a' }, name: `${sourcePool.name}/data`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' }, managementPolicy: 'Create' },
    });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'StorageTarget',
      metadata: { name: 'offsite' },
      spec: { machines: [{ name: 'b' }], parentDataset: `${replicaPool.name}/replicas`, accessMode: 'ReadOnly' },
    });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'v', namespace: 'default' },
      spec: { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' } } },
    });
    operator = await startOperator({ kubeConfig: tc.kubeConfig, namespace: 'bdr-system', leaderElection: false, metrics: { port: 0 }, probeIntervalMs: 2_000, log: silentLogger });
    await operator.ready;
  }, 300_000);

  afterAll(async () => {
    await operator?.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('reports NoStorageAvailable with each refusal, pairs once the StorageTarget changes, and exports the key age', async () => {
    const refused = await eventually(async () => {
      const v = await getVector();
      return condition(v, 'Paired')?.reason === 'NoStorageAvailable' ? v : undefined;
    }, 'NoStorageAvailable', 60_000);
    expect(condition(refused, 'Paired')?.message).toMatch(/b: .*StorageTarget is ReadOnly/);
    expect(await readFile(b.sshd.authorizedKeysPath, 'utf8')).not.toContain('bdr:vector=');

    const st = await client.get<StorageTarget>(resourceOf(storageTargetKind), 'offsite');
    await client.jsonPatch(resourceOf(storageTargetKind), st ?? { metadata: { name: 'offsite' } }, [{ op: 'replace', path: '/spec/accessMode', value: 'ReadWrite' }]);
    const paired = await eventually(async () => {
      const v = await getVector();
      return condition(v, 'Ready')?.status === 'True' ? v : undefined;
    }, 'the vector to pair once the target takes vectors', 60_000);
    expect(paired.status?.pairing).toMatchObject({ machine: 'b', dataset: `${replicaPool.name}/replicas/default/v` });
    expect(await readFile(b.sshd.authorizedKeysPath, 'utf8')).toContain('bdr:vector=default/v');

    const metrics = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
    const line = metrics.split('\n').find((l) => l.startsWith('bdr_vector_key_age_seconds{namespace="default",name="v"}'));
    expect(line).toBeDefined();
    expect(Number(line?.split(' ').at(-1))).toBeGreaterThanOrEqual(0);
  }, 120_000);
});
