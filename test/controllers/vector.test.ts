import { spawn } from 'node:child_process';
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineKind, vectorKind } from '../../api/kinds/index.ts';
import type { Dataset, Machine, StorageTarget, Vector } from '../../api/types.ts';
import type { Informer } from '../../controllers/runtime/informer.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import type { VectorReconciler } from '../../controllers/vector-controller.ts';
import type { VectorSweepReconciler } from '../../controllers/vector-sweep.ts';
import { silentLogger } from '../../metrics/log.ts';
import { run, runOk, TestBed, generateKeyPair, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';
import { FakeClock } from './fake-clock.ts';
import {
  applyVector as applyVectorIn, condition, eventsOf as eventsIn, guardOf, inCache, machineObject, reconcileUntil as reconcileUntilIn, sshAs as ssh, sshOptions,
  startVectorInformers, startVectorOperator, vectorLines,
} from './vector-bed.ts';

const HOUR = 3_600_000;
const abort = new AbortController();
const ctx = (key: string) => ({ key, log: silentLogger, signal: abort.signal });
const GROUP = { group: 'bdr.dev', version: 'v1alpha1' };

/**
 * Machines A (primary), B and C (storage), each a real sshd; the vector's key is used by the real OpenSSH
 * client with the files the controller wrote on A, against B's and C's real authorized_keys.
 */
describe('Vector controller: pairing and the SSH key lifecycle', () => {
  const bed = new TestBed();
  let a: TestMachine;
  let b: TestMachine;
  let c: TestMachine;
  let sourcePool: TestPool;
  let replicaPool: TestPool;
  let tc: TestCluster;
  let client: KubeClient;
  let clock: FakeClock;
  let vectors: Informer<Vector>;
  let machines: Informer<Machine>;
  let datasets: Informer<Dataset>;
  let targets: Informer<StorageTarget>;
  let reconciler: VectorReconciler;
  let sweep: VectorSweepReconciler;
  const informers: Array<{ start(): Promise<void>; stop(): Promise<void> }> = [];
  const keyDir = () => join(a.sshd.dir, 'vectors');

  const markReady = async (name: string, freeBytes: number) => {
    const m = await client.get<Machine>(resourceOf(machineKind), name);
    await client.patchStatus(resourceOf(machineKind), m ?? { metadata: { name } }, {
      conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message: 'test', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      pools: [{ name: replicaPool.name, health: 'ONLINE', sizeBytes: 10 * 2 ** 30, allocatedBytes: 10 * 2 ** 30 - freeBytes, freeBytes }],
    });
  };
  const applyVector = (name: string, spec: object) => applyVectorIn({ tc, vectors }, name, spec);
  const reconcileUntil = (name: string, done: (v: Vector) => boolean, what: string) => reconcileUntilIn({ reconciler, vectors }, name, done, what);
  const eventsOf = (name: string, reason: string) => eventsIn({ client }, name, reason);
  const fingerprintOf = async (privateKeyPath: string) => (await runOk(['ssh-keygen', '-l', '-f', privateKeyPath])).split(' ')[1];

  beforeAll(async () => {
    [a, b, c, sourcePool, replicaPool] = await Promise.all([bed.machine('a'), bed.machine('b'), bed.machine('c'), bed.pool(), bed.pool()]);
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    clock = new FakeClock(Date.UTC(2026, 0, 1));
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
    for (const m of [a, b, c]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
    tc.apply(machineObject(a, 'Source'));
    tc.apply(machineObject(b, 'Storage'));
    tc.apply(machineObject(c, 'Storage'));
    await markReady('a', 2 ** 30);
    await markReady('b', 8 * 2 ** 30); // most free: MostFree picks b
    await markReady('c', 4 * 2 ** 30);
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: 'default' }, spec: { keepLast: 1 } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'src', namespace: 'default' },
      spec: { machineRef: { name: 'a' }, name: `${sourcePool.name}/data`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' } },
    });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'StorageTarget',
      metadata: { name: 'offsite' },
      spec: { machines: [{ name: 'b' }, { name: 'c' }], parentDataset: `${replicaPool.name}/replicas` },
    });
    ({ vectors, machines, datasets, targets } = await startVectorInformers(tc, client, informers));
    await eventually(() => (machines.list().filter((m) => m.status?.pools).length === 3 && datasets.get('default/src') && targets.get('offsite') ? true : undefined), 'the cache');
    ({ reconciler, sweep } = startVectorOperator({ client, vectors, datasets, machines, targets, clock }));
  }, 300_000);

  afterAll(async () => {
    for (const i of informers) await i.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  const replica = () => `${replicaPool.name}/replicas/default/v1`;
  const idFile = () => join(keyDir(), 'default', 'v1', 'id');
  const knownHostsFile = () => join(keyDir(), 'default', 'v1', 'known_hosts');
  let firstKeyCopy: string;

  it('pairs with the machine with most free space, authorizes a guarded key there and installs it on the primary', async () => {
    await applyVector('v1', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' } }, keyRotation: { interval: '1h' } });
    const v = await reconcileUntil('v1', (x) => condition(x, 'Ready')?.status === 'True', 'v1 Ready');
    expect(v.metadata.finalizers).toContain('bdr.dev/vector');
    expect(v.status?.pairing?.machine).toBe('b');
    expect(v.status?.pairing?.dataset).toBe(replica());
    expect(condition(v, 'Paired')?.status).toBe('True');
    expect(condition(v, 'KeyAuthorized')?.status).toBe('True');
    expect(v.status?.observedGeneration).toBe(v.metadata.generation);

    // The files on the primary: 0600 in a 0700 directory; the fingerprint in status is the key's own.
    expect((await stat(idFile())).mode & 0o777).toBe(0o600);
    expect((await stat(join(keyDir(), 'default', 'v1'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(keyDir(), 'default'))).mode & 0o777).toBe(0o700);
    expect((await stat(keyDir())).mode & 0o777).toBe(0o700);
    expect(v.status?.pairing?.keyFingerprint).toBe(await fingerprintOf(idFile()));
    expect(await readFile(knownHostsFile(), 'utf8')).toBe(`[127.0.0.1]:${b.sshd.port} ${b.sshd.hostKey}\n`);

    const lines = await vectorLines(b, 'default/v1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^restrict,command="${guardOf(b)} ${replica()} bdr:vector:default:v1 data",from="127\\.0\\.0\\.1" ssh-ed25519 \\S+ bdr:vector=default/v1$`));
    expect(await vectorLines(c, 'default/v1')).toEqual([]);

    // The Secret: in bdr-system, labelled with the vector; the fingerprint, never the key, in status and events.
    const secret = await client.core.readNamespacedSecret({ namespace: 'bdr-system', name: 'vector.default.v1' });
    expect(secret.metadata?.labels).toMatchObject({ 'bdr.dev/vector-namespace': 'default', 'bdr.dev/vector-name': 'v1', 'bdr.dev/vector-uid': v.metadata.uid });
    const privateKey = Buffer.from(secret.data?.['ssh-privatekey'] ?? '', 'base64').toString();
    expect(privateKey).toBe(await readFile(idFile(), 'utf8'));
    const allEvents = (await client.core.listNamespacedEvent({ namespace: 'default' })).items.map((e) => e.message ?? '').join('\n');
    expect(JSON.stringify(v.status)).not.toContain('PRIVATE KEY');
    expect(allEvents).not.toContain('PRIVATE KEY');
    expect((await eventsOf('v1', 'Paired'))[0]?.message).toContain('MostFree');
    expect(await eventsOf('v1', 'KeyAuthorized')).toHaveLength(1);

    // The real OpenSSH client with the files on the primary, the host key pinned, into the guard.
    // The vector's dataset, made by the operator (the key may only receive below it), and every missing
    // level above it, none ever mounted.
    for (const d of [`${replicaPool.name}/replicas`, `${replicaPool.name}/replicas/default`, replica()]) {
      expect((await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'canmount', d])).trim()).toBe('off\tlocal');
    }
    const listed = await ssh(b, idFile(), knownHostsFile(), `zfs list -H -o name ${replica()}`);
    expect(listed.stderr).toBe('');
    expect(listed.stdout).toBe(`${replica()}\n`);
    const outside = await ssh(b, idFile(), knownHostsFile(), `zfs list -H -o name ${replicaPool.name}`);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toMatch(/bdr-guard: refused/);
    // The same entry, seen by a thief of the key: no shell, no destroy, no forced receive.
    for (const command of ['', 'sh -c id', `zfs destroy -r ${replica()}`, `zfs receive -u -F ${replica()}/x`]) {
      const r = await ssh(b, idFile(), knownHostsFile(), command);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/bdr-guard: refused/);
    }
    firstKeyCopy = join(a.sshd.dir, 'v1-first-key');
    await copyFile(idFile(), firstKeyCopy);
  }, 180_000);

  it('settled, a reconcile runs no command and writes nothing', async () => {
    const before = tc.requests.length;
    const mark = await b.sshd.logMark();
    const result = await reconciler.reconcile('default/v1', ctx('default/v1'));
    expect(result?.requeueAfterMs).toBeGreaterThan(0);
    const writes = tc.requests.slice(before).filter((r) => r.method !== 'GET');
    expect(writes).toEqual([]);
    // No new connection and no command on the storage machine's sshd.
    expect(await b.sshd.sessionsSince(mark)).toEqual([]);
  });

  it('rotates the key after keyRotation.interval: a receive begun with the old key finishes, then the old key is refused and the new one works', async () => {
    const before = vectors.get('default/v1');
    const oldFingerprint = before?.status?.pairing?.keyFingerprint ?? '';
    // A receive through the guard, logged in with the old key and waiting for its stream across the rotation.
    await runOk(['zfs', 'create', `${sourcePool.name}/data`]);
    await runOk(['zfs', 'snapshot', `${sourcePool.name}/data@s1`]);
    const accepted = async () => (await readFile(b.sshd.logPath, 'utf8')).split('\n').filter((l) => l.includes('Accepted publickey') && l.includes(oldFingerprint)).length;
    const loginsBefore = await accepted();
    // Into the replica itself (its leaf, "data"): the one name below the vector's dataset the key may receive into.
    const receive = spawn('ssh', [...sshOptions(b, firstKeyCopy, knownHostsFile()), `zfs receive -u ${replica()}/data`], { stdio: ['pipe', 'ignore', 'pipe'] });
    let receiveErr = '';
    receive.stderr.on('data', (d: Buffer) => (receiveErr += d.toString()));
    const receiveDone = new Promise<number | null>((resolve) => receive.once('exit', resolve));
    await eventually(async () => ((await accepted()) > loginsBefore ? true : undefined), 'the old key to log in');

    clock.advance(HOUR);
    const v = await reconcileUntil('v1', (x) => x.status?.pairing?.keyFingerprint !== before?.status?.pairing?.keyFingerprint, 'the key to rotate');
    const send = spawn('zfs', ['send', `${sourcePool.name}/data@s1`], { stdio: ['ignore', 'pipe', 'inherit'] });
    send.stdout.pipe(receive.stdin);
    expect(await receiveDone, receiveErr).toBe(0);
    expect((await runOk(['zfs', 'list', '-H', '-o', 'name', `${replica()}/data@s1`])).trim()).toBe(`${replica()}/data@s1`);
    expect(v.status?.pairing?.authorizedAt).not.toBe(before?.status?.pairing?.authorizedAt);
    expect(v.status?.pairing?.keyFingerprint).toBe(await fingerprintOf(idFile()));
    expect(await eventsOf('v1', 'KeyRotated')).toHaveLength(1);
    expect(await vectorLines(b, 'default/v1')).toHaveLength(1);
    const secret = await client.core.readNamespacedSecret({ namespace: 'bdr-system', name: 'vector.default.v1' });
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ssh-privatekey', 'ssh-publickey']);

    const withNew = await ssh(b, idFile(), knownHostsFile(), `zfs list -H -o name ${replica()}`);
    expect(withNew.stdout).toBe(`${replica()}\n`);
    const withOld = await ssh(b, firstKeyCopy, knownHostsFile(), `zfs list -H -o name ${replica()}`);
    expect(withOld.code).toBe(255);
    expect(withOld.stderr).toMatch(/Permission denied \(publickey\)/);
  }, 120_000);

  it('re-pairs to C when B leaves the StorageTarget: revoked on B, authorized on C', async () => {
    const keyBefore = join(a.sshd.dir, 'v1-before-repair');
    await copyFile(idFile(), keyBefore);
    const knownB = join(a.sshd.dir, 'known-b');
    await copyFile(knownHostsFile(), knownB);
    const applied = tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'StorageTarget',
      metadata: { name: 'offsite' },
      spec: { machines: [{ name: 'c' }], parentDataset: `${replicaPool.name}/replicas` },
    });
    await inCache(targets, 'offsite', applied);
    const v = await reconcileUntil('v1', (x) => x.status?.pairing?.machine === 'c' && condition(x, 'Ready')?.status === 'True', 're-pairing to c');
    expect(await vectorLines(b, 'default/v1')).toEqual([]);
    expect(await vectorLines(c, 'default/v1')).toHaveLength(1);
    expect((await eventsOf('v1', 'Repaired'))[0]?.message).toMatch(/from b to c/);
    expect(await readFile(knownHostsFile(), 'utf8')).toBe(`[127.0.0.1]:${c.sshd.port} ${c.sshd.hostKey}\n`);
    const toB = await ssh(b, keyBefore, knownB, `zfs list -H -o name ${replica()}`);
    expect(toB.code).toBe(255);
    expect(toB.stderr).toMatch(/Permission denied \(publickey\)/);
    const toC = await ssh(c, idFile(), knownHostsFile(), `zfs list -H -o name ${replica()}`);
    expect(toC.stdout).toBe(`${replica()}\n`);
    expect(v.status?.pairing?.dataset).toBe(replica());
  }, 120_000);

  it("removes bdr's entry for a vector that does not exist in one sweep, keeps a foreign entry byte for byte, and puts back a live vector's", async () => {
    const ghost = await generateKeyPair(c.sshd.dir, 'ghost');
    const foreign = await generateKeyPair(c.sshd.dir, 'foreign', 'someone@else');
    const foreignLine = `no-pty,from="10.0.0.1"  ${foreign.publicKey}   trailing bdr:vector words`;
    const original = await readFile(c.sshd.authorizedKeysPath, 'utf8');
    const v1Line = original.split('\n').find((l) => l.endsWith('bdr:vector=default/v1'));
    // The ghost's line, and v1's line removed by hand.
    const withoutV1 = original.split('\n').filter((l) => l !== v1Line).join('\n');
    await writeFile(
      c.sshd.authorizedKeysPath,
      `${withoutV1}${foreignLine}\nrestrict,command="${guardOf(c)} ${replicaPool.name}/replicas/default/ghost" ${ghost.publicKeyNoComment} bdr:vector=default/ghost\n`,
    );
    await runOk(['mkdir', '-p', join(keyDir(), 'default', 'ghost')]);
    await writeFile(join(keyDir(), 'default', 'ghost', 'id'), 'stale\n');
    // An edited known_hosts of a live vector, and an edited guard.
    await writeFile(knownHostsFile(), 'tampered\n');
    const guardBefore = await readFile(guardOf(c), 'utf8');
    await writeFile(guardOf(c), '#!/bin/sh\nexec sh -c "$SSH_ORIGINAL_COMMAND"\n');

    const onC = await sweep.sweep(machines.get('c') as Machine);
    expect(onC.removedEntries).toEqual(['bdr:vector=default/ghost']);
    expect(onC.restoredEntries).toEqual(['bdr:vector=default/v1']);
    const after = await readFile(c.sshd.authorizedKeysPath, 'utf8');
    expect(after).toBe(`${withoutV1}${foreignLine}\n${v1Line}\n`);
    expect(await readFile(guardOf(c), 'utf8')).toBe(guardBefore);
    expect((await stat(guardOf(c))).mode & 0o777).toBe(0o755);
    const onA = await sweep.sweep(machines.get('a') as Machine);
    expect(onA.removedDirs).toEqual(['default/ghost']);
    expect(onA.restoredDirs).toEqual(['default/v1']);
    expect((await run(['test', '-e', join(keyDir(), 'default', 'ghost')])).code).not.toBe(0);
    expect(await readFile(knownHostsFile(), 'utf8')).toBe(`[127.0.0.1]:${c.sshd.port} ${c.sshd.hostKey}\n`);
    // The ghost's key no longer logs in; v1's does again.
    const ghostKnown = join(c.sshd.dir, 'ghost_known');
    await writeFile(ghostKnown, `[127.0.0.1]:${c.sshd.port} ${c.sshd.hostKey}\n`);
    expect((await ssh(c, ghost.privateKeyPath, ghostKnown, 'zfs list')).code).toBe(255);
    expect((await ssh(c, idFile(), knownHostsFile(), `zfs list -H -o name ${replica()}`)).stdout).toBe(`${replica()}\n`);
    // A second sweep finds nothing to do; the next comes after the Machine's probe interval (default 5m).
    expect(await sweep.sweep(machines.get('c') as Machine)).toEqual({ removedEntries: [], restoredEntries: [], removedDirs: [], restoredDirs: [] });
    expect(await sweep.reconcile('c', ctx('c'))).toEqual({ requeueAfterMs: 5 * 60_000 });
    // Woken again (a probe rewrote the Machine's status) a minute later: no sweep, the round stays on time.
    clock.advance(60_000);
    const mark = await c.sshd.logMark();
    expect(await sweep.reconcile('c', ctx('c'))).toEqual({ requeueAfterMs: 4 * 60_000 });
    expect(await c.sshd.sessionsSince(mark)).toEqual([]);
  }, 120_000);

  it('refuses bad input with a clear condition and authorizes nothing', async () => {
    const closedSpec = machineObject(b, 'Storage');
    const { allowedNamespaces: _omitted, ...closed } = closedSpec.spec;
    await inCache(machines, 'closed', tc.apply({ ...closedSpec, metadata: { name: 'closed' }, spec: closed }));
    const cases: Array<[string, object, RegExp]> = [
      ['no-dataset', { source: { datasetRef: { name: 'missing' } }, target: { storageTargetRef: { name: 'offsite' } } }, /Dataset default\/missing does not exist/],
      ['no-target', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'nowhere' } } }, /StorageTarget nowhere does not exist/],
      ['no-machine', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'zz' }, dataset: `${replicaPool.name}/x` } }, /Machine zz does not exist/],
      ['to-source', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'a' }, dataset: `${replicaPool.name}/x` } }, /role Source/],
      ['outside', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' }, dataset: `${replicaPool.name}/elsewhere/x` } }, /is outside .*\/replicas\/default\/, the part of StorageTarget offsite's parentDataset that namespace default may use/],
      ['not-allowed', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'closed' }, dataset: `${replicaPool.name}/closed/x` } }, /Machine closed does not allow namespace default/],
      ['twice', { source: { datasetRef: { name: 'src' } }, target: { storageTargetRef: { name: 'offsite' }, dataset: replica() } }, /Vector default\/v1 already replicates into/],
    ];
    for (const [name, spec, message] of cases) {
      await applyVector(name, spec);
      const v = await reconcileUntil(name, (x) => condition(x, 'Paired')?.status === 'False', `${name} to report`);
      expect(condition(v, 'Paired')?.message).toMatch(message);
      expect(condition(v, 'Ready')?.status).toBe('False');
      expect(await vectorLines(b, `default/${name}`)).toEqual([]);
      expect(await vectorLines(c, `default/${name}`)).toEqual([]);
      expect((await client.core.listNamespacedSecret({ namespace: 'bdr-system', labelSelector: `bdr.dev/vector-name=${name}` })).items).toEqual([]);
    }
  }, 180_000);

  it('stalls with HostKeyMismatch when the storage machine does not present its pinned key, and authorizes nothing', async () => {
    const spec = machineObject(b, 'Storage');
    const impostor = tc.apply({ ...spec, metadata: { name: 'impostor' }, spec: { ...spec.spec, connection: { ...spec.spec.connection, hostKey: a.sshd.hostKey } } });
    await inCache(machines, 'impostor', impostor);
    const before = await readFile(b.sshd.authorizedKeysPath, 'utf8');
    await applyVector('v4', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'impostor' }, dataset: `${replicaPool.name}/imp/v4` } });
    const v = await reconcileUntil('v4', (x) => condition(x, 'Stalled')?.status === 'True', 'v4 to stall');
    expect(condition(v, 'Stalled')?.reason).toBe('HostKeyMismatch');
    expect(condition(v, 'KeyAuthorized')).toMatchObject({ status: 'False', reason: 'HostKeyMismatch' });
    expect(condition(v, 'Ready')?.status).toBe('False');
    expect(v.status?.pairing).toBeUndefined();
    expect(await readFile(b.sshd.authorizedKeysPath, 'utf8')).toBe(before);
  }, 120_000);

  it('a suspended Vector gets no key and runs nothing', async () => {
    await applyVector('v6', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/paused/v6` }, suspend: true });
    const v = await reconcileUntil('v6', (x) => condition(x, 'Ready')?.reason === 'Suspended', 'v6 to report Suspended');
    expect(v.status?.pairing).toBeUndefined();
    expect(await vectorLines(b, 'default/v6')).toEqual([]);
    expect((await client.core.listNamespacedSecret({ namespace: 'bdr-system', labelSelector: 'bdr.dev/vector-name=v6' })).items).toEqual([]);
  }, 60_000);

  it("chains: a vector from v1's replica has v1's storage machine as its primary", async () => {
    const mirror = `${replicaPool.name}/mirror/v3`;
    await applyVector('v3', { source: { vectorRef: { name: 'v1' } }, target: { machineRef: { name: 'b' }, dataset: mirror } });
    const v = await reconcileUntil('v3', (x) => condition(x, 'Ready')?.status === 'True', 'v3 Ready');
    expect(v.status?.pairing?.machine).toBe('b');
    // v1 lives on c now: c holds v3's key and pins b.
    const dir = join(c.sshd.dir, 'vectors', 'default', 'v3');
    expect(await readFile(join(dir, 'known_hosts'), 'utf8')).toBe(`[127.0.0.1]:${b.sshd.port} ${b.sshd.hostKey}\n`);
    expect(v.status?.pairing?.keyFingerprint).toBe(await fingerprintOf(join(dir, 'id')));
    expect((await ssh(b, join(dir, 'id'), join(dir, 'known_hosts'), `zfs list -H -o name ${mirror}`)).stdout).toBe(`${mirror}\n`);
  }, 120_000);

  it('runs nothing while a machine of the vector is suspended, and carries on when it resumes', async () => {
    const spec = machineObject(b, 'Storage');
    await inCache(machines, 'b', tc.apply({ ...spec, spec: { ...spec.spec, suspend: true } }));
    const mark = await b.sshd.logMark();
    // v3 now rotates hourly and its key is two hours old: due, but b is suspended.
    clock.advance(2 * HOUR);
    await applyVector('v3', { source: { vectorRef: { name: 'v1' } }, target: { machineRef: { name: 'b' }, dataset: `${replicaPool.name}/mirror/v3` }, keyRotation: { interval: '1h' } });
    const paused = await reconcileUntil('v3', (x) => condition(x, 'Suspended')?.status === 'True', 'v3 Suspended');
    expect(condition(paused, 'Suspended')?.reason).toBe('MachineSuspended');
    expect(await b.sshd.sessionsSince(mark)).toEqual([]);
    const fingerprint = paused.status?.pairing?.keyFingerprint;

    await inCache(machines, 'b', tc.apply(spec));
    const resumed = await reconcileUntil('v3', (x) => condition(x, 'Suspended') === undefined && condition(x, 'Ready')?.reason === 'Succeeded', 'v3 to resume');
    expect(resumed.status?.pairing?.keyFingerprint).not.toBe(fingerprint);
    expect((await eventsOf('v3', 'KeyRotated')).length).toBe(1);
  }, 120_000);

  it('deleting a vector revokes its key (sshd rejects it), removes its files and Secret, and Retain keeps the replica', async () => {
    const fingerprint = vectors.get('default/v1')?.status?.pairing?.keyFingerprint;
    const keyCopy = join(a.sshd.dir, 'v1-last');
    await copyFile(idFile(), keyCopy);
    const known = join(a.sshd.dir, 'known-c');
    await copyFile(knownHostsFile(), known);
    await client.custom.deleteNamespacedCustomObject({ ...GROUP, namespace: 'default', plural: 'vectors', name: 'v1' });
    await eventually(() => (vectors.get('default/v1')?.metadata.deletionTimestamp ? true : undefined), 'the deletion in the cache');
    await eventually(async () => {
      await reconciler.reconcile('default/v1', ctx('default/v1'));
      return (await client.get<Vector>(resourceOf(vectorKind), 'v1', 'default')) === undefined ? true : undefined;
    }, 'v1 to be gone');
    expect(await vectorLines(c, 'default/v1')).toEqual([]);
    const refused = await ssh(c, keyCopy, known, `zfs list -H -o name ${replica()}`);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/Permission denied \(publickey\)/);
    const log = await readFile(c.sshd.logPath, 'utf8');
    expect(log).toMatch(new RegExp(`Failed publickey for root from 127\\.0\\.0\\.1 port \\d+ ssh2: ED25519 ${(fingerprint ?? '').replace(/[+/]/g, '\\$&')}`));
    expect((await run(['test', '-e', join(keyDir(), 'default', 'v1')])).code).not.toBe(0);
    expect((await client.core.listNamespacedSecret({ namespace: 'bdr-system', labelSelector: 'bdr.dev/vector-name=v1' })).items).toEqual([]);
    expect((await run(['zfs', 'list', replica()])).code).toBe(0);
    expect((await eventsOf('v1', 'KeyRevoked')).length).toBe(1);
    // v3 mirrored v1's replica: its source is gone, but its authorization and its files on c are not the
    // sweep's to remove (only vectors that are gone or paired elsewhere lose theirs).
    await sweep.sweep(machines.get('b') as Machine);
    await sweep.sweep(machines.get('c') as Machine);
    expect(await vectorLines(b, 'default/v3')).toHaveLength(1);
    expect((await run(['test', '-f', join(c.sshd.dir, 'vectors', 'default', 'v3', 'id')])).code).toBe(0);
  }, 120_000);

  it('with deletionPolicy Delete destroys what the vector made and keeps a child made by hand; an unreachable machine keeps the finalizer and says why', async () => {
    const target = `${replicaPool.name}/direct/v2`;
    await applyVector('v2', { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: target }, deletionPolicy: 'Delete' });
    await reconcileUntil('v2', (x) => condition(x, 'Ready')?.status === 'True', 'v2 Ready');
    expect(await vectorLines(b, 'default/v2')).toHaveLength(1);
    await runOk(['zfs', 'create', '-p', '-o', 'canmount=off', `${target}/child`]);

    // B stops answering: its Machine now points at a port nobody listens on.
    const spec = machineObject(b, 'Storage');
    const broken = tc.apply({ ...spec, spec: { ...spec.spec, connection: { ...spec.spec.connection, port: 1, connectTimeout: '2s' } } });
    await inCache(machines, 'b', broken);
    await client.custom.deleteNamespacedCustomObject({ ...GROUP, namespace: 'default', plural: 'vectors', name: 'v2' });
    await eventually(() => (vectors.get('default/v2')?.metadata.deletionTimestamp ? true : undefined), 'the deletion in the cache');
    const stuck = await reconcileUntil('v2', (x) => condition(x, 'Ready')?.reason === 'MachineUnreachable', 'the unreachable machine reported');
    expect(stuck.metadata.finalizers).toContain('bdr.dev/vector');
    expect(condition(stuck, 'Ready')?.message).toMatch(/on b/);
    expect(await vectorLines(b, 'default/v2')).toHaveLength(1);

    const fixed = tc.apply(spec);
    await inCache(machines, 'b', fixed);
    await eventually(async () => {
      await reconciler.reconcile('default/v2', ctx('default/v2')).catch(() => undefined);
      return (await client.get<Vector>(resourceOf(vectorKind), 'v2', 'default')) === undefined ? true : undefined;
    }, 'v2 to be gone', 60_000, 500);
    expect(await vectorLines(b, 'default/v2')).toEqual([]);
    // The child was made by hand, not received by the vector's key: it stays, and so does the dataset above it.
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', target])).trim().split('\n')).toEqual([target, `${target}/child`]);
  }, 180_000);
});
