import { join } from 'node:path';
import { Client, type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeKey, revokeKey } from '../../nodes/authorized-keys.ts';
import { installGuard, vectorKeyEntry } from '../../nodes/guard.ts';
import { SshConnection } from '../../nodes/ssh.ts';
import { installVectorIdentity } from '../../nodes/identity.ts';
import { directTransfer, relay, ZfsError, ZfsMachine } from '../../zfs/index.ts';
import { generateKeyPair, run, runOk, TestBed, type KeyPair, type TestMachine, type TestPool } from '../testbed/index.ts';

/**
 * A vector's key on the secondary: forced through the guard, it may receive, list, get, hold and release
 * under the vector's prefix and nothing else.
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
let vectorConnection: SshConnection;
const owner = 'bdr:vector=ns/vec1';

beforeAll(async () => {
  [primary, secondary, sourcePool, targetPool] = await Promise.all([bed.machine('primary'), bed.machine('secondary'), bed.pool(), bed.pool()]);
  source = new ZfsMachine(primary.connect());
  operatorOnSecondary = new ZfsMachine(secondary.connect());
  prefix = `${targetPool.name}/replicas/vec1`;
  await operatorOnSecondary.createDataset(prefix, { parents: true });
  await operatorOnSecondary.createDataset(`${targetPool.name}/private`);
  await source.createDataset(`${sourcePool.name}/data`);
  await source.snapshot([`${sourcePool.name}/data@s1`]);
  await source.snapshot([`${sourcePool.name}/data@s2`]);

  vectorKey = await generateKeyPair(secondary.sshd.dir, 'vector');
  const guardPath = await installGuard(secondary.connect(), { path: join(secondary.sshd.dir, 'bin', 'zfs-guard') });
  await authorizeKey(
    secondary.connect(),
    vectorKeyEntry({ publicKey: vectorKey.publicKeyNoComment, owner, prefix, guardPath }),
    secondary.sshd.authorizedKeysPath,
  );
  // The guard parses the request itself: command lines go out bare (no pid wrapper).
  vectorConnection = new SshConnection({ ...secondary.target, privateKey: vectorKey.privateKey }, { forcedCommand: true });
  // Behind the guard `zfs -?` is refused, so the vector side reuses the operator's probe.
  vector = new ZfsMachine(vectorConnection, { capabilities: await operatorOnSecondary.capabilities() });
});
afterAll(() => bed.cleanup());

async function names(root: string): Promise<string[]> {
  const r = await runOk(['zfs', 'list', '-H', '-r', '-t', 'all', '-o', 'name', root]);
  return r.split('\n').filter(Boolean);
}

describe('forced-command guard with a vector key', () => {
  it('receives full and incremental streams into the allowed prefix', async () => {
    await relay(source, { snapshot: `${sourcePool.name}/data@s1` }, vector, `${prefix}/data`, { noMount: true });
    await relay(source, { snapshot: `${sourcePool.name}/data@s2`, from: '@s1' }, vector, `${prefix}/data`, { noMount: true });
    expect(await names(`${prefix}/data`)).toEqual([`${prefix}/data`, `${prefix}/data@s1`, `${prefix}/data@s2`]);
  });

  it('receives over the direct path: the primary OpenSSH client into the guard, the stream bypassing bdr', async () => {
    const files = await installVectorIdentity(primary.connect(), {
      dir: join(primary.sshd.dir, 'vectors', 'ns', 'vec1'),
      privateKey: vectorKey.privateKey,
      host: secondary.sshd.host,
      port: secondary.sshd.port,
      hostKey: secondary.sshd.hostKey,
    });
    const route = { host: secondary.sshd.host, port: secondary.sshd.port, user: 'root', ...files };
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
    await vector.hold('bdr-vec1', [`${prefix}/data@s2`]);
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', `${prefix}/data@s2`])).trim()).toBe('1');
    await vector.release('bdr-vec1', [`${prefix}/data@s2`]);
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', `${prefix}/data@s2`])).trim()).toBe('0');
  });

  it('refuses a shell, destroy, other datasets and receive outside the prefix', async () => {
    const refused = async (argv: string[]): Promise<string> => {
      const r = await vectorConnection.exec(argv);
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
    expect(await refused(['zfs', 'receive', `${prefix}/mounted`])).toMatch(/must use -u/);
    expect(await refused(['zfs', 'receive', '-F', `${prefix}/mounted`])).toMatch(/must use -u/);
    expect(await refused(['zfs', 'set', 'dev.bdr:x=1', prefix])).toMatch(/bdr-guard: refused/);
    expect(await refused(['zfs', 'snapshot', `${prefix}@evil`])).toMatch(/zfs snapshot is not allowed/);
    expect(await names(`${prefix}/data`)).toContain(`${prefix}/data@s1`);

    const outside = `${targetPool.name}/private/stolen`;
    const error = await relay(source, { snapshot: `${sourcePool.name}/data@s1` }, vector, outside, { noMount: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZfsError);
    expect(error).toMatchObject({ kind: 'permissionDenied' });
    expect((error as Error).message).toMatch(/outside/);
    expect((await run(['zfs', 'list', outside])).code).not.toBe(0);
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

  it('is revoked by removing its entry: later syncs are declined', async () => {
    await revokeKey(secondary.connect(), owner, secondary.sshd.authorizedKeysPath);
    const revoked = new SshConnection({ ...secondary.target, privateKey: vectorKey.privateKey }, { forcedCommand: true });
    await expect(revoked.exec(['zfs', 'list', '-H', prefix])).rejects.toMatchObject({ kind: 'authenticationFailed' });
  });
});

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
