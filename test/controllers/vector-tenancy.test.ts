/**
 * Two namespaces on shared machines, through the real Vector controller, sshd and zfs-fuse: each attack a
 * namespace could make with a Vector is refused before any command runs, and nothing outside its own part of
 * the machines changes (datasets, their settings, authorized_keys). The replica a vector makes is marked as its
 * own; one it did not make is refused, or taken by an explicit adoption; deletionPolicy Delete destroys only
 * what the vector made. Quota ceilings hold against a Vector that asks for more or none.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vectorKind } from '../../api/kinds/index.ts';
import type { Vector } from '../../api/types.ts';
import { resourceOf } from '../../controllers/runtime/kube.ts';
import { runOk, run } from '../testbed/index.ts';
import { eventually } from './cluster-fixture.ts';
import { condition, ctx, GiB, inCache, machineObject, setPool, startVectorBed, type VectorBed } from './vector-bed.ts';

const VECTORS = resourceOf(vectorKind);

describe('Vector tenancy: two namespaces on shared machines', () => {
  let t: VectorBed;
  let pool: string;
  /** Everything on the replica pool an attacker must not change: names, local settings, authorized_keys. */
  const world = async () => {
    const names = await runOk(['zfs', 'list', '-H', '-r', '-t', 'all', '-o', 'name', pool, t.sourcePool.name]);
    const settings = await runOk(['zfs', 'get', '-H', '-r', '-s', 'local', '-o', 'name,property,value', 'all', pool, t.sourcePool.name]);
    const holds = await runOk(['zfs', 'get', '-H', '-r', '-o', 'name,value', 'userrefs', pool, t.sourcePool.name]);
    const keys = await readFile(t.b.sshd.authorizedKeysPath, 'utf8').catch(() => '');
    return { names, settings, holds, keys };
  };
  const apply = async (ns: string, name: string, spec: object, annotations?: Record<string, string>) => {
    const applied = t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Vector', metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) }, spec });
    await inCache(t.vectors, `${ns}/${name}`, applied);
  };
  const until = (ns: string, name: string, done: (v: Vector) => boolean, what: string) =>
    eventually(async () => {
      await t.reconciler.reconcile(`${ns}/${name}`, ctx(`${ns}/${name}`)).catch(() => undefined);
      const v = t.vectors.get(`${ns}/${name}`);
      return v && done(v) ? v : undefined;
    }, what, 60_000, 200);
  // Refused for good (Stalled), not merely waiting for an object the cache has not seen yet.
  const refused = (ns: string, name: string) => until(ns, name, (v) => condition(v, 'Stalled')?.status === 'True', `${ns}/${name} refused`);
  const ready = (ns: string, name: string) => until(ns, name, (v) => condition(v, 'Ready')?.status === 'True', `${ns}/${name} Ready`);
  const get = async (property: string, dataset: string) => (await runOk(['zfs', 'get', '-H', '-o', 'value,source', property, dataset])).trim();

  beforeAll(async () => {
    t = await startVectorBed();
    pool = t.replicaPool.name;
    for (const ns of ['team-a', 'team-b']) {
      t.tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
      t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: ns }, spec: { keepLast: 1 } });
      t.tc.apply({
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Dataset',
        metadata: { name: 'src', namespace: ns },
        spec: { machineRef: { name: 'a' }, name: `${t.sourcePool.name}/${ns}/data`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' } },
      });
    }
    // Both namespaces may use A and B, each below its default root POOL/NAMESPACE, and below PARENT/NAMESPACE/ of
    // the StorageTarget; B caps any replica that targets it directly at 64M.
    const shared = { allowedNamespaces: { names: ['team-a', 'team-b'] }, datasetRoots: undefined };
    const aObj = machineObject(t.a, 'Source', shared);
    const bObj = machineObject(t.b, 'Storage', { ...shared, replicaQuota: '64M' });
    for (const o of [aObj, bObj]) delete (o.spec as { datasetRoots?: unknown }).datasetRoots;
    await inCache(t.machines, 'a', t.tc.apply(aObj));
    await inCache(t.machines, 'b', t.tc.apply(bObj));
    await inCache(t.targets, 'offsite', t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'StorageTarget', metadata: { name: 'offsite' }, spec: { machines: [{ name: 'b' }], parentDataset: `${pool}/replicas`, replicaQuota: '32M' } }));
    await setPool(t, 'b', pool, 8 * GiB, GiB);
    // team-a's replica, made by its own vector: the thing team-b goes after.
    await apply('team-a', 'va', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: `${pool}/team-a/va` } });
    await ready('team-a', 'va');
  }, 300_000);

  afterAll(async () => {
    await t?.stop();
  });

  it("marks the replica it makes as the vector's own (its uid), never mounted, under B's ceiling", async () => {
    const va = t.vectors.get('team-a/va');
    expect(await get('dev.bdr:replica-of', `${pool}/team-a/va`)).toBe(`vector/${va?.metadata.uid ?? '?'}\tlocal`);
    expect(await get('canmount', `${pool}/team-a/va`)).toBe('off\tlocal');
    expect(await get('quota', `${pool}/team-a/va`)).toBe('64M\tlocal');
  });

  it("refuses every Vector of team-b that names team-a's data, and nothing changes on B", async () => {
    // team-b declares a Dataset of its own that names team-a's source: the Dataset controller refuses it, and a
    // Vector from it may not read it either.
    t.tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'steal', namespace: 'team-b' },
      spec: { machineRef: { name: 'a' }, name: `${t.sourcePool.name}/team-a/data`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' } },
    });
    const before = await world();
    const attacks: Array<[string, object, string]> = [
      ['read', { source: { datasetRef: { name: 'steal' } }, target: { machineRef: { name: 'b' }, dataset: `${pool}/team-b/stolen` } }, `spec.source: ${t.sourcePool.name}/team-a/data on Machine a: it is at or below ${t.sourcePool.name}/team-a, the root {pool}/{namespace} grants to namespace team-a`],
      // The parent of team-a's replica: adopting it would let Delete destroy team-a's data.
      ['parent', { target: { machineRef: { name: 'b' }, dataset: `${pool}/team-a` } }, `spec.target: ${pool}/team-a on Machine b: it is at or below ${pool}/team-a, the root {pool}/{namespace} grants to namespace team-a`],
      ['inside', { target: { machineRef: { name: 'b' }, dataset: `${pool}/team-a/va/data` } }, `it is at or below ${pool}/team-a, the root {pool}/{namespace} grants to namespace team-a`],
      ['pool', { target: { machineRef: { name: 'b' }, dataset: pool } }, `it holds StorageTarget offsite's parentDataset ${pool}/replicas, where every namespace's replicas land`],
      ['other-pool', { target: { machineRef: { name: 'b' }, dataset: t.sourcePool.name } }, 'it holds the root of every namespace that {pool}/{namespace} grants'],
      ['st-other', { target: { storageTargetRef: { name: 'offsite' }, dataset: `${pool}/replicas/team-a/x` } }, `is outside ${pool}/replicas/team-b/`],
      ['st-parent', { target: { machineRef: { name: 'b' }, dataset: `${pool}/replicas` } }, "it holds StorageTarget offsite's parentDataset"],
      ['quota-none', { target: { storageTargetRef: { name: 'offsite' }, quota: 'none' } }, "spec.target.quota none would lift the ceiling 32M set by StorageTarget offsite's spec.replicaQuota"],
      ['quota-more', { target: { machineRef: { name: 'b' }, dataset: `${pool}/team-b/big`, quota: '1G' } }, "spec.target.quota 1G is above the ceiling 64M set by Machine b's spec.replicaQuota"],
      ['rotation', { target: { machineRef: { name: 'b' }, dataset: `${pool}/team-b/fast` }, keyRotation: { interval: '1ms' } }, 'spec.keyRotation.interval 1ms is shorter than 1h'],
    ];
    for (const [name, spec, message] of attacks) {
      await apply('team-b', name, { source: { datasetRef: { name: 'src' } }, ...spec });
      const v = await refused('team-b', name);
      expect(condition(v, 'Paired')?.message, name).toContain(message);
      expect(condition(v, 'Ready')?.status, name).toBe('False');
      expect(condition(v, 'Stalled')?.status, name).toBe('True');
    }
    // A chain from a refused vector has nothing to ship: it waits for a pairing that never comes.
    await apply('team-b', 'chain', { source: { vectorRef: { name: 'parent' } }, target: { machineRef: { name: 'b' }, dataset: `${pool}/team-b/chain` } });
    const chain = await until('team-b', 'chain', (v) => condition(v, 'Paired')?.reason === 'DependencyNotReady', 'the chain waiting');
    expect(condition(chain, 'Paired')?.message).toBe('source Vector team-b/parent is not paired yet');
    expect(await world()).toEqual(before);
  });

  it("refuses a target that exists without the vector's mark, until it is adopted explicitly, then marks it", async () => {
    const target = `${pool}/team-b/pre`;
    await runOk(['zfs', 'create', '-p', '-o', 'quota=8M', target]);
    const before = await world();
    await apply('team-b', 'pre', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: target } });
    const v = await until('team-b', 'pre', (x) => condition(x, 'Ready')?.reason === 'TargetNotOwned', 'TargetNotOwned');
    expect(condition(v, 'Ready')?.message).toBe(
      `${target} exists and bdr did not make it for this vector; bdr writes, sets quotas on and destroys only datasets it made. To use it anyway, annotate the Vector bdr.dev/adopt-replica=${target}, or target a dataset that does not exist yet`,
    );
    expect(await world()).toEqual(before);
    await apply('team-b', 'pre', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: target } }, { 'bdr.dev/adopt-replica': target });
    const adopted = await ready('team-b', 'pre');
    expect(await get('dev.bdr:replica-of', target)).toBe(`vector/${adopted.metadata.uid ?? '?'}\tlocal`);
    expect(await get('quota', target)).toBe('64M\tlocal');
  });

  it('deletionPolicy Delete destroys what the vector received and keeps what someone else made below it', async () => {
    const target = `${pool}/team-b/del`;
    await apply('team-b', 'del', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: target }, deletionPolicy: 'Delete' });
    const v = await ready('team-b', 'del');
    const tag = 'bdr:vector:team-b:del';
    // What the vector's key received carries the guard's receive mark (test/nodes/guard-adversarial.test.ts shows
    // the guard setting it); a file system made there by hand does not.
    await runOk(['zfs', 'create', '-o', `dev.bdr:received=${tag}`, `${target}/data`]);
    await runOk(['zfs', 'create', '-o', `dev.bdr:received=${tag}`, `${target}/data/child`]);
    await runOk(['zfs', 'create', `${target}/foreign`]);
    await runOk(['zfs', 'create', '-o', 'dev.bdr:received=bdr:vector:team-a:va', `${target}/forged`]);
    await t.client.custom.deleteNamespacedCustomObject({ group: VECTORS.group, version: VECTORS.version, plural: VECTORS.plural, namespace: 'team-b', name: 'del' });
    await eventually(async () => {
      await t.reconciler.reconcile('team-b/del', ctx('team-b/del')).catch(() => undefined);
      return (await t.client.get<Vector>(VECTORS, 'del', 'team-b')) === undefined ? true : undefined;
    }, 'del to be gone', 60_000, 200);
    const left = (await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', target])).trim().split('\n');
    expect(left).toEqual([target, `${target}/foreign`, `${target}/forged`]);
    const events = (await t.client.core.listNamespacedEvent({ namespace: 'team-b' })).items.filter((e) => e.involvedObject.uid === v.metadata.uid);
    expect(events.find((e) => e.reason === 'ReplicaDestroyed')?.message).toBe(`deletionPolicy Delete: destroyed ${target}/data on b`);
    expect(events.find((e) => e.reason === 'ReplicaKept')?.message).toBe(
      `deletionPolicy Delete on b: bdr did not receive ${target}/foreign, ${target}/forged for this vector, so they and the datasets above them are kept; kept ${target}, ${target}/foreign, ${target}/forged`,
    );
  });

  it("Delete destroys nothing of a dataset that lacks the vector's mark", async () => {
    const target = `${pool}/team-b/unmarked`;
    await apply('team-b', 'unmarked', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: target }, deletionPolicy: 'Delete' });
    await ready('team-b', 'unmarked');
    // Someone with root on B takes the mark away (or the dataset was swapped for another of the same name).
    await runOk(['zfs', 'inherit', 'dev.bdr:replica-of', target]);
    await t.client.custom.deleteNamespacedCustomObject({ group: VECTORS.group, version: VECTORS.version, plural: VECTORS.plural, namespace: 'team-b', name: 'unmarked' });
    await eventually(async () => {
      await t.reconciler.reconcile('team-b/unmarked', ctx('team-b/unmarked')).catch(() => undefined);
      return (await t.client.get<Vector>(VECTORS, 'unmarked', 'team-b')) === undefined ? true : undefined;
    }, 'unmarked to be gone', 60_000, 200);
    expect((await run(['zfs', 'list', '-H', '-o', 'name', target])).code).toBe(0);
  });
});
