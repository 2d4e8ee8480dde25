/**
 * bdr_vector_stalled and bdr_vector_ready: read from the Vectors' conditions at scrape time, by the leader only.
 * The registry cases pin the mapping; the started operator shows the gauges following what the real Vector
 * controller writes (a Stalled vector, a waiting one, a suspended one that is Ready), and the standby silent.
 */
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Condition, Vector } from '../../api/types.ts';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { silentLogger } from '../../metrics/log.ts';
import { registerVectorConditionMetrics } from '../../metrics/vector-condition-metrics.ts';
import { kubectlOk, requireKubectl } from '../cluster/helpers.ts';
import { eventually, startTestCluster, type TestCluster } from '../controllers/cluster-fixture.ts';

const condition = (type: string, status: 'True' | 'False' | 'Unknown'): Condition => ({
  type,
  status,
  reason: 'Test',
  message: 'test',
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

const vector = (name: string, conditions?: Condition[], namespace?: string, extra: { suspend?: boolean; creationTimestamp?: string } = {}): Vector =>
  ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Vector',
    metadata: { name, ...(namespace ? { namespace } : {}), ...(extra.creationTimestamp ? { creationTimestamp: extra.creationTimestamp } : {}) },
    spec: {
      source: { datasetRef: { name: 'web' } },
      target: { storageTargetRef: { name: 'offsite' } },
      retentionPolicyRef: { name: 'p' },
      ...(extra.suspend !== undefined ? { suspend: extra.suspend } : {}),
    },
    ...(conditions ? { status: { conditions } } : {}),
  }) as Vector;

const scrape = async (vectors: Vector[]) => {
  const registry = new Registry();
  registerVectorConditionMetrics(registry, () => vectors);
  return registry.metrics();
};

describe('bdr_vector_stalled and bdr_vector_ready from the conditions', () => {
  it('say 1 only for a condition that is True', async () => {
    const text = await scrape([
      vector('ok', [condition('Ready', 'True')], 'prod'),
      vector('stuck', [condition('Ready', 'False'), condition('Stalled', 'True')], 'prod'),
      vector('unsure', [condition('Ready', 'Unknown'), condition('Stalled', 'Unknown')], 'prod'),
      vector('new', undefined, 'prod'),
    ]);
    expect(text).toContain('bdr_vector_ready{namespace="prod",name="ok"} 1');
    expect(text).toContain('bdr_vector_stalled{namespace="prod",name="ok"} 0');
    expect(text).toContain('bdr_vector_ready{namespace="prod",name="stuck"} 0');
    expect(text).toContain('bdr_vector_stalled{namespace="prod",name="stuck"} 1');
    expect(text).toContain('bdr_vector_ready{namespace="prod",name="unsure"} 0');
    expect(text).toContain('bdr_vector_stalled{namespace="prod",name="unsure"} 0');
    // Not reconciled yet: both series exist at 0, so the fleet's vectors are all listed from the first scrape.
    expect(text).toContain('bdr_vector_ready{namespace="prod",name="new"} 0');
    expect(text).toContain('bdr_vector_stalled{namespace="prod",name="new"} 0');
  });

  it('say suspended for spec.suspend or a Suspended condition (its machine is suspended), and give the creation time', async () => {
    const text = await scrape([
      vector('own', [condition('Ready', 'True')], 'prod', { suspend: true, creationTimestamp: '2026-03-10T12:00:00Z' }),
      vector('machine', [condition('Ready', 'True'), condition('Suspended', 'True')], 'prod'),
      vector('running', [condition('Ready', 'True'), condition('Suspended', 'False')], 'prod', { suspend: false }),
    ]);
    expect(text).toContain('bdr_vector_suspended{namespace="prod",name="own"} 1');
    expect(text).toContain('bdr_vector_suspended{namespace="prod",name="machine"} 1');
    expect(text).toContain('bdr_vector_suspended{namespace="prod",name="running"} 0');
    // 2026-03-10T12:00:00Z: 20522 days after the epoch, plus 12 h.
    expect(text).toContain(`bdr_vector_created_timestamp_seconds{namespace="prod",name="own"} ${20_522 * 86_400 + 12 * 3600}`);
    // No creation time (never the case for an object from the API server): no series rather than a zero.
    expect(text).not.toMatch(/^bdr_vector_created_timestamp_seconds\{namespace="prod",name="machine"\}/m);
  });

  it('give the key rotation interval: the spec\'s, else the default 720h; none for one that does not parse', async () => {
    const withRotation = (name: string, interval: string) => ({ ...vector(name, undefined, 'prod'), spec: { ...vector(name).spec, keyRotation: { interval } } }) as Vector;
    const text = await scrape([vector('plain', undefined, 'prod'), withRotation('weekly', '168h'), withRotation('daily', '1d'), withRotation('bad', 'soon')]);
    expect(text).toContain(`bdr_vector_key_rotation_interval_seconds{namespace="prod",name="plain"} ${30 * 86_400}`);
    expect(text).toContain(`bdr_vector_key_rotation_interval_seconds{namespace="prod",name="weekly"} ${7 * 86_400}`);
    expect(text).toContain('bdr_vector_key_rotation_interval_seconds{namespace="prod",name="daily"} 86400');
    expect(text).not.toMatch(/^bdr_vector_key_rotation_interval_seconds\{namespace="prod",name="bad"\}/m);
  });

  it('label a vector without namespace as default, and drop a deleted vector at the next scrape', async () => {
    const vectors = [vector('a', [condition('Stalled', 'True')]), vector('b', [condition('Ready', 'True')], 'prod')];
    const registry = new Registry();
    registerVectorConditionMetrics(registry, () => vectors);
    expect(await registry.metrics()).toContain('bdr_vector_stalled{namespace="default",name="a"} 1');
    vectors.splice(0, 1);
    const after = await registry.metrics();
    expect(after).not.toContain('name="a"');
    expect(after).toContain('bdr_vector_ready{namespace="prod",name="b"} 1');
  });
});

