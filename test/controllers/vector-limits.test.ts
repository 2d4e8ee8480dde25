/**
 * What bounds a vector key beyond the guard, on zfs-fuse and real sshd: the quota of its replica dataset
 * (StorageTarget spec.replicaQuota, Vector spec.target.quota) and the from= restriction of its
 * authorized_keys entry (the primary Machine's spec.outboundAddresses). That a receive through the vector
 * key stops at the quota with DestinationFull is shown in test/nodes/guard.test.ts ("stops a receive at the
 * quota of the vector dataset…").
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Machine, StorageTarget, Vector } from '../../api/types.ts';
import { runOk } from '../testbed/index.ts';
import {
  applyVector,
  condition,
  GiB,
  guardOf,
  inCache,
  keyFiles,
  machineObject,
  reconcileUntil,
  setPool,
  sshAs,
  startVectorBed,
  vectorLines,
  type VectorBed,
} from './vector-bed.ts';

const MiB = 2 ** 20;

describe('Vector key limits: replica quota and from=', () => {
  let t: VectorBed;
  const replica = (name: string) => `${t.replicaPool.name}/replicas/default/${name}`;
  /** The quota of a dataset as ZFS reports it, exact bytes; 0 is "none". */
  const quotaOf = async (dataset: string) => Number((await runOk(['zfs', 'get', '-H', '-p', '-o', 'value', 'quota', dataset])).trim());
  const applyTarget = async (spec: Partial<StorageTarget['spec']>) => {
    const applied = t.tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'StorageTarget',
      metadata: { name: 'offsite' },
      spec: { machines: [{ name: 'b' }], parentDataset: `${t.replicaPool.name}/replicas`, ...spec },
    });
    await inCache(t.targets, 'offsite', applied);
  };

  beforeAll(async () => {
    t = await startVectorBed();
    for (const m of ['a', 'b', 'c']) await setPool(t, m, t.replicaPool.name, 10 * GiB, 2 * GiB);
  }, 300_000);

  afterAll(async () => {
    await t?.stop();
  });

  it('sets the StorageTarget replicaQuota on the replica, a Vector may ask for less but not more or none, and removing both removes it', async () => {
    await applyTarget({ replicaQuota: '64M' });
    const spec = { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' } } };
    await applyVector(t, 'q', spec);
    let v = await reconcileUntil(t, 'q', (x) => condition(x, 'Ready')?.status === 'True', 'q Ready');
    expect(v.status?.pairing?.machine).toBe('b');
    expect(await quotaOf(replica('q'))).toBe(64 * 1024 * 1024);
    expect(v.status?.pairing?.quotaBytes).toBe(67_108_864);
    // The parent datasets above the vector's own are left without a quota: the limit is per vector.
    expect(await quotaOf(`${t.replicaPool.name}/replicas/default`)).toBe(0);

    // A Vector may ask for less than the target's ceiling…
    await applyVector(t, 'q', { ...spec, target: { ...spec.target, quota: '32M' } });
    v = await reconcileUntil(t, 'q', (x) => x.status?.pairing?.quotaBytes === 32 * MiB && x.status.observedGeneration === x.metadata.generation, 'the lower quota');
    expect(await quotaOf(replica('q'))).toBe(33_554_432);

    // …never more, nor none: refused, and the quota on the machine stays as it was.
    for (const quota of ['1G', 'none']) {
      await applyVector(t, 'q', { ...spec, target: { ...spec.target, quota } });
      v = await reconcileUntil(t, 'q', (x) => x.status?.observedGeneration === x.metadata.generation && condition(x, 'Ready')?.reason === 'QuotaAboveCeiling', `quota ${quota} refused`);
      expect(condition(v, 'Ready')?.message).toContain("set by StorageTarget offsite's spec.replicaQuota");
      expect(await quotaOf(replica('q'))).toBe(33_554_432);
    }

    // Override removed: the target's figure again.
    await applyVector(t, 'q', spec);
    v = await reconcileUntil(t, 'q', (x) => x.status?.pairing?.quotaBytes === 64 * MiB, "back to the target's quota");
    expect(await quotaOf(replica('q'))).toBe(67_108_864);

    // The target's figure changes: the Vector's spec (and generation) did not, its quota follows anyway.
    const generation = v.metadata.generation;
    await applyTarget({ replicaQuota: '2G' });
    v = await reconcileUntil(t, 'q', (x) => x.status?.pairing?.quotaBytes === 2 * 1_073_741_824, 'the new target quota');
    expect(v.metadata.generation).toBe(generation);
    expect(await quotaOf(replica('q'))).toBe(2_147_483_648);

    // Neither sets one: the quota is removed, and status says so.
    await applyTarget({});
    v = await reconcileUntil(t, 'q', (x) => x.status?.pairing !== undefined && x.status.pairing.quotaBytes === undefined, 'no quota');
    expect(await quotaOf(replica('q'))).toBe(0);
    expect(condition(v, 'Ready')?.status).toBe('True');
  }, 180_000);

  it('a quota ZFS refuses (below what the replica holds) is reported on the Vector, and the key stays authorized', async () => {
    // 1K is far below what the replica dataset itself uses: ZFS refuses it.
    await applyVector(t, 'q', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' }, quota: '1K' } });
    const v = await reconcileUntil(t, 'q', (x) => condition(x, 'KeyAuthorized')?.status === 'False', 'the refusal reported');
    expect(condition(v, 'KeyAuthorized')?.message).toMatch(new RegExp(`setting the quota of ${replica('q')} on b`));
    expect(await vectorLines(t.b, 'default/q')).toHaveLength(1);
    await applyVector(t, 'q', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' } } });
    await reconcileUntil(t, 'q', (x) => condition(x, 'Ready')?.status === 'True', 'q Ready again');
  }, 120_000);

  it("authorizes a primary's keys with from= its outboundAddresses: refused from elsewhere, accepted from there; the sweep agrees", async () => {
    const spec = { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: `${t.replicaPool.name}/direct/f` } };
    await inCache(t.machines, 'a', t.tc.apply(machineObject(t.a, 'Source', { outboundAddresses: ['10.9.9.9'] })));
    await applyVector(t, 'f', spec);
    let v: Vector = await reconcileUntil(t, 'f', (x) => condition(x, 'Ready')?.status === 'True', 'f Ready');
    const [line] = await vectorLines(t.b, 'default/f');
    expect(line).toMatch(new RegExp(`^restrict,command="${guardOf(t.b)} ${t.replicaPool.name}/direct/f bdr:vector:default:f data",from="10\\.9\\.9\\.9" ssh-ed25519 \\S+ bdr:vector=default/f$`));

    // The test's ssh client connects from 127.0.0.1, which is not 10.9.9.9.
    const files = keyFiles(t, 'f');
    const logBefore = (await readFile(t.b.sshd.logPath, 'utf8')).length;
    const refused = await sshAs(t.b, files.id, files.knownHosts, `zfs list -H -o name ${t.replicaPool.name}/direct/f`);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/Permission denied \(publickey\)/);
    const log = (await readFile(t.b.sshd.logPath, 'utf8')).slice(logBefore);
    expect(log).toMatch(/Authentication tried for root with correct key but not from a permitted host .*required=10\.9\.9\.9/);

    // The sweep expects the same line: nothing to restore for f (q, also from a, gets its from= here).
    expect((await t.sweep.sweep(t.machines.get('b') as Machine)).restoredEntries).not.toContain('bdr:vector=default/f');
    expect(await vectorLines(t.b, 'default/f')).toEqual([line]);

    // The primary's address changes: the entry follows (the Vector's own spec did not change).
    await inCache(t.machines, 'a', t.tc.apply(machineObject(t.a, 'Source', { outboundAddresses: ['127.0.0.1'] })));
    v = await reconcileUntil(t, 'f', () => true, 'a reconcile');
    expect(await vectorLines(t.b, 'default/f')).toEqual([(line ?? '').replace('from="10.9.9.9"', 'from="127.0.0.1"')]);
    const accepted = await sshAs(t.b, files.id, files.knownHosts, `zfs list -H -o name ${t.replicaPool.name}/direct/f`);
    expect(accepted.stderr).toBe('');
    expect(accepted.stdout).toBe(`${t.replicaPool.name}/direct/f\n`);
    expect(condition(v, 'Ready')?.status).toBe('True');

    // Someone drops the from= by hand: the sweep puts the restricted line back.
    const restricted = (await vectorLines(t.b, 'default/f'))[0] ?? '';
    const content = await readFile(t.b.sshd.authorizedKeysPath, 'utf8');
    await writeFile(t.b.sshd.authorizedKeysPath, content.replace(restricted, restricted.replace(',from="127.0.0.1"', '')));
    expect((await t.sweep.sweep(t.machines.get('b') as Machine)).restoredEntries).toContain('bdr:vector=default/f');
    expect(await vectorLines(t.b, 'default/f')).toEqual([restricted]);

    // Without outboundAddresses, from= is the address A reaches B from, as A itself says (ip route get): the
    // loopback address here, so the line is the same, and status says where it came from.
    await inCache(t.machines, 'a', t.tc.apply(machineObject(t.a, 'Source', { outboundAddresses: ['10.9.9.9'] })));
    await reconcileUntil(t, 'f', (x) => x.status?.pairing?.from === '10.9.9.9', 'from= 10.9.9.9');
    await inCache(t.machines, 'a', t.tc.apply(machineObject(t.a, 'Source')));
    v = await reconcileUntil(t, 'f', (x) => x.status?.pairing?.from === '127.0.0.1', 'from= derived');
    expect(await vectorLines(t.b, 'default/f')).toEqual([restricted]);
    const derived = await sshAs(t.b, files.id, files.knownHosts, `zfs list -H -o name ${t.replicaPool.name}/direct/f`);
    expect(derived.stdout).toBe(`${t.replicaPool.name}/direct/f\n`);
  }, 180_000);

  it('an outboundAddresses pattern sshd cannot take stalls the vector with InvalidSpec and writes nothing', async () => {
    // The CRD admits any short string (the pattern rule is the one nodes/authorized-keys.ts applies).
    await inCache(t.machines, 'a', t.tc.apply(machineObject(t.a, 'Source', { outboundAddresses: ['!10.0.0.1'] })));
    const before = await readFile(t.b.sshd.authorizedKeysPath, 'utf8');
    await applyVector(t, 'bad', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: `${t.replicaPool.name}/direct/bad` } });
    const v = await reconcileUntil(t, 'bad', (x) => condition(x, 'Stalled')?.status === 'True', 'bad to stall');
    expect(condition(v, 'Paired')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(condition(v, 'Paired')?.message).toMatch(/Machine a spec\.outboundAddresses: .*at least one positive pattern/);
    expect(await readFile(t.b.sshd.authorizedKeysPath, 'utf8')).toBe(before);
    await inCache(t.machines, 'a', t.tc.apply(machineObject(t.a, 'Source')));
  }, 120_000);
});
