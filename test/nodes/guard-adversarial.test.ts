import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorizeKey } from '../../nodes/authorized-keys.ts';
import { guardOptions, installGuard, vectorHoldTag, vectorKeyEntry } from '../../nodes/guard.ts';
import { ZfsMachine } from '../../zfs/index.ts';
import { generateKeyPair, run, runOk, TestBed, type KeyPair, type TestMachine, type TestPool } from '../testbed/index.ts';

/**
 * Crafted streams from a compromised primary, fed through the real guard by the real sshd with a vector key
 * (`restrict,command="<guard> <prefix> <tag> <leaf>"`, rendered by vectorKeyEntry). Whatever the stream and
 * however the receive ends, everything at or below the prefix is inert afterwards (not mounted by `zfs mount -a`,
 * not shared, no setuid/exec/devices, no reservation), the receive reaches only the key's own replica, and nothing
 * outside the prefix changes. All on zfs-fuse, the guard's "set" variant (zfs-fuse has no `receive -o`).
 */
const bed = new TestBed();
let secondary: TestMachine;
let sourcePool: TestPool;
let targetPool: TestPool;
let vectorKey: KeyPair;
let guardPath: string;
let prefix: string;
let otherReplica: string;
let evilMountpoint: string;
let replicationStream: Buffer;
/** Bytes of the replication stream up to the end of its first file system (the parent), plus half the child's. */
let cutAt: number;
let firstFileSystemEnd: number;
let cloneStream: Buffer;
let forgedStream: Buffer;
const owner = 'bdr:vector=ns/adversary';
const tag = vectorHoldTag(owner);

beforeAll(async () => {
  [secondary, sourcePool, targetPool] = await Promise.all([bed.machine('secondary'), bed.pool(), bed.pool()]);
  prefix = `${targetPool.name}/replicas/vec`;
  otherReplica = `${targetPool.name}/replicas/other/data`;
  await runOk(['zfs', 'create', '-p', '-o', 'canmount=off', prefix]);

  // The replication stream: a parent and a child that ask for everything a replica must not have. The source is
  // mounted while the files are written, then unmounted (mountpoint=none) so that the stream's mountpoint is an
  // empty directory: a replica mounted there by mistake would show in /proc/mounts.
  const src = `${sourcePool.name}/evil`;
  evilMountpoint = join(sourcePool.dir, 'evil-mountpoint');
  // Creating a shared file system runs exportfs, which this machine lacks: the dataset is made all the same.
  await run(['zfs', 'create', '-o', `mountpoint=${evilMountpoint}`, '-o', 'canmount=on', '-o', 'setuid=on', '-o', 'exec=on', '-o', 'devices=on',
    '-o', 'sharenfs=on', '-o', 'reservation=1M', '-o', 'refreservation=2M', src]);
  await run(['zfs', 'create', '-o', 'canmount=on', '-o', 'reservation=1M', `${src}/kid`]);
  await runOk(['sh', '-c', 'head -c 1048576 /dev/urandom > "$1/a" && head -c 1048576 /dev/urandom > "$1/kid/b"', 'sh', evilMountpoint]);
  await runOk(['zfs', 'snapshot', '-r', `${src}@s1`]);
  replicationStream = await streamOf(['zfs', 'send', '-R', `${src}@s1`]);
  // A replication stream is the package header, then each file system's own full stream, parent first.
  const kidBytes = (await streamOf(['zfs', 'send', `${src}/kid@s1`])).length;
  firstFileSystemEnd = replicationStream.length - kidBytes;
  cutAt = firstFileSystemEnd + Math.floor(kidBytes / 2);
  await runOk(['zfs', 'set', 'mountpoint=none', src]);

  // Another vector's replica outside the prefix, and a clone stream whose base has the guid of its snapshot.
  await runOk(['zfs', 'create', `${sourcePool.name}/other`]);
  await runOk(['zfs', 'snapshot', `${sourcePool.name}/other@s`]);
  await runOk(['zfs', 'clone', `${sourcePool.name}/other@s`, `${sourcePool.name}/clone`]);
  await runOk(['zfs', 'snapshot', `${sourcePool.name}/clone@t`]);
  await runOk(['zfs', 'create', '-p', '-o', 'canmount=off', `${targetPool.name}/replicas/other`]);
  await runOk(['sh', '-c', 'zfs send "$1" | zfs receive -u "$2"', 'sh', `${sourcePool.name}/other@s`, otherReplica]);
  cloneStream = await streamOf(['zfs', 'send', '-i', `${sourcePool.name}/other@s`, `${sourcePool.name}/clone@t`]);

  // A received user property may hold newlines: this one carries lines that look like the guard's own listing.
  await runOk(['zfs', 'create', `${sourcePool.name}/forge`]);
  const forged = ['x', `${prefix}/forged\torigin\t${otherReplica}@s\t-`, `${prefix}/forged\tcanmount\tnoauto\tlocal`].join('\n');
  await runOk(['zfs', 'set', `dev.bdr:received=${forged}`, `${sourcePool.name}/forge`]);
  await runOk(['zfs', 'snapshot', `${sourcePool.name}/forge@s1`]);
  forgedStream = await streamOf(['zfs', 'send', '-p', `${sourcePool.name}/forge@s1`]);

  vectorKey = await generateKeyPair(secondary.sshd.dir, 'vector');
  const capabilities = await new ZfsMachine(secondary.connect()).capabilities();
  guardPath = await installGuard(secondary.connect(), { path: join(secondary.sshd.dir, 'bin', 'zfs-guard'), ...guardOptions(capabilities) });
}, 300_000);
afterAll(() => bed.cleanup());

