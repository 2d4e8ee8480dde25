/**
 * Capacity-driven pairing through the real StorageTarget and Vector reconcilers, with real key authorization on
 * real sshd: machines A (primary), B and C (one StorageTarget, MostFree). A new vector pairs with the machine
 * with most free space; once B passes criticalPercent the next vector pairs with C, and the first stays on B.
 *
 * Simulated capacity: the pool figures of B and C are written into their Machines' status (what the Machine
 * controller's probe writes), and no Machine controller runs here. Every machine of the test bed is an sshd on
 * this host talking to the one zfs-fuse daemon, so a real probe of B and of C reports the same pool with the
 * same figures; the pairing input is keyed by the pool of parentDataset, one name for all machines, so neither
 * spec.pools nor distinct pools can separate them. A real separation would be a second zfs-fuse daemon (its
 * socket is /var/run/zfs/zfs_socket, its cache /etc/zfs) in a private mount namespace with C's sshd started
 * inside it; the test bed does not provide that, and wrapping C's commands (sshd ForceCommand) would override
 * the vector key's forced command, the very thing under test. Everything downstream of the figures is real: the
 * StorageTarget controller's report and CapacityOK, the pairing ledger and decision, the guard, the
 * authorized_keys entries and the OpenSSH client and server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageTargetKind } from '../../api/kinds/index.ts';
import type { StorageTarget } from '../../api/types.ts';
import { resourceOf } from '../../controllers/runtime/kube.ts';
import {
  applyVector,
  condition,
  ctx,
  eventsOf,
  GiB,
  inCache,
  keyFiles,
  reconcileUntil,
  setPool,
  sshAs,
  startVectorBed,
  vectorLines,
  type VectorBed,
} from './vector-bed.ts';

describe('MostFree pairing follows capacity; a pairing is sticky', () => {
  let t: VectorBed;
  const replica = (name: string) => `${t.replicaPool.name}/replicas/default/${name}`;
  const reconcileTarget = async () => {
    await t.targetReconciler.reconcile('offsite', ctx('offsite'));
    return (await t.client.get<StorageTarget>(resourceOf(storageTargetKind), 'offsite')) as StorageTarget;
  };

  beforeAll(async () => {
    t = await startVectorBed();
    const pool = t.replicaPool.name;
    await setPool(t, 'a', pool, 10 * GiB, 1 * GiB);
    // B: a large pool, mostly free; C: a small one. MostFree picks B.
    await setPool(t, 'b', pool, 200 * GiB, 40 * GiB);
    await setPool(t, 'c', pool, 10 * GiB, 6 * GiB);
    const applied = t.tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'StorageTarget',
      metadata: { name: 'offsite' },
      spec: { machines: [{ name: 'b' }, { name: 'c' }], parentDataset: `${pool}/replicas`, pairing: { strategy: 'MostFree' }, capacity: { warningPercent: 80, criticalPercent: 90 } },
    });
    await inCache(t.targets, 'offsite', applied);
  }, 300_000);

  afterAll(async () => {
    await t?.stop();
  });

  it('pairs the first vector with B, the machine with most free space, and authorizes its key there', async () => {
    const st = await reconcileTarget();
    expect(st.status?.machines).toEqual([
      { name: 'b', sizeBytes: 200 * GiB, usedBytes: 40 * GiB, freeBytes: 160 * GiB, vectorCount: 0 },
      { name: 'c', sizeBytes: 10 * GiB, usedBytes: 6 * GiB, freeBytes: 4 * GiB, vectorCount: 0 },
    ]);
    await applyVector(t, 'v1', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' } } });
    const v1 = await reconcileUntil(t, 'v1', (x) => condition(x, 'Ready')?.status === 'True', 'v1 Ready');
    expect(v1.status?.pairing?.machine).toBe('b');
    expect((await eventsOf(t, 'v1', 'Paired'))[0]?.message).toMatch(/paired with b.*MostFree/);
    const files = keyFiles(t, 'v1');
    expect((await sshAs(t.b, files.id, files.knownHosts, `zfs list -H -o name ${replica('v1')}`)).stdout).toBe(`${replica('v1')}\n`);
    expect(await vectorLines(t.c, 'default/v1')).toEqual([]);
  }, 120_000);

  it('once B passes criticalPercent the next vector pairs with C, though B still has more free bytes; v1 stays on B', async () => {
    // B at 91% allocated of 200 GiB: 18 GiB free, still more than C's 4 GiB (MostFree alone would pick B,
    // 18/2 = 9 > 4/1), but at or above criticalPercent 90.
    await setPool(t, 'b', t.replicaPool.name, 200 * GiB, 182 * GiB);
    const st = await reconcileTarget();
    expect(condition(st, 'CapacityOK')).toMatchObject({ status: 'False', reason: 'AboveWarning' });
    expect(condition(st, 'CapacityOK')?.message).toMatch(/b at 91\.0% allocated/);
    expect(st.status?.machines?.find((m) => m.name === 'b')).toMatchObject({ freeBytes: 18 * GiB, vectorCount: 1 });

    await applyVector(t, 'v2', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' } } });
    const v2 = await reconcileUntil(t, 'v2', (x) => condition(x, 'Ready')?.status === 'True', 'v2 Ready');
    expect(v2.status?.pairing?.machine).toBe('c');
    expect(await vectorLines(t.b, 'default/v2')).toEqual([]);
    expect(await vectorLines(t.c, 'default/v2')).toHaveLength(1);
    const files2 = keyFiles(t, 'v2');
    expect((await sshAs(t.c, files2.id, files2.knownHosts, `zfs list -H -o name ${replica('v2')}`)).stdout).toBe(`${replica('v2')}\n`);

    // v1 is reconciled again with B above critical: it keeps B (sticky), no re-pairing, its key still works there.
    const fingerprint = t.vectors.get('default/v1')?.status?.pairing?.keyFingerprint;
    const v1 = await reconcileUntil(t, 'v1', () => true, 'v1 reconciled');
    expect(v1.status?.pairing).toMatchObject({ machine: 'b', keyFingerprint: fingerprint });
    expect(condition(v1, 'Ready')?.status).toBe('True');
    expect(await eventsOf(t, 'v1', 'Repaired')).toEqual([]);
    expect(await vectorLines(t.b, 'default/v1')).toHaveLength(1);
    expect(await vectorLines(t.c, 'default/v1')).toEqual([]);
    const files1 = keyFiles(t, 'v1');
    expect((await sshAs(t.b, files1.id, files1.knownHosts, `zfs list -H -o name ${replica('v1')}`)).stdout).toBe(`${replica('v1')}\n`);

    // The counts the StorageTarget reports now: one vector on each.
    const after = await reconcileTarget();
    expect(after.status?.machines?.map((m) => [m.name, m.vectorCount])).toEqual([['b', 1], ['c', 1]]);
  }, 120_000);

  it('with C past criticalPercent too, a third vector is refused with each reason named, and nothing is authorized', async () => {
    await setPool(t, 'c', t.replicaPool.name, 10 * GiB, 9.5 * GiB);
    await applyVector(t, 'v3', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' } } });
    const v3 = await reconcileUntil(t, 'v3', (x) => condition(x, 'Paired')?.reason === 'NoStorageAvailable', 'v3 refused');
    expect(condition(v3, 'Paired')?.message).toMatch(/b: .*91\.0% allocated, at or above criticalPercent 90%/);
    expect(condition(v3, 'Paired')?.message).toMatch(/c: .*95\.0% allocated, at or above criticalPercent 90%/);
    expect(await vectorLines(t.b, 'default/v3')).toEqual([]);
    expect(await vectorLines(t.c, 'default/v3')).toEqual([]);
  }, 120_000);
});
