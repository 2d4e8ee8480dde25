import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { findMarker, SshConnection } from '../../nodes/ssh.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { ConnectionPool } from '../../nodes/pool.ts';
import {
  AuthenticationError,
  CommandAbortedError,
  CommandTimeoutError,
  ConnectError,
  HostKeyMismatchError,
  InvalidConnectionConfigError,
} from '../../nodes/errors.ts';
import { privateKeyFromSecret, SecretKeyError } from '../../nodes/secret.ts';
import { fingerprint, parseHostKey } from '../../nodes/host-key.ts';
import { generateKeyPair, TestBed, type TestMachine } from '../testbed/index.ts';
import { eventually } from '../helpers/eventually.ts';

const bed = new TestBed();
let machine: TestMachine;
let other: TestMachine;

beforeAll(async () => {
  [machine, other] = await Promise.all([bed.machine('ssh-a'), bed.machine('ssh-b')]);
});
afterAll(() => bed.cleanup());

/** Writes its pid (that of the sleep it becomes) to $1 once running, then sleeps ten minutes. */
const STARTED_THEN_SLEEP = 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; exec sleep 600';

/** The pid a command wrote to `file`, once it did. */
function pidIn(file: string): number | undefined {
  return existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : undefined;
}

/**
 * Running processes as /proc shows them (the test sshd runs on this host): pid, parent and process group.
 * Zombies are left out: they have ended, and one whose parent died waits for init to reap it.
 */
function processes(): { pid: number; ppid: number; pgrp: number }[] {
  const list: { pid: number; ppid: number; pgrp: number }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') continue;
    list.push({ pid: Number(name), ppid: Number(fields[1]), pgrp: Number(fields[2]) });
  }
  return list;
}

/** Whether a process runs (not ended, not a zombie). */
function isRunning(pid: number): boolean {
  return processes().some((p) => p.pid === pid);
}

/** Ends a sleep STARTED_THEN_SLEEP left behind should the test fail (same host: the test sshd runs here). */
function endSleeper(pidFile: string): void {
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
  } catch {
    // already gone
  }
}

