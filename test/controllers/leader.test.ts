import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOperator, LEASE_NAME, type Operator } from '../../controllers/operator.ts';
import { KubeClient } from '../../controllers/runtime/kube.ts';
import { silentLogger } from '../../metrics/log.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

/**
 * A lease far longer than any wait below: a follower that takes over before it could have expired can only
 * have done so because the stopping leader released it. A long renew deadline keeps a stalled machine from
 * losing leadership mid-test.
 */
const LONG_LEASE = { leaseDurationMs: 120_000, renewDeadlineMs: 60_000, retryPeriodMs: 250 };
/** For the instance that must wait out an expired lease. */
const SHORT_LEASE = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 250 };

/** Reconciles counted from an instance's own metrics endpoint. */
async function reconciles(op: Operator): Promise<number> {
  const text = await (await fetch(`${op.metricsUrl}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^controller_runtime_reconcile_total\{[^}]*\} (\d+)/gm)) total += Number(m[1]);
  return total;
}

describe('leader election between two operator instances', () => {
  let tc: TestCluster;
  const instances: Operator[] = [];

  const start = async (identity: string, lease = LONG_LEASE) => {
    const op = await startOperator({
      kubeConfig: tc.kubeConfig,
      namespace: 'default',
      identity,
      leaderElection: lease,
      metrics: { port: 0 },
      probeIntervalMs: 200,
      log: silentLogger,
    });
    instances.push(op);
    await op.ready;
    return op;
  };

  beforeAll(async () => {
    tc = await startTestCluster();
    // A local Machine gives the leader something to reconcile on every probe.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'here' }, spec: { connection: { type: 'local' }, pools: ['nonexistent'] } });
  });

  afterAll(async () => {
    for (const op of instances) await op.stop();
    await tc?.stop();
  });

  it('lets only the leader reconcile, and hands over without waiting for the lease to expire when it stops', async () => {
    const a = await start('instance-a');
    const b = await start('instance-b');
    const leader = await eventually(() => (a.isLeader() ? a : b.isLeader() ? b : undefined), 'a leader');
    const follower = leader === a ? b : a;
    await eventually(async () => ((await reconciles(leader)) > 3 ? true : undefined), 'the leader to reconcile');
    expect(follower.isLeader()).toBe(false);
    expect(await reconciles(follower)).toBe(0);
    const text = await (await fetch(`${follower.metricsUrl}/metrics`)).text();
    expect(text).toContain(`leader_election_master_status{name="${LEASE_NAME}"} 0`);

    const lease = await new KubeClient(tc.kubeConfig).readLease('default', LEASE_NAME);
    expect(lease?.spec?.holderIdentity).toBe(leader === a ? 'instance-a' : 'instance-b');

    await leader.stop();
    // Released by the time stop() returns: no holder, or already the follower. The take-over below comes from
    // that release, long before the 120 s lease could have expired.
    const after = (await new KubeClient(tc.kubeConfig).readLease('default', LEASE_NAME))?.spec?.holderIdentity ?? '';
    expect(['', leader === a ? 'instance-b' : 'instance-a']).toContain(after);
    await eventually(() => (follower.isLeader() ? true : undefined), 'the follower to take over the released lease');
    await eventually(async () => ((await reconciles(follower)) > 0 ? true : undefined), 'the new leader to reconcile');
  });

  it('takes over from a leader that vanished without releasing the lease, after the lease expires', async () => {
    // A third instance holds the lease, then stops renewing without releasing it (as if killed).
    const client = new KubeClient(tc.kubeConfig);
    for (const op of instances) await op.stop();
    const released = await client.readLease('default', LEASE_NAME);
    const crashedAt = Date.now();
    await client.replaceLease('default', {
      ...released,
      spec: { holderIdentity: 'crashed', leaseDurationSeconds: 2, renewTime: new Date(), acquireTime: new Date(), leaseTransitions: 5 },
    });
    const c = await start('instance-c', SHORT_LEASE);
    await eventually(() => (c.isLeader() ? true : undefined), 'instance-c to take over');
    // Not before the crashed holder's lease ran out (a lower bound: a slow machine only waits longer).
    const waited = Date.now() - crashedAt;
    expect(waited).toBeGreaterThanOrEqual(2_000);
    const lease = await client.readLease('default', LEASE_NAME);
    expect(lease?.spec?.holderIdentity).toBe('instance-c');
    expect(lease?.spec?.leaseTransitions).toBe(6);
  });
});