describe('against a started operator', () => {
  let tc: TestCluster;
  let leader: Operator;
  let standby: Operator;
  // Nothing here waits for a lease to expire: a long renew deadline keeps a stalled machine (a GC pause, a busy
  // CI host) from handing the lease to the standby mid-test.
  const election = { leaseDurationMs: 120_000, renewDeadlineMs: 60_000, retryPeriodMs: 200 };
  const scrapeOf = async (o: Operator) => (await fetch(`${o.metricsUrl}/metrics`)).text();
  const apiCondition = async (name: string, type: string) => {
    const v = JSON.parse(await kubectlOk(tc.cluster, ['get', '-n', 'default', `vector/${name}`, '-o', 'json'])) as Vector;
    return v.status?.conditions?.find((c) => c.type === type)?.status;
  };

  beforeAll(async () => {
    requireKubectl();
    tc = await startTestCluster();
    // A Source machine that nothing can reach: the vectors below never need it to answer.
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Machine',
      metadata: { name: 'src' },
      spec: {
        role: 'Source',
        connection: { type: 'ssh', host: '127.0.0.1', port: 1, privateKeySecretRef: { name: 'none' } },
        allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }],
      },
    });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'web', namespace: 'default' },
      spec: { machineRef: { name: 'src' }, name: 'tank/web', schedule: { interval: '1h' }, retentionPolicyRef: { name: 'none' } },
    });
    const spec = (extra: object) => ({ source: { datasetRef: { name: 'web' } }, retentionPolicyRef: { name: 'none' }, ...extra });
    // Targets a Source machine, which never receives replicas: Stalled (InvalidSpec), needs a human.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name: 'stuck', namespace: 'default' }, spec: spec({ target: { machineRef: { name: 'src' }, dataset: 'tank/r' } }) });
    // Its StorageTarget does not exist yet: not Ready, but waiting rather than Stalled.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name: 'waiting', namespace: 'default' }, spec: spec({ target: { storageTargetRef: { name: 'later' } } }) });
    // Suspended: Ready (reason Suspended) without touching any machine.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name: 'paused', namespace: 'default' }, spec: spec({ target: { storageTargetRef: { name: 'later' } }, suspend: true }) });
    leader = await startOperator({ kubeConfig: tc.kubeConfig, namespace: 'default', identity: 'first', leaderElection: election, metrics: { port: 0 }, log: silentLogger });
    await leader.ready;
    await eventually(() => (leader.isLeader() ? true : undefined), 'the first operator to lead');
    standby = await startOperator({ kubeConfig: tc.kubeConfig, namespace: 'default', identity: 'second', leaderElection: election, metrics: { port: 0 }, log: silentLogger });
    await standby.ready;
  }, 60_000);
  afterAll(async () => {
    await standby?.stop();
    await leader?.stop();
    await tc?.stop();
  });

  it('follow the conditions the Vector controller writes', async () => {
    const expected = [
      'bdr_vector_stalled{namespace="default",name="stuck"} 1',
      'bdr_vector_ready{namespace="default",name="stuck"} 0',
      'bdr_vector_stalled{namespace="default",name="waiting"} 0',
      'bdr_vector_ready{namespace="default",name="waiting"} 0',
      'bdr_vector_stalled{namespace="default",name="paused"} 0',
      'bdr_vector_ready{namespace="default",name="paused"} 1',
      'bdr_vector_suspended{namespace="default",name="paused"} 1',
      'bdr_vector_suspended{namespace="default",name="stuck"} 0',
    ];
    const text = await eventually(async () => {
      const t = await scrapeOf(leader);
      return expected.every((line) => t.split('\n').includes(line)) ? t : undefined;
    }, "the leader to report the vectors' conditions");
    expect(text).toBeTruthy();
    // What the API server holds agrees with what Prometheus is told.
    expect(await apiCondition('stuck', 'Stalled')).toBe('True');
    expect(await apiCondition('waiting', 'Stalled')).toBeUndefined();
    expect(await apiCondition('waiting', 'Ready')).toBe('False');
    expect(await apiCondition('paused', 'Ready')).toBe('True');
    // The creation time is the one the API server stamped.
    const created = JSON.parse(await kubectlOk(tc.cluster, ['get', '-n', 'default', 'vector/stuck', '-o', 'json'])) as Vector;
    expect(text).toContain(`bdr_vector_created_timestamp_seconds{namespace="default",name="stuck"} ${Date.parse(created.metadata.creationTimestamp!) / 1000}`);
  });

  it('are reported by the leader only', async () => {
    expect(standby.isLeader()).toBe(false);
    const text = await scrapeOf(standby);
    expect(text).toMatch(/^# TYPE bdr_vector_stalled gauge$/m);
    expect(text).not.toMatch(/^bdr_vector_(stalled|ready)\{/m);
  });
});