describe('SSH connection', () => {
  it('runs argument arrays verbatim, with stdin, through the remote shell', async () => {
    const c = machine.connect();
    const weird = `it's "$(touch /tmp/pwned)" \`id\` ; | & > * ? ~ \\ $HOME\n\ttab`;
    const r = await c.exec(['sh', '-c', 'cat; printf "[%s]" "$@"', 'sh', weird, ''], { stdin: 'from stdin\n' });
    expect(r).toEqual({ stdout: `from stdin\n[${weird}][]`, stderr: '', code: 0 });
    expect(existsSync('/tmp/pwned')).toBe(false);
    const fail = await c.exec(['sh', '-c', 'echo oops >&2; exit 3']);
    expect(fail).toEqual({ stdout: '', stderr: 'oops\n', code: 3 });
  });

  it('reuses one connection for many commands and bounds concurrent channels', async () => {
    const c = machine.connect({ maxChannels: 3 });
    const log = join(machine.sshd.dir, 'channels.log');
    // Each command appends "+" when it starts and "-" when it ends; the running sum is the concurrency. Each waits
    // until three have started (or 5 s have passed), so the first three overlap however slowly the machine
    // starts them: a bound of 2 would show as a peak of 2, a missing bound as more than 3.
    const wait = 'i=0; while [ "$(grep -c + "$1")" -lt 3 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done';
    await Promise.all(Array.from({ length: 8 }, () => c.exec(['sh', '-c', `echo + >> "$1"; ${wait}; echo - >> "$1"`, 'sh', log])));
    let running = 0;
    let peak = 0;
    for (const mark of (await readFile(log, 'utf8')).split('\n').filter(Boolean)) {
      running += mark === '+' ? 1 : -1;
      peak = Math.max(peak, running);
    }
    expect(peak).toBe(3);
    expect(c.connectCount).toBe(1);
    await c.close();
  });

  it('ends a timed-out command on the machine, and keeps the connection usable', async () => {
    const c = machine.connect();
    // Every command of this connection is a child of its one sshd session process.
    const session = Number((await c.exec(['sh', '-c', 'echo $PPID'])).stdout.trim());
    expect(session).toBeGreaterThan(1);
    const started = join(machine.sshd.dir, `timeout-${process.pid}.started`);
    // The command would run for ten minutes: a rejection with a timeout can only come from the 300 ms
    // timeout (no wall-clock bound needed). sshd forks the command before it confirms the exec request, and
    // ssh2 hands over the channel only on that confirmation, before the timer starts: so "no child of the
    // session left" below is never vacuous, even if the timeout came before the command wrote its pid.
    await expect(c.exec(['sh', '-c', STARTED_THEN_SLEEP, 'sh', started], { timeoutMs: 300 })).rejects.toBeInstanceOf(CommandTimeoutError);
    await eventually(() => (processes().some((p) => p.ppid === session) ? undefined : true), 'the timed-out command to end');
    // If it got as far as writing its pid, that process is gone too.
    const pid = pidIn(started);
    if (pid !== undefined) expect(isRunning(pid)).toBe(false);
    // The connection stays usable after a timeout.
    expect((await c.exec(['echo', 'still here'])).stdout).toBe('still here\n');
  });

  it('ends an aborted command on the machine', async () => {
    const c = machine.connect();
    const controller = new AbortController();
    const started = join(machine.sshd.dir, `abort-${process.pid}.started`);
    const running = c.exec(['sh', '-c', STARTED_THEN_SLEEP, 'sh', started], { signal: controller.signal });
    // Aborted once it really runs on the remote side.
    const pid = await eventually(() => pidIn(started), 'the command to start');
    expect(isRunning(pid)).toBe(true);
    controller.abort();
    try {
      await expect(running).rejects.toBeInstanceOf(CommandAbortedError);
      await eventually(() => (isRunning(pid) ? undefined : true), `the aborted command (pid ${pid}) to end`);
    } finally {
      endSleeper(started);
    }
  });

  it('kills an aborted command that ignores TERM once killAfterMs has passed', async () => {
    const c = machine.connect({ killAfterMs: 200 });
    const controller = new AbortController();
    const started = join(machine.sshd.dir, `stubborn-${process.pid}.started`);
    // An ignored signal stays ignored across exec: the sleep itself ignores TERM.
    const running = c.exec(['sh', '-c', `trap '' TERM; ${STARTED_THEN_SLEEP}`, 'sh', started], { signal: controller.signal });
    const pid = await eventually(() => pidIn(started), 'the command to start');
    const ignored = /^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0';
    expect(BigInt(`0x${ignored}`) & (1n << 14n)).toBe(1n << 14n); // signal 15 (TERM) is bit 14
    controller.abort();
    try {
      await expect(running).rejects.toBeInstanceOf(CommandAbortedError);
      await eventually(() => (isRunning(pid) ? undefined : true), `the stubborn command (pid ${pid}) to end`);
    } finally {
      endSleeper(started);
    }
  });

  it('ends the commands still running when the connection is closed', async () => {
    const c = machine.connect();
    const started = join(machine.sshd.dir, `close-${process.pid}.started`);
    // Its rejection comes while close() runs: caught from the start.
    const outcome = c.exec(['sh', '-c', STARTED_THEN_SLEEP, 'sh', started]).catch((e: unknown) => e);
    const pid = await eventually(() => pidIn(started), 'the command to start');
    expect(isRunning(pid)).toBe(true);
    await c.close();
    try {
      expect(await outcome).toMatchObject({ kind: 'connectionLost' });
      await eventually(() => (isRunning(pid) ? undefined : true), `the command (pid ${pid}) to end`);
    } finally {
      endSleeper(started);
    }
  });

  it('still ends an aborted command when the connection is closed right after the abort', async () => {
    // As an operator shutting down does: its runs are aborted, then its connections closed at once.
    const c = machine.connect();
    const controller = new AbortController();
    const started = join(machine.sshd.dir, `abort-close-${process.pid}.started`);
    const running = c.exec(['sh', '-c', STARTED_THEN_SLEEP, 'sh', started], { signal: controller.signal });
    const pid = await eventually(() => pidIn(started), 'the command to start');
    controller.abort();
    await expect(running).rejects.toBeInstanceOf(CommandAbortedError);
    await c.close();
    try {
      // close() returned only after the kill went out: the command ends without the connection.
      await eventually(() => (isRunning(pid) ? undefined : true), `the aborted command (pid ${pid}) to end`);
    } finally {
      endSleeper(started);
    }
  });

  for (const how of ['abort', 'kill'] as const) {
    it(`ends a streaming command and all it started when ${how === 'abort' ? 'aborted' : 'killed'} mid-stream`, async () => {
      const c = machine.connect();
      const controller = new AbortController();
      const started = join(machine.sshd.dir, `stream-${how}-${process.pid}.started`);
      // A pipeline that streams 1 MiB of zeros and then stalls, as a `zfs send` can: nothing writes any more, so
      // closing the channel alone (no SIGPIPE) would leave every process of it running.
      const stalls = 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; { head -c 1048576 /dev/zero; exec sleep 600; } | cat';
      const cmd = c.spawn(['sh', '-c', stalls, 'sh', started], { signal: controller.signal });
      let bytes = 0;
      let nonZero = false;
      // An aborted stream ends with the abort's error.
      cmd.stdout.on('error', () => undefined);
      await new Promise<void>((resolve) => {
        cmd.stdout.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (chunk.some((b) => b !== 0)) nonZero = true;
          if (bytes === 1 << 20) resolve();
        });
      });
      expect(nonZero).toBe(false);
      // The shell leads its process group (the login shell was exec'd into it), with the sleep and cat in it.
      const group = await eventually(() => pidIn(started), 'the stream to start');
      const members = await eventually(() => {
        const m = processes().filter((p) => p.pgrp === group);
        return m.length >= 3 ? m : undefined;
      }, 'the pipeline to run');
      expect(members.map((p) => p.pid)).toContain(group);
      if (how === 'abort') {
        controller.abort();
        await expect(cmd.done).rejects.toBeInstanceOf(CommandAbortedError);
      } else {
        cmd.kill();
        // TERM to the group: the shell itself ends by it (ssh2 names signals as node does).
        await expect(cmd.done).resolves.toMatchObject({ code: null, signal: 'SIGTERM' });
      }
      await eventually(() => (processes().some((p) => p.pgrp === group) ? undefined : true), `process group ${group} to end`);
    });
  }

  it('passes binary stdout byte for byte and leaves the pid report out of stderr', async () => {
    const c = machine.connect();
    const file = join(machine.sshd.dir, `binary-${process.pid}`);
    const payload = randomBytes(3 * 1024 * 1024);
    writeFileSync(file, payload);
    const cmd = c.spawn(['sh', '-c', 'cat "$1"; echo done >&2', 'sh', file]);
    const chunks: Buffer[] = [];
    cmd.stdout.on('data', (d: Buffer) => chunks.push(d));
    cmd.stdin.end();
    expect(await cmd.done).toEqual({ stdout: '', stderr: 'done\n', code: 0 });
    expect(Buffer.concat(chunks).equals(payload)).toBe(true);
  });

  it('reconnects after the connection drops', async () => {
    const c = machine.connect();
    await c.exec(['true']);
    // Kill this connection's sshd session process from the server side.
    await c.exec(['sh', '-c', 'kill -9 $PPID']).catch(() => undefined);
    const r = await c.exec(['echo', 'again']);
    expect(r.stdout).toBe('again\n');
    expect(c.connectCount).toBe(2);
  });

  it('notices a hung server through keepalive and fails the running command', async () => {
    const c = machine.connect({ keepaliveIntervalMs: 200, keepaliveCountMax: 2 });
    // The sshd process serving this connection (all its channels) is the parent of the remote shell.
    const sessionPid = Number((await c.exec(['sh', '-c', 'echo $PPID'])).stdout.trim());
    expect(sessionPid).toBeGreaterThan(1);
    const started = join(machine.sshd.dir, `keepalive-${process.pid}.started`);
    // Ten minutes: the command cannot end on its own during the test, so only keepalive can fail it.
    const running = c.exec(['sh', '-c', STARTED_THEN_SLEEP, 'sh', started]);
    await expect.poll(() => existsSync(started), { timeout: 30_000 }).toBe(true);
    process.kill(sessionPid, 'SIGSTOP');
    try {
      await expect(running).rejects.toMatchObject({ kind: 'connectionLost' });
    } finally {
      // SIGKILL ends a stopped process too; it may be reaped at once, so nothing more is sent to it.
      process.kill(sessionPid, 'SIGKILL');
      endSleeper(started);
    }
    expect((await c.exec(['echo', 'back'])).stdout).toBe('back\n');
    expect(c.connectCount).toBe(2);
  });

  it('streams stdin to stdout through spawn', async () => {
    const c = machine.connect();
    const cmd = c.spawn(['sh', '-c', 'wc -c']);
    const chunks: Buffer[] = [];
    cmd.stdout.on('data', (d: Buffer) => chunks.push(d));
    const payload = Buffer.alloc(5 * 1024 * 1024, 7);
    cmd.stdin.end(payload);
    const result = await cmd.done;
    expect(result.code).toBe(0);
    expect(Buffer.concat(chunks).toString().trim()).toBe(String(payload.length));
  });

  it('refuses a host-key mismatch before anything runs', async () => {
    const marker = join(machine.sshd.dir, 'must-not-exist');
    const c = new SshConnection({ ...machine.target, hostKey: other.sshd.hostKey });
    const error = await c.exec(['touch', marker]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HostKeyMismatchError);
    const pinned = parseHostKey(other.sshd.hostKey);
    const actual = parseHostKey(machine.sshd.hostKey);
    if (typeof pinned === 'string' || typeof actual === 'string') throw new Error('bad test keys');
    expect(error).toMatchObject({ expectedFingerprint: pinned.fingerprint, actualFingerprint: fingerprint(actual.blob), retriable: false });
    expect(existsSync(marker)).toBe(false);
    // The server never saw an authentication attempt from this client.
    const log = await readFile(machine.sshd.logPath, 'utf8');
    const accepted = log.split('\n').filter((l) => /Accepted publickey/.test(l)).length;
    await machine.connect().exec(['true']);
    const after = (await readFile(machine.sshd.logPath, 'utf8')).split('\n').filter((l) => /Accepted publickey/.test(l)).length;
    expect(after).toBe(accepted + 1);
    await c.close();
  });

  it('reports an unknown key as an authentication failure and a closed port as a connect failure', async () => {
    const stranger = await generateKeyPair(machine.sshd.dir, 'stranger');
    const denied = new SshConnection({ ...machine.target, privateKey: stranger.privateKey });
    await expect(denied.exec(['true'])).rejects.toBeInstanceOf(AuthenticationError);
    const closed = new SshConnection({ ...machine.target, port: 1 }, { connectAttempts: 2, backoffInitialMs: 10 });
    await expect(closed.exec(['true'])).rejects.toBeInstanceOf(ConnectError);
  });

  it('takes the private key from a Secret and keeps it out of error messages', async () => {
    const key = privateKeyFromSecret(machine.secret);
    const c = new SshConnection({ ...machine.target, privateKey: key });
    expect((await c.exec(['echo', 'ok'])).stdout).toBe('ok\n');
    await c.close();
    const garbage = '-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n';
    const broken = new SshConnection({ ...machine.target, privateKey: garbage });
    const error = await broken.exec(['true']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidConnectionConfigError);
    expect(String((error as Error).message)).not.toContain('c2VjcmV0');
    expect(() => privateKeyFromSecret({ metadata: { name: 's' }, data: {} })).toThrow(SecretKeyError);
    expect(() => privateKeyFromSecret({ data: { 'ssh-privatekey': Buffer.from('not a key').toString('base64') } })).toThrow(
      /does not hold a PEM/,
    );
  });

  it('rejects a malformed pinned host key at construction', () => {
    expect(() => new SshConnection({ ...machine.target, hostKey: 'ssh-ed25519 notbase64!' })).toThrow(InvalidConnectionConfigError);
    const rsaBlobAsEd = machine.sshd.hostKey.replace('ssh-ed25519', 'ssh-rsa');
    expect(() => new SshConnection({ ...machine.target, hostKey: rsaBlobAsEd })).toThrow(/does not contain a ssh-rsa key/);
  });
});

