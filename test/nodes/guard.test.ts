import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { Client, type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeKey, revokeKey } from '../../nodes/authorized-keys.ts';
import { guardOptions, installGuard, vectorHoldTag, vectorKeyEntry } from '../../nodes/guard.ts';
import type { ExecOptions, ExecResult, NodeConnection, RunningCommand, SpawnOptions } from '../../nodes/connection.ts';
import { SshConnection } from '../../nodes/ssh.ts';
import { installVectorIdentity } from '../../nodes/identity.ts';
import {
  DestinationFull,
  directTransfer,
  enforceReplicaProperties,
  ensureReplicaQuota,
  relay,
  replicaSpace,
  ZfsError,
  ZfsMachine,
} from '../../zfs/index.ts';
import { eventually } from '../helpers/eventually.ts';
import { generateKeyPair, run, runOk, TestBed, type KeyPair, type TestMachine, type TestPool } from '../testbed/index.ts';

/**
 * A vector's key on the secondary, as a thief would hold it: the entry is rendered by vectorKeyEntry and
 * written by authorizeKey into the real sshd's authorized_keys, forced through the guard. It may receive
 * into the replica its entry names below the vector's prefix (inert, within the quota), list, get, hold and
 * release its own tag there, and nothing else. Each test names the replica it receives into (`useLeaf`).
 */
const bed = new TestBed();
let primary: TestMachine;
let secondary: TestMachine;
let sourcePool: TestPool;
let targetPool: TestPool;
let vectorKey: KeyPair;
let prefix: string;
let source: ZfsMachine;
let operatorOnSecondary: ZfsMachine;
let vector: ZfsMachine;
let vectorConnection: SshConnection | undefined;
let guardPath: string;
const owner = 'bdr:vector=ns/vec1';
const tag = vectorHoldTag(owner);

function connected(): SshConnection {
  if (!vectorConnection) throw new Error('no vector connection yet');
  return vectorConnection;
}

/**
 * Rewrites the key's entry so that `leaf` is the replica it may receive into, and connects again: sshd fixes a
 * connection's forced command when the key authenticates.
 */
async function useLeaf(leaf: string): Promise<void> {
  // The primary's address is known (loopback here): the entry only accepts the key from there.
  await authorizeKey(
    secondary.connect(),
    vectorKeyEntry({ publicKey: vectorKey.publicKeyNoComment, owner, prefix, leaf, guardPath, from: ['127.0.0.1'] }),
    secondary.sshd.authorizedKeysPath,
  );
  await vectorConnection?.close();
  // The guard parses the request itself: command lines go out bare (no pid wrapper).
  vectorConnection = new SshConnection({ ...secondary.target, privateKey: vectorKey.privateKey }, { forcedCommand: true });
  // Behind the guard `zfs -?` is refused, so the vector side reuses the operator's probe.
  vector = new ZfsMachine(vectorConnection, { capabilities: await operatorOnSecondary.capabilities() });
}

beforeAll(async () => {
  [primary, secondary, sourcePool, targetPool] = await Promise.all([bed.machine('primary'), bed.machine('secondary'), bed.pool(), bed.pool()]);
  source = new ZfsMachine(primary.connect());
  operatorOnSecondary = new ZfsMachine(secondary.connect());
  prefix = `${targetPool.name}/replicas/vec1`;
  await operatorOnSecondary.createDataset(prefix, { parents: true, properties: { canmount: 'off' } });
  await operatorOnSecondary.createDataset(`${targetPool.name}/private`);
  await source.createDataset(`${sourcePool.name}/data`);
  await source.snapshot([`${sourcePool.name}/data@s1`]);
  await source.snapshot([`${sourcePool.name}/data@s2`]);

  vectorKey = await generateKeyPair(secondary.sshd.dir, 'vector');
  guardPath = await installGuard(secondary.connect(), { path: join(secondary.sshd.dir, 'bin', 'zfs-guard'), ...guardOptions(await operatorOnSecondary.capabilities()) });
  await useLeaf('data');
});
afterAll(async () => {
  await vectorConnection?.close();
  await bed.cleanup();
});