/** A command's whole stdout as bytes (a stream). */
function streamOf(argv: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const [command = '', ...args] = argv;
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${argv.join(' ')}: exit ${code}: ${stderr}`))));
  });
}

/** The key's entry, naming `leaf` as the one replica it may receive into. */
async function authorize(leaf: string): Promise<void> {
  await authorizeKey(
    secondary.connect(),
    vectorKeyEntry({ publicKey: vectorKey.publicKeyNoComment, owner, prefix, leaf, guardPath, from: ['127.0.0.1'] }),
    secondary.sshd.authorizedKeysPath,
  );
}

interface Session {
  child: ChildProcessWithoutNullStreams;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** The primary's OpenSSH client with the vector key, asking for `command`; its stdin is the stream. */
function openSession(command: string): Session {
  const child = spawn('ssh', [
    '-i', vectorKey.privateKeyPath, '-p', String(secondary.sshd.port), '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', 'root@127.0.0.1', command,
  ]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // The far end may stop reading before the stream ends (a refusal, a failed receive).
  child.stdin.on('error', () => undefined);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

async function throughGuard(command: string, stream: Buffer = Buffer.alloc(0)) {
  const session = openSession(command);
  session.child.stdin.end(stream);
  return session.done;
}

/** Polls `check` until it holds; the test's own timeout is the only bound. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 100));
}

const exists = async (name: string) => (await run(['zfs', 'list', '-H', '-o', 'name', name])).code === 0;

async function names(root: string): Promise<string[]> {
  return (await runOk(['zfs', 'list', '-H', '-r', '-t', 'all', '-o', 'name', root])).split('\n').filter(Boolean);
}

/** Everything outside the prefix that a stream must not touch: each dataset's and snapshot's identity, holds and properties. */
async function outside(): Promise<string> {
  const listing = await runOk(['zfs', 'get', '-H', '-r', '-o', 'name,property,value,source',
    'type,guid,origin,userrefs,canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,quota,zoned,dev.bdr:received',
    targetPool.name]);
  return listing.split('\n').filter((l) => !(l.startsWith(`${prefix}\t`) || l.startsWith(`${prefix}/`) || l.startsWith(`${prefix}@`))).join('\n');
}

/** The guard's processes for `leaf`: /bin/sh running the guard script with the key's three arguments. */
async function guardProcesses(leaf: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = await readFile(`/proc/${entry}/cmdline`, 'utf8').then((c) => c.split('\0').filter(Boolean), (): string[] => []);
    if (argv.includes(guardPath) && argv.slice(-3).join(' ') === `${prefix} ${tag} ${leaf}`) found.push(Number(entry));
  }
  return found;
}

async function processGroup(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // "pid (comm) state ppid pgrp …": comm may hold spaces, so fields are counted after its closing parenthesis.
  const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  if (!Number.isInteger(pgrp) || pgrp <= 1) throw new Error(`no process group for ${pid}: ${stat}`);
  return pgrp;
}

/** Whether `pid` is still the guard for `leaf` (not ended, and not a new process with a reused id). */
async function stillGuard(pid: number, leaf: string): Promise<boolean> {
  return (await guardProcesses(leaf)).includes(pid);
}

/**
 * The forced values as they must read at every file system at or below the prefix (written out by hand for
 * zfs-fuse, which has zoned but no overlay, SELinux contexts or keylocation), and the ownership mark on what
 * the key received.
 */
const INERT = [
  ['mountpoint', 'none'],
  ['sharenfs', 'off'],
  ['sharesmb', 'off'],
  ['readonly', 'on'],
  ['setuid', 'off'],
  ['exec', 'off'],
  ['devices', 'off'],
  ['reservation', 'none'],
  ['refreservation', 'none'],
  ['zoned', 'off'],
] as const;

function expectedListing(received: readonly string[]): string {
  const lines: string[] = [];
  for (const name of [prefix, ...received]) {
    lines.push(`${name}\tcanmount\t${name === prefix ? 'off' : 'noauto'}\tlocal`);
    for (const [property, value] of INERT) lines.push(`${name}\t${property}\t${value}\tlocal`);
    lines.push(name === prefix ? `${name}\tdev.bdr:received\t-\t-` : `${name}\tdev.bdr:received\t${tag}\tlocal`);
  }
  return `${lines.join('\n')}\n`;
}

async function listing(): Promise<string> {
  const got = await runOk(['zfs', 'get', '-H', '-r', '-o', 'name,property,value,source',
    'canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,zoned,dev.bdr:received', prefix]);
  return got.split('\n').filter((l) => l !== '' && !l.split('\t')[0]?.includes('@')).map((l) => `${l}\n`).join('');
}

/** Nothing of the target pool is mounted, not even after `zfs mount -a` and `zfs share -a`. */
async function expectNothingMounted(): Promise<void> {
  const mountedNow = async () =>
    (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')).filter(([fs = '', at = '']) => fs.startsWith(`${targetPool.name}/`) || at === evilMountpoint || at.startsWith(`${evilMountpoint}/`));
  expect(await mountedNow()).toEqual([]);
  const mountAll = await run(['zfs', 'mount', '-a'], { timeoutMs: 300_000 });
  const shareAll = await run(['zfs', 'share', '-a'], { timeoutMs: 300_000 });
  expect(`${mountAll.stderr}${shareAll.stderr}`).not.toContain(targetPool.name);
  expect(await mountedNow()).toEqual([]);
  const mounted = await runOk(['zfs', 'get', '-H', '-r', '-o', 'name,value', 'mounted', prefix]);
  expect(mounted.split('\n').filter((l) => l !== '' && !l.includes('@')).every((l) => l.endsWith('\tno'))).toBe(true);
}

// One zfs-fuse daemon serves every test worker on this machine: under load a command can wait a long time.
describe('the guard fails closed against crafted streams', { timeout: 600_000 }, () => {
  it('a replication stream cut after its first file system leaves that one received, and inert', async () => {
    await authorize('cut');
    const before = await outside();
    const cut = await throughGuard(`zfs receive -u ${prefix}/cut`, replicationStream.subarray(0, cutAt));
    // The receive's own failure is reported; making the prefix inert did not fail.
    expect(cut.code).not.toBe(0);
    expect(cut.stderr).not.toContain('bdr-guard');
    // The cut fell inside the child: the parent is complete, the child is not there.
    expect(cutAt).toBeGreaterThan(firstFileSystemEnd);
    expect(await names(`${prefix}/cut`)).toEqual([`${prefix}/cut`, `${prefix}/cut@s1`]);
    // The parent's values arrived (ZFS keeps them as received values), but the guard's local values win.
    const received = await runOk(['zfs', 'get', '-H', '-o', 'property,value,received,source', 'canmount,mountpoint,setuid,exec,devices,sharenfs,reservation,refreservation', `${prefix}/cut`]);
    expect(received).toBe([
      'canmount\tnoauto\ton\tlocal',
      `mountpoint\tnone\t${evilMountpoint}\tlocal`,
      'setuid\toff\ton\tlocal',
      'exec\toff\ton\tlocal',
      'devices\toff\ton\tlocal',
      'sharenfs\toff\ton\tlocal',
      'reservation\tnone\t1M\tlocal',
      'refreservation\tnone\t2M\tlocal',
      '',
    ].join('\n'));
    expect(await listing()).toBe(expectedListing([`${prefix}/cut`]));
    await expectNothingMounted();
    expect(await outside()).toBe(before);
  });

  it('the same stream complete: parent and child received, both inert and marked', async () => {
    await authorize('full');
    const before = await outside();
    const full = await throughGuard(`zfs receive -u ${prefix}/full`, replicationStream);
    expect(full).toMatchObject({ code: 0, stderr: '' });
    expect(await names(`${prefix}/full`)).toEqual([`${prefix}/full`, `${prefix}/full@s1`, `${prefix}/full/kid`, `${prefix}/full/kid@s1`]);
    expect(await listing()).toBe(expectedListing([`${prefix}/cut`, `${prefix}/full`, `${prefix}/full/kid`]));
    await expectNothingMounted();
    expect(await outside()).toBe(before);
  });

  it('refuses a receive into a sibling below the prefix, deeper than the replica, or into the prefix itself', async () => {
    await authorize('allowed');
    const before = await outside();
    const inside = await names(prefix);
    for (const [target, message] of [
      [`${prefix}/sibling`, `receive target ${prefix}/sibling is not this key's replica ${prefix}/allowed`],
      [`${prefix}/cut`, `receive target ${prefix}/cut is not this key's replica ${prefix}/allowed`],
      [`${prefix}/allowed/deeper`, `receive target ${prefix}/allowed/deeper is not this key's replica ${prefix}/allowed`],
      [`${prefix}/allowedx`, `receive target ${prefix}/allowedx is not this key's replica ${prefix}/allowed`],
      [prefix, `zfs receive into ${prefix} itself is not allowed; replicas go below it`],
      [`${prefix}@s1`, `zfs receive into ${prefix} itself is not allowed; replicas go below it`],
    ] as const) {
      const r = await throughGuard(`zfs receive -u ${target}`, replicationStream);
      expect({ target, code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ target, code: 1, stdout: '', stderr: `bdr-guard: refused: ${message}\n` });
    }
    const abort = await throughGuard(`zfs receive -A ${prefix}/sibling`);
    expect(abort.stderr).toBe(`bdr-guard: refused: receive target ${prefix}/sibling is not this key's replica ${prefix}/allowed\n`);
    expect(await names(prefix)).toEqual(inside);
    expect(await outside()).toBe(before);
  });

  it('refuses a clone stream whose base is another replica\'s snapshot: the clone is destroyed, the snapshot not pinned', async () => {
    await authorize('clone');
    const before = await outside();
    const r = await throughGuard(`zfs receive -u ${prefix}/clone`, cloneStream);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`bdr-guard: refused: ${prefix}/clone is a clone of ${otherReplica}@s outside ${prefix}; it was destroyed\n`);
    expect(await exists(`${prefix}/clone`)).toBe(false);
    expect(await outside()).toBe(before);
    await expectNothingMounted();
    // Nothing depends on the other replica's snapshot any more: it can be destroyed.
    await runOk(['zfs', 'destroy', `${otherReplica}@s`]);
    expect(await names(otherReplica)).toEqual([otherReplica]);
  });

  it('reads its listing as untrusted: lines forged in a received property neither destroy the replica nor hide a value', async () => {
    await authorize('forged');
    const before = await outside();
    const r = await throughGuard(`zfs receive -u ${prefix}/forged`, forgedStream);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(await names(`${prefix}/forged`)).toEqual([`${prefix}/forged`, `${prefix}/forged@s1`]);
    // The mark is the guard's, set locally over the forged received value.
    expect(await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'dev.bdr:received', `${prefix}/forged`])).toBe(`${tag}\tlocal\n`);
    expect(await listing()).toBe(expectedListing([`${prefix}/cut`, `${prefix}/forged`, `${prefix}/full`, `${prefix}/full/kid`]));
    expect(await outside()).toBe(before);
  });

  it('SIGTERM to the guard\'s session mid-receive: the receive ends, the guard makes the prefix inert, then exits with its status', async () => {
    await authorize('killed');
    const before = await outside();
    const session = openSession(`zfs receive -u ${prefix}/killed`);
    // The first file system whole, the child half: the stream then stalls with the connection open.
    session.child.stdin.write(replicationStream.subarray(0, cutAt));
    await until(() => exists(`${prefix}/killed/kid`));
    const [guard, ...more] = await guardProcesses('killed');
    expect(guard).toBeDefined();
    expect(more).toEqual([]);
    // As systemd stops a session: every process of its group (the guard and its zfs receive).
    process.kill(-(await processGroup(guard ?? 0)), 'SIGTERM');
    const result = await session.done;
    session.child.stdin.destroy();
    await until(async () => !(await stillGuard(guard ?? 0, 'killed')));
    // zfs receive was killed by SIGTERM (128 + 15); the guard reports that status after making the tree inert.
    expect(result.code).toBe(143);
    expect(result.stderr).not.toContain('bdr-guard');
    // zfs-fuse's daemon drops the half-received child once its stream is closed.
    await until(async () => !(await exists(`${prefix}/killed/kid`)));
    expect(await names(`${prefix}/killed`)).toEqual([`${prefix}/killed`, `${prefix}/killed@s1`]);
    expect(await listing()).toBe(expectedListing([`${prefix}/cut`, `${prefix}/forged`, `${prefix}/full`, `${prefix}/full/kid`, `${prefix}/killed`]));
    await expectNothingMounted();
    expect(await outside()).toBe(before);
  });

  it('the client disconnecting mid-receive: the guard still makes the prefix inert before it ends', async () => {
    await authorize('dropped');
    const before = await outside();
    const session = openSession(`zfs receive -u ${prefix}/dropped`);
    session.child.stdin.write(replicationStream.subarray(0, cutAt));
    await until(() => exists(`${prefix}/dropped/kid`));
    const [guard] = await guardProcesses('dropped');
    expect(guard).toBeDefined();
    // The primary goes away: its ssh client (this test's own child) is killed, the connection drops.
    session.child.kill('SIGKILL');
    await session.done;
    await until(async () => !(await stillGuard(guard ?? 0, 'dropped')));
    await until(async () => !(await exists(`${prefix}/dropped/kid`)));
    expect(await names(`${prefix}/dropped`)).toEqual([`${prefix}/dropped`, `${prefix}/dropped@s1`]);
    expect(await listing()).toBe(
      expectedListing([`${prefix}/cut`, `${prefix}/dropped`, `${prefix}/forged`, `${prefix}/full`, `${prefix}/full/kid`, `${prefix}/killed`]),
    );
    await expectNothingMounted();
    expect(await outside()).toBe(before);
  });
});