describe('connection pool', () => {
  it('keeps one connection per machine while its spec is unchanged and replaces it when the Secret changes', async () => {
    const pool = new ConnectionPool();
    const spec = { type: 'ssh' as const, ...machine.target };
    const first = pool.get('default/ssh-a', spec);
    await first.exec(['true']);
    expect(pool.get('default/ssh-a', { ...spec })).toBe(first);
    const rotated = await generateKeyPair(machine.sshd.dir, 'rotated');
    const second = pool.get('default/ssh-a', { ...spec, privateKey: rotated.privateKey });
    expect(second).not.toBe(first);
    await expect(first.exec(['true'])).rejects.toMatchObject({ kind: 'connectionLost' });
    expect(pool.get('local', { type: 'local' })).toBeInstanceOf(LocalConnection);
    expect(pool.size).toBe(2);
    await pool.closeAll();
    expect(pool.size).toBe(0);
  });
});

describe('pid report on stderr', () => {
  it('is found after any noise a login shell prints first, and only its own line is cut out', () => {
    // Noise that cannot itself contain a marker line: no "bdr-pid:" at a line start.
    const noise = fc.string({ unit: 'binary-ascii', maxLength: 200 }).filter((t) => !/(^|\n)bdr-pid:/.test(t));
    fc.assert(
      fc.property(noise, fc.integer({ min: 1, max: 4_194_304 }), fc.string({ unit: 'binary-ascii', maxLength: 200 }), (before, pid, after) => {
        const lead = before === '' || before.endsWith('\n') ? before : `${before}\n`;
        const stderr = Buffer.from(`${lead}bdr-pid:${pid}\n${after}`, 'latin1');
        const found = findMarker(stderr);
        expect(found).toEqual({ pid, start: lead.length, end: lead.length + `bdr-pid:${pid}\n`.length });
      }),
    );
  });

  it('is not found in an incomplete line or in the middle of one', () => {
    expect(findMarker(Buffer.from('bdr-pid:12'))).toBeUndefined();
    expect(findMarker(Buffer.from('x bdr-pid:12\n'))).toBeUndefined();
    expect(findMarker(Buffer.from('bdr-pid:\n'))).toBeUndefined();
  });
});