/** The operator's connection, recording every command it runs. */
class CountingConnection implements NodeConnection {
  readonly commands: string[] = [];
  constructor(private readonly inner: NodeConnection) {}
  get description(): string {
    return this.inner.description;
  }
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(argv.join(' '));
    return this.inner.exec(argv, options);
  }
  spawn(argv: readonly string[], options?: SpawnOptions): RunningCommand {
    this.commands.push(argv.join(' '));
    return this.inner.spawn(argv, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

async function names(root: string): Promise<string[]> {
  const r = await runOk(['zfs', 'list', '-H', '-r', '-t', 'all', '-o', 'name', root]);
  return r.split('\n').filter(Boolean);
}

// One zfs-fuse daemon serves every test worker on this machine: under load a command can wait a long time.
describe('forced-command guard with a vector key', { timeout: 180_000 }, () => {
  it('receives full and incremental streams into the replica its entry names', async () => {
    await useLeaf('data');
    await relay(source, { snapshot: `${sourcePool.name}/data@s1` }, vector, `${prefix}/data`, { noMount: true });
    await relay(source, { snapshot: `${sourcePool.name}/data@s2`, from: '@s1' }, vector, `${prefix}/data`, { noMount: true });
    expect(await names(`${prefix}/data`)).toEqual([`${prefix}/data`, `${prefix}/data@s1`, `${prefix}/data@s2`]);
  });

  it('receives over the direct path: the primary OpenSSH client into the guard, the stream bypassing bdr', async () => {
    await useLeaf('direct');
    const files = await installVectorIdentity(primary.connect(), {
      dir: join(primary.sshd.dir, 'vectors', 'ns', 'vec1'),
      privateKey: vectorKey.privateKey,
      host: secondary.sshd.host,
      port: secondary.sshd.port,
      hostKey: secondary.sshd.hostKey,
    });
    const route = { host: secondary.sshd.host, port: secondary.sshd.port, user: 'root', ...files, sshOptions: ['Compression=no', 'ServerAliveCountMax=3'] };
    await directTransfer(source, { snapshot: `${sourcePool.name}/data@s1` }, route, `${prefix}/direct`, { noMount: true }, vector);
    await directTransfer(source, { snapshot: `${sourcePool.name}/data@s2`, from: '@s1' }, route, `${prefix}/direct`, { noMount: true }, vector);
    expect(await names(`${prefix}/direct`)).toEqual([`${prefix}/direct`, `${prefix}/direct@s1`, `${prefix}/direct@s2`]);
    const outside = await directTransfer(source, { snapshot: `${sourcePool.name}/data@s1` }, route, `${targetPool.name}/private/direct`, {}, vector).catch(
      (e: unknown) => e,
    );
    expect(outside).toMatchObject({ kind: 'permissionDenied' });
    // A wrong pinned host key stops the primary's ssh before it sends anything.
    const wrong = await installVectorIdentity(primary.connect(), {
      dir: join(primary.sshd.dir, 'vectors', 'ns', 'wrong'),
      privateKey: vectorKey.privateKey,
      host: secondary.sshd.host,
      port: secondary.sshd.port,
      hostKey: primary.sshd.hostKey,
    });
    const mismatch = await directTransfer(source, { snapshot: `${sourcePool.name}/data@s1` }, { ...route, ...wrong }, `${prefix}/never`, {}, vector).catch(
      (e: unknown) => e,
    );
    expect(mismatch).toMatchObject({ kind: 'hostKeyMismatch' });
    expect((await run(['zfs', 'list', `${prefix}/never`])).code).not.toBe(0);
  });

  it('lists, gets, holds and releases under the prefix', async () => {
    const listed = await vector.run(['zfs', 'list', '-H', '-r', '-t', 'all', '-o', 'name', prefix]);
    expect(listed.stdout.split('\n').filter(Boolean)).toContain(`${prefix}/data@s2`);
    const inventory = await vector.inventory({ roots: [prefix] }).catch((e: unknown) => e);
    // The inventory's zpool call is not a vector command; the guard refuses it as a whole.
    expect(inventory).toBeInstanceOf(ZfsError);
    const got = await vector.run(['zfs', 'get', '-H', '-p', '-o', 'name,value', 'guid', `${prefix}/data@s2`]);
    expect(got.stdout).toMatch(new RegExp(`^${prefix}/data@s2\\t\\d+\\n$`));
    await vector.hold(tag, [`${prefix}/data@s2`]);
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', `${prefix}/data@s2`])).trim()).toBe('1');
    // Another tag (the operator's, or another vector's) can be neither placed nor released with this key.
    await operatorOnSecondary.hold('operator-keep', [`${prefix}/data@s2`]);
    await expect(vector.release('operator-keep', [`${prefix}/data@s2`])).rejects.toMatchObject({ kind: 'permissionDenied' });
    await expect(vector.hold('bdr:vector:ns:other', [`${prefix}/data@s1`])).rejects.toMatchObject({ kind: 'permissionDenied' });
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', `${prefix}/data@s2`])).trim()).toBe('2');
    await vector.release(tag, [`${prefix}/data@s2`]);
    await operatorOnSecondary.release('operator-keep', [`${prefix}/data@s2`]);
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', `${prefix}/data@s2`])).trim()).toBe('0');
  });

  it('refuses a shell, destroy, other datasets and receive outside the prefix or into another replica below it', async () => {
    await useLeaf('data');
    const refused = async (argv: string[]): Promise<string> => {
      const r = await connected().exec(argv);
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      return r.stderr;
    };
    expect(await refused(['sh'])).toMatch(/bdr-guard: refused: only zfs/);
    expect(await refused(['sh', '-c', 'id'])).toMatch(/bdr-guard: refused/);
    expect(await refused(['zfs', 'destroy', `${prefix}/data@s1`])).toMatch(/zfs destroy is not allowed/);
    expect(await refused(['zfs', 'destroy', '-r', prefix])).toMatch(/zfs destroy is not allowed/);
    expect(await refused(['zfs', 'list', '-H', '-o', 'name', targetPool.name])).toMatch(/outside/);
    expect(await refused(['zfs', 'list', '-H', '-o', 'name'])).toMatch(/must name datasets/);
    expect(await refused(['zfs', 'get', 'all', `${targetPool.name}/private`])).toMatch(/outside/);
    expect(await refused(['zfs', 'list', '-H', `${prefix}/../private`])).toMatch(/outside/);
    expect(await refused(['zfs', 'receive', `${prefix}/x;id`])).toMatch(/characters outside/);
    // A stream's mountpoint property must never take effect on the storage server.
    expect(await refused(['zfs', 'receive', `${prefix}/data`])).toMatch(/must use -u/);
    // Only the replica the entry names: not another one below the prefix, not one inside it.
    expect(await refused(['zfs', 'receive', '-u', `${prefix}/direct`])).toBe(`bdr-guard: refused: receive target ${prefix}/direct is not this key's replica ${prefix}/data\n`);
    expect(await refused(['zfs', 'receive', '-u', `${prefix}/data/inner`])).toMatch(/is not this key's replica/);
    // -F would let a stream destroy the replica's snapshots.
    expect(await refused(['zfs', 'receive', '-u', '-F', `${prefix}/data`])).toMatch(/-F is not allowed/);
    expect(await refused(['zfs', 'receive', '-u', prefix])).toMatch(/itself is not allowed/);
    // Option smuggling: each word is checked on its own, and only the guard adds receive options.
    expect(await refused(['zfs', 'receive', '-u', '-x', 'mountpoint', `${prefix}/x`])).toMatch(/option -x is not allowed/);
    expect(await refused(['zfs', 'receive', '-uF', `${prefix}/x`])).toMatch(/option -uF is not allowed/);
    expect(await refused(['zfs', 'receive', '-u', '-d', prefix])).toMatch(/option -d is not allowed/);
    expect(await refused(['zfs', 'list', '-H', prefix, '-r', targetPool.name])).toMatch(/outside/);
    expect(await refused(['zfs', 'list', '-o', `${targetPool.name}/private`, prefix])).toMatch(/invalid list argument/);
    expect(await refused(['zfs', 'get', '-H', 'all', `${prefix}/-F`])).toMatch(/outside/);
    expect(await refused(['zfs', 'hold', '-r', tag, `${prefix}/data@s1`])).toMatch(/tag -r is not allowed/);
    expect(await refused(['zfs', 'receive', '-u', `${prefix}/x`, '$(id)'])).toMatch(/characters outside/);
    expect(await refused(['zfs', 'set', 'dev.bdr:x=1', prefix])).toMatch(/bdr-guard: refused/);
    expect(await refused(['zfs', 'snapshot', `${prefix}@evil`])).toMatch(/zfs snapshot is not allowed/);
    expect(await names(`${prefix}/data`)).toContain(`${prefix}/data@s1`);
    const forced = await relay(source, { snapshot: `${sourcePool.name}/data@s2`, from: '@s1' }, vector, `${prefix}/data`, { noMount: true, force: true }).catch(
      (e: unknown) => e,
    );
    expect(forced).toMatchObject({ kind: 'permissionDenied' });
    expect(await names(`${prefix}/data`)).toEqual([`${prefix}/data`, `${prefix}/data@s1`, `${prefix}/data@s2`]);

    const outside = `${targetPool.name}/private/stolen`;
    const error = await relay(source, { snapshot: `${sourcePool.name}/data@s1` }, vector, outside, { noMount: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZfsError);
    expect(error).toMatchObject({ kind: 'permissionDenied' });
    expect((error as Error).message).toMatch(/outside/);
    expect((await run(['zfs', 'list', outside])).code).not.toBe(0);
    const sibling = await relay(source, { snapshot: `${sourcePool.name}/data@s1` }, vector, `${prefix}/sibling`, { noMount: true }).catch((e: unknown) => e);
    expect(sibling).toMatchObject({ kind: 'permissionDenied' });
    expect((await run(['zfs', 'list', `${prefix}/sibling`])).code).not.toBe(0);
  });

  it('refuses port forwarding, agent forwarding and a pty, which the operator key may use', async () => {
    const agent = await startAgent(secondary.sshd.dir);
    try {
      const asVector = await rawClient(secondary, vectorKey.privateKey);
      const asOperator = await rawClient(secondary, secondary.operatorKey.privateKey);
      const asVectorWithAgent = await rawClient(secondary, vectorKey.privateKey, agent.socket);
      const asOperatorWithAgent = await rawClient(secondary, secondary.operatorKey.privateKey, agent.socket);
      try {
        await expect(forward(asVector, secondary.sshd.port)).rejects.toThrow(/prohibited|denied|failure/i);
        await expect(forward(asOperator, secondary.sshd.port)).resolves.toMatch(/^SSH-2\.0-OpenSSH/);

        await expect(exec(asVectorWithAgent, `zfs list -H -o name ${prefix}`)).rejects.toThrow(/agent forwarding/i);
        await expect(exec(asOperatorWithAgent, 'echo "$SSH_AUTH_SOCK"')).resolves.toMatch(/\S/);

        await expect(shell(asVector)).rejects.toThrow(/pseudo-terminal|pty/i);
        await expect(exec(asVector, `zfs list -H -o name ${prefix}`)).resolves.toBe(`${prefix}\n`);
      } finally {
        for (const c of [asVector, asOperator, asVectorWithAgent, asOperatorWithAgent]) c.end();
      }
    } finally {
      await agent.stop();
    }
  });

  it('receives a stream that asks to be mounted and shared, and nothing is mounted or shared after zfs mount -a', async () => {
    // The primary (say, compromised) sends its properties: a mountpoint on the storage server, canmount=on,
    // sharenfs=on, setuid=on. Creating it on the primary mounts it there (and fails to share it: no
    // exportfs on this machine), which is the primary's business.
    const evil = `${sourcePool.name}/evil`;
    const mountpoint = join(targetPool.dir, 'evil-mountpoint');
    await run(['zfs', 'create', '-o', `mountpoint=${mountpoint}`, '-o', 'canmount=on', '-o', 'sharenfs=on', '-o', 'setuid=on', '-o', 'exec=on', evil]);
    await runOk(['zfs', 'snapshot', `${evil}@s1`]);
    expect(await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'mountpoint,canmount,sharenfs', evil])).toBe(
      `${mountpoint}\tlocal\non\tlocal\non\tlocal\n`,
    );

    await useLeaf('evil');
    await relay(source, { snapshot: `${evil}@s1`, properties: true }, vector, `${prefix}/evil`, { noMount: true });
    await useLeaf('evil-direct');
    const files = await installVectorIdentity(primary.connect(), {
      dir: join(primary.sshd.dir, 'vectors', 'ns', 'vec1'),
      privateKey: vectorKey.privateKey,
      host: secondary.sshd.host,
      port: secondary.sshd.port,
      hostKey: secondary.sshd.hostKey,
    });
    const route = { host: secondary.sshd.host, port: secondary.sshd.port, user: 'root', ...files };
    await directTransfer(source, { snapshot: `${evil}@s1`, properties: true }, route, `${prefix}/evil-direct`, { noMount: true }, vector);

    for (const replica of [`${prefix}/evil`, `${prefix}/evil-direct`]) {
      // The stream's values arrived (source "received") but the guard's local values win.
      const received = await runOk(['zfs', 'get', '-H', '-o', 'property,value,source', 'mountpoint,canmount,sharenfs,setuid,exec,readonly,dev.bdr:received', replica]);
      expect(received).toBe(
        ['mountpoint\tnone\tlocal', 'canmount\tnoauto\tlocal', 'sharenfs\toff\tlocal', 'setuid\toff\tlocal', 'exec\toff\tlocal', 'readonly\ton\tlocal', `dev.bdr:received\t${tag}\tlocal`, ''].join('\n'),
      );
    }
    const mountAll = await run(['zfs', 'mount', '-a'], { timeoutMs: 120_000 });
    const shareAll = await run(['zfs', 'share', '-a'], { timeoutMs: 120_000 });
    const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' '));
    expect(mounts.filter(([fs = '']) => fs === targetPool.name || fs.startsWith(`${targetPool.name}/`))).toEqual([]);
    // Whatever is mounted at the stream's mountpoint is the primary's own dataset, never the replica.
    expect(mounts.filter(([, at]) => at === mountpoint).map(([fs]) => fs)).not.toContain(`${prefix}/evil`);
    expect(`${mountAll.stderr}${shareAll.stderr}`).not.toContain(targetPool.name);
    const mounted = await runOk(['zfs', 'list', '-H', '-r', '-t', 'filesystem', '-o', 'name,mounted', prefix]);
    expect(mounted.split('\n').filter(Boolean).map((l) => l.split('\t')[1])).toEqual(mounted.split('\n').filter(Boolean).map(() => 'no'));
    expect(mounted).toContain(`${prefix}/evil-direct\tno\n`);
    await runOk(['zfs', 'unmount', evil]).catch(() => undefined);
  });

  it('lets the operator check and re-apply the replica properties over its own connection', async () => {
    const first = await enforceReplicaProperties(operatorOnSecondary, `${prefix}/evil`);
    expect(first).toEqual({ checked: [`${prefix}/evil`], fixed: [], foreignClones: [], marked: [] });
    // Drift: an admin (or a receive that ended before the guard finished) leaves received values in effect.
    await runOk(['zfs', 'inherit', '-S', 'mountpoint', `${prefix}/evil`]);
    await runOk(['zfs', 'set', 'canmount=on', `${prefix}/evil`]);
    const fixed = await enforceReplicaProperties(operatorOnSecondary, `${prefix}/evil`);
    expect(fixed.fixed.map((f) => [f.property, f.now])).toEqual([
      ['canmount', 'noauto'],
      ['mountpoint', 'none'],
    ]);
    expect(fixed.fixed[0]).toMatchObject({ dataset: `${prefix}/evil`, was: 'on', source: 'local' });
    // `inherit -S` brought back what the stream carried: proof that it did carry its mountpoint.
    expect(fixed.fixed[1]).toMatchObject({ was: join(targetPool.dir, 'evil-mountpoint'), source: 'received' });
    expect(await enforceReplicaProperties(operatorOnSecondary, `${prefix}/evil`)).toEqual({ checked: [`${prefix}/evil`], fixed: [], foreignClones: [], marked: [] });
    expect(await runOk(['zfs', 'get', '-H', '-o', 'value', 'canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,zoned', `${prefix}/evil`])).toBe(
      ['noauto', 'none', 'off', 'off', 'on', 'off', 'off', 'off', 'none', 'none', 'off', ''].join('\n'),
    );
  });

  it('re-checks the whole prefix in one listing: sets what is wrong, destroys a foreign clone, marks a receive that bypassed the guard', async () => {
    const counting = new CountingConnection(secondary.connect());
    const operator = new ZfsMachine(counting, { capabilities: await operatorOnSecondary.capabilities() });
    // Everything below the prefix came through the guard: one listing, nothing to do.
    expect(await enforceReplicaProperties(operator, prefix)).toEqual({
      checked: [prefix, `${prefix}/data`, `${prefix}/direct`, `${prefix}/evil`, `${prefix}/evil-direct`],
      fixed: [],
      foreignClones: [],
      marked: [],
    });
    expect(counting.commands).toEqual([
      `zfs get -H -r -o name,property,value,source origin,canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,zoned,dev.bdr:received ${prefix}`,
    ]);
    // A receive that bypassed the guard (as a local pipe does), and a clone of a snapshot outside the prefix.
    await runOk(['sh', '-c', 'zfs send "$1" | zfs receive -u "$2"', 'sh', `${sourcePool.name}/data@s1`, `${prefix}/local`]);
    await runOk(['zfs', 'snapshot', `${targetPool.name}/private@x`]);
    await runOk(['zfs', 'clone', `${targetPool.name}/private@x`, `${prefix}/cloned`]);
    counting.commands.length = 0;
    const check = await enforceReplicaProperties(operator, prefix, { receivedMark: { under: `${prefix}/local`, tag } });
    const inert = ['mountpoint', 'sharenfs', 'sharesmb', 'readonly', 'setuid', 'exec', 'devices', 'reservation', 'refreservation', 'zoned'];
    const values = ['none', 'off', 'off', 'on', 'off', 'off', 'off', 'none', 'none', 'off'];
    // canmount first everywhere, then the rest per file system.
    expect(check.fixed.map((f) => [f.dataset, f.property, f.now])).toEqual([
      [`${prefix}/cloned`, 'canmount', 'noauto'],
      [`${prefix}/local`, 'canmount', 'noauto'],
      ...inert.map((p, i) => [`${prefix}/cloned`, p, values[i]]),
      ...inert.map((p, i) => [`${prefix}/local`, p, values[i]]),
    ]);
    expect(check.fixed[1]).toEqual({ dataset: `${prefix}/local`, property: 'canmount', was: 'on', source: 'default', now: 'noauto' });
    expect(check.fixed[12]).toEqual({ dataset: `${prefix}/local`, property: 'mountpoint', was: 'none', source: `inherited from ${prefix}`, now: 'none' });
    expect(check.marked).toEqual([`${prefix}/local`]);
    expect(check.foreignClones).toEqual([{ dataset: `${prefix}/cloned`, origin: `${targetPool.name}/private@x`, destroyed: true }]);
    expect((await run(['zfs', 'list', `${prefix}/cloned`])).code).not.toBe(0);
    // Nothing depends on the outside snapshot any more.
    await runOk(['zfs', 'destroy', `${targetPool.name}/private@x`]);
    expect(await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'dev.bdr:received', `${prefix}/local`])).toBe(`${tag}\tlocal\n`);
    // The listing, one set per wrong value, one for the mark, then the clone's own origin and its destroy.
    expect(counting.commands).toHaveLength(1 + 22 + 1 + 2);
    expect(counting.commands.slice(-2)).toEqual([`zfs get -H -o value origin ${prefix}/cloned`, `zfs destroy -r ${prefix}/cloned`]);
    counting.commands.length = 0;
    expect((await enforceReplicaProperties(operator, prefix)).fixed).toEqual([]);
    expect(counting.commands).toHaveLength(1);

    // A received property may carry newlines, and so lines that look like the listing's own: here one saying the
    // replica received by hand is a foreign clone, and one naming a file system that does not exist.
    await runOk(['zfs', 'create', `${sourcePool.name}/forge`]);
    const forgedLines = ['x', `${prefix}/local\torigin\t${targetPool.name}/private@gone\t-`, `${prefix}/ghost\tcanmount\ton\treceived`].join('\n');
    await runOk(['zfs', 'set', `dev.bdr:received=${forgedLines}`, `${sourcePool.name}/forge`]);
    await runOk(['zfs', 'snapshot', `${sourcePool.name}/forge@f`]);
    await runOk(['sh', '-c', 'zfs send -p "$1" | zfs receive -u "$2"', 'sh', `${sourcePool.name}/forge@f`, `${prefix}/forged`]);
    const forged = await enforceReplicaProperties(operator, prefix).catch((e: unknown) => e);
    // Everything real was set; what the forged line named could not be, and says so.
    expect(forged).toBeInstanceOf(ZfsError);
    expect((forged as Error).message).toMatch(new RegExp(`^${prefix}: could not make everything inert \\(fixed 11 value\\(s\\)\\): .*${prefix}/ghost`));
    expect(await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'canmount,readonly,zoned', `${prefix}/forged`])).toBe('noauto\tlocal\non\tlocal\noff\tlocal\n');
    // The forged origin made nobody destroy the replica received by hand.
    expect(await runOk(['zfs', 'list', '-H', '-o', 'name', `${prefix}/local`])).toBe(`${prefix}/local\n`);
    await runOk(['zfs', 'destroy', '-r', `${prefix}/forged`]);
    await runOk(['zfs', 'destroy', '-r', `${prefix}/local`]);
  });

  it('stops a receive at the quota of the vector dataset with DestinationFull, on both paths', async () => {
    const MIB = 1024 * 1024;
    expect(await ensureReplicaQuota(operatorOnSecondary, prefix, 8 * MIB)).toBe(true);
    expect(await ensureReplicaQuota(operatorOnSecondary, prefix, 8 * MIB)).toBe(false);
    expect((await replicaSpace(operatorOnSecondary, prefix)).quota).toBe(8 * MIB);
    // The quota is the operator's: the vector key cannot change it (no zfs set, no receive into the prefix).
    const big = `${sourcePool.name}/big`;
    const bigMount = join(sourcePool.dir, 'big');
    await source.createDataset(big, { properties: { mountpoint: bigMount } });
    await runOk(['sh', '-c', 'head -c 12582912 /dev/urandom > "$1/file"', 'sh', bigMount]);
    await source.snapshot([`${big}@s1`]);

    await useLeaf('big');
    const relayed = await relay(source, { snapshot: `${big}@s1` }, vector, `${prefix}/big`, { noMount: true }).catch((e: unknown) => e);
    expect(relayed).toBeInstanceOf(DestinationFull);
    expect(relayed).toMatchObject({ kind: 'noSpace', dataset: `${prefix}/big`, retriable: false });
    const files = await installVectorIdentity(primary.connect(), {
      dir: join(primary.sshd.dir, 'vectors', 'ns', 'vec1'),
      privateKey: vectorKey.privateKey,
      host: secondary.sshd.host,
      port: secondary.sshd.port,
      hostKey: secondary.sshd.hostKey,
    });
    const route = { host: secondary.sshd.host, port: secondary.sshd.port, user: 'root', ...files };
    const direct = await directTransfer(source, { snapshot: `${big}@s1` }, route, `${prefix}/big`, { noMount: true }, vector).catch((e: unknown) => e);
    expect(direct).toBeInstanceOf(DestinationFull);
    expect((await run(['zfs', 'list', `${prefix}/big`])).code).not.toBe(0);
    expect((await replicaSpace(operatorOnSecondary, prefix)).used).toBeLessThan(8 * MIB);

    expect(await ensureReplicaQuota(operatorOnSecondary, prefix, undefined)).toBe(true);
    expect((await replicaSpace(operatorOnSecondary, prefix)).quota).toBeUndefined();
  });

  it('gives the real OpenSSH client no shell and no forwarding (-L, -D, -R), which the operator key has', async () => {
    const ssh = (key: string, ...args: string[]): string[] => [
      'ssh', '-i', key, '-p', String(secondary.sshd.port), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', ...args, 'root@127.0.0.1',
    ];
    // With a pty forced (-tt) sshd refuses the pty; without one the shell request reaches the guard.
    const tty = await run([...ssh(vectorKey.privateKeyPath, '-tt')], { input: 'id\nexit\n' });
    expect(tty.code).not.toBe(0);
    expect(`${tty.stdout}${tty.stderr}`).toMatch(/PTY allocation request failed/);
    expect(`${tty.stdout}${tty.stderr}`).not.toMatch(/uid=/);
    const shell = await run([...ssh(vectorKey.privateKeyPath, '-T')], { input: 'id\nexit\n' });
    expect(shell).toMatchObject({ code: 1, stdout: '' });
    expect(shell.stderr).toMatch(/bdr-guard: refused: no command given/);
    const command = await run([...ssh(vectorKey.privateKeyPath), 'id; sh -i']);
    expect(command).toMatchObject({ code: 1, stdout: '' });
    expect(command.stderr).toMatch(/bdr-guard: refused/);

    const banner = `127.0.0.1:${secondary.sshd.port}`;
    // -L: the client listens, but every channel it opens to the target is refused by sshd.
    const localPort = await freePort();
    const local = startSsh([...ssh(vectorKey.privateKeyPath, '-N', '-L', `${localPort}:${banner}`)]);
    try {
      expect(await throughForward(localPort)).toBe('');
      expect(await eventually(() => (/open failed|prohibited/.test(local.stderr()) ? local.stderr() : undefined), '-L refusal')).toMatch(/prohibited/);
    } finally {
      local.stop();
    }
    // -D: a SOCKS5 connect through the vector key fails the same way.
    const socksPort = await freePort();
    const socks = startSsh([...ssh(vectorKey.privateKeyPath, '-N', '-D', String(socksPort))]);
    try {
      expect(await throughSocks(socksPort, secondary.sshd.port)).not.toMatch(/SSH-2\.0/);
      expect(await eventually(() => (/open failed|prohibited/.test(socks.stderr()) ? socks.stderr() : undefined), '-D refusal')).toMatch(/prohibited/);
    } finally {
      socks.stop();
    }
    // -R: the server refuses the listening request itself.
    const remotePort = await freePort();
    const remote = await run([...ssh(vectorKey.privateKeyPath, '-N', '-o', 'ExitOnForwardFailure=yes', '-R', `${remotePort}:${banner}`)], { timeoutMs: 60_000 });
    expect(remote.code).not.toBe(0);
    expect(remote.stderr).toMatch(/remote port forwarding failed/);
    expect(await reachable(remotePort)).toBe(false);

    // The operator's key on the same sshd forwards fine: it is the entry's restrict that blocks the vector key.
    const operatorPort = await freePort();
    const operator = startSsh([...ssh(secondary.operatorKey.privateKeyPath, '-N', '-L', `${operatorPort}:${banner}`)]);
    try {
      expect(await eventually(async () => ((await throughForward(operatorPort)) || undefined), 'operator forward')).toMatch(/^SSH-2\.0-OpenSSH/);
    } finally {
      operator.stop();
    }
  });

  it('accepts the key only from the from= addresses of its entry', async () => {
    const elsewhere = await generateKeyPair(secondary.sshd.dir, 'vector-elsewhere');
    const ownerElsewhere = 'bdr:vector=ns/elsewhere';
    await authorizeKey(
      secondary.connect(),
      vectorKeyEntry({ publicKey: elsewhere.publicKeyNoComment, owner: ownerElsewhere, prefix, leaf: 'data', guardPath, from: ['10.*'] }),
      secondary.sshd.authorizedKeysPath,
    );
    expect(await readFile(secondary.sshd.authorizedKeysPath, 'utf8')).toContain(`from="10.*" ${elsewhere.publicKeyNoComment} ${ownerElsewhere}\n`);
    const fromLoopback = new SshConnection({ ...secondary.target, privateKey: elsewhere.privateKey });
    try {
      await expect(fromLoopback.exec(['zfs', 'list', '-H', prefix])).rejects.toMatchObject({ kind: 'authenticationFailed' });
    } finally {
      await fromLoopback.close();
    }
    // sshd names the reason: the key matched, the address did not.
    expect(
      await eventually(async () => {
        const log = await readFile(secondary.sshd.logPath, 'utf8');
        return /correct key but not from a permitted host \(host=127\.0\.0\.1, ip=127\.0\.0\.1, required=10\.\*\)/.test(log) ? true : undefined;
      }, 'sshd log of the from= refusal'),
    ).toBe(true);
    // The main entry (from="127.0.0.1") keeps working.
    expect((await connected().exec(['zfs', 'list', '-H', '-o', 'name', prefix])).stdout).toBe(`${prefix}\n`);
    await revokeKey(secondary.connect(), ownerElsewhere, secondary.sshd.authorizedKeysPath);
  });

  it('is revoked by removing its entry: later syncs are declined', async () => {
    await revokeKey(secondary.connect(), owner, secondary.sshd.authorizedKeysPath);
    const revoked = new SshConnection({ ...secondary.target, privateKey: vectorKey.privateKey }, { forcedCommand: true });
    await expect(revoked.exec(['zfs', 'list', '-H', prefix])).rejects.toMatchObject({ kind: 'authenticationFailed' });
  });
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A long-running OpenSSH client this test started; stop() ends it by its own pid. */
function startSsh(argv: string[]): { stderr: () => string; stop: () => void } {
  const [command = 'ssh', ...args] = argv;
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { stderr: () => stderr, stop: () => void child.kill('SIGTERM') };
}

async function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** What comes back through a local forward until the far end closes ('' when the channel was refused). */
async function throughForward(port: number): Promise<string> {
  await eventually(async () => ((await reachable(port)) ? true : undefined), `local port ${port} listening`);
  return new Promise((resolve) => {
    let data = '';
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('data', (d: Buffer) => {
      data += d.toString();
      if (data.includes('\n')) socket.destroy();
    });
    socket.on('close', () => resolve(data));
    socket.on('error', () => undefined);
  });
}

/** A SOCKS5 CONNECT to 127.0.0.1:target through the dynamic forward; everything received after the request. */
async function throughSocks(port: number, target: number): Promise<string> {
  await eventually(async () => ((await reachable(port)) ? true : undefined), `socks port ${port} listening`);
  return new Promise((resolve) => {
    let stage = 0;
    let data = '';
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(Buffer.from([5, 1, 0])));
    socket.on('data', (d: Buffer) => {
      if (stage === 0) {
        stage = 1;
        socket.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, target >> 8, target & 0xff]));
        return;
      }
      data += d.toString('latin1');
      if (data.includes('SSH-2.0')) socket.destroy();
    });
    socket.on('close', () => resolve(data));
    socket.on('error', () => undefined);
  });
}

async function startAgent(dir: string): Promise<{ socket: string; stop: () => Promise<void> }> {
  const socket = join(dir, 'agent.sock');
  const out = await runOk(['ssh-agent', '-s', '-a', socket]);
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1]);
  return {
    socket,
    stop: async () => {
      if (pid > 0) process.kill(pid, 'SIGTERM');
    },
  };
}

function rawClient(machine: TestMachine, privateKey: string, agent?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.once('ready', () => resolve(client));
    client.once('error', reject);
    client.connect({
      host: machine.target.host,
      port: machine.target.port,
      username: 'root',
      privateKey,
      ...(agent !== undefined ? { agent, agentForward: true } : {}),
      hostVerifier: () => true,
    });
  });
}

function forward(client: Client, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    client.forwardOut('127.0.0.1', 40000, '127.0.0.1', port, (err, channel) => {
      if (err) return reject(err);
      channel.once('data', (d: Buffer) => {
        resolve(d.toString());
        channel.close();
      });
    });
  });
}

function drain(channel: ClientChannel): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    channel.on('data', (d: Buffer) => (out += d.toString()));
    channel.stderr.on('data', () => undefined);
    channel.on('close', () => resolve(out));
  });
}

function exec(client: Client, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, channel) => (err ? reject(err) : resolve(drain(channel))));
  });
}

function shell(client: Client): Promise<string> {
  return new Promise((resolve, reject) => {
    client.shell({ term: 'xterm' }, (err, channel) => (err ? reject(err) : resolve(drain(channel))));
  });
}
