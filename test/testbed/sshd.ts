import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateKeyPair } from './keys.ts';
import { ensurePackages } from './packages.ts';
import { runOk, TESTBED_ROOT, TestBedError, uniqueTestName } from './run.ts';

export interface TestSshd {
  readonly port: number;
  readonly host: '127.0.0.1';
  /** "ssh-ed25519 AAAA…": the key to pin in a Machine. */
  readonly hostKey: string;
  readonly dir: string;
  readonly authorizedKeysPath: string;
  readonly configPath: string;
  readonly logPath: string;
  /** Ends the daemon for good (and removes its directory when the test bed made it). */
  stop(): Promise<void>;
  /**
   * Ends the listening daemon but keeps its directory: new connections are refused, as after `systemctl stop
   * ssh`; sessions already open (each its own sshd process) keep running, as they would there.
   */
  pause(): Promise<void>;
  /** Starts the daemon again with the same port, host key, config and authorized_keys; resolves once it answers. */
  resume(): Promise<void>;
  /** The log's current length: a mark for `sessionsSince`. */
  logMark(): Promise<number>;
  /**
   * The log lines, after `mark`, of connections and commands begun after it ("Connection from", "Starting
   * session"). sshd writes each before the client can see that connection or command go anywhere, whereas the
   * lines that close a session ("Received disconnect", "Close session") may land after the client has exited:
   * comparing the whole log's length to say "nothing ran" races with the end of the previous session.
   */
  sessionsSince(mark: number): Promise<string[]>;
}

export interface TestSshdOptions {
  /** Lines appended to the generated sshd_config. */
  extraConfig?: string[];
  /** Directory to use; default a fresh one under the test bed root. */
  dir?: string;
}

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

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('data', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.setTimeout(2_000, () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Starts a private OpenSSH daemon on a free loopback port with its own config, host key, authorized_keys
 * and pid file. It stands in for one machine's sshd; `stop()` ends it.
 */
export async function startSshd(options: TestSshdOptions = {}): Promise<TestSshd> {
  await ensurePackages();
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? join(TESTBED_ROOT, uniqueTestName());
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'owner'), `${process.pid}\n`);
  // sshd refuses to start without its privilege separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKeyPair = await generateKeyPair(dir, 'ssh_host_ed25519_key', 'bdr-test-host');
  const authorizedKeysPath = join(dir, 'authorized_keys');
  await writeFile(authorizedKeysPath, '', { mode: 0o600, flag: 'a' });
  const pidPath = join(dir, 'sshd.pid');
  const logPath = join(dir, 'sshd.log');
  const configPath = join(dir, 'sshd_config');

  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKeyPair.privateKeyPath}`,
      `PidFile ${pidPath}`,
      `AuthorizedKeysFile ${authorizedKeysPath}`,
      'PermitRootLogin prohibit-password',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      // The test directories live below /tmp, which StrictModes would reject as world-writable.
      'StrictModes no',
      'PrintMotd no',
      'PrintLastLog no',
      // Debian's bash sources ~/.bashrc for ssh commands unless it believes it is nested (perf-limits.md).
      'SetEnv SHLVL=1',
      // Forwarding stays allowed server-wide so that tests prove `restrict` is what blocks it.
      'AllowTcpForwarding yes',
      'AllowAgentForwarding yes',
      'X11Forwarding no',
      'MaxSessions 32',
      'MaxStartups 64:30:128',
      'LogLevel VERBOSE',
      ...(options.extraConfig ?? []),
      '',
    ].join('\n');
    await writeFile(configPath, config);
    await runOk(['/usr/sbin/sshd', '-t', '-f', configPath]).catch(async (error: unknown) => {
      if (ownsDir) await rm(dir, { recursive: true, force: true });
      throw error;
    });
    let child = await launch(configPath, logPath, port);
    if (child) {
      return {
        port,
        host: '127.0.0.1',
        hostKey: hostKeyPair.publicKeyNoComment,
        dir,
        authorizedKeysPath,
        configPath,
        logPath,
        stop: async () => {
          if (child) await stopChild(child, pidPath);
          if (ownsDir) await rm(dir, { recursive: true, force: true });
        },
        pause: async () => {
          if (child) await stopChild(child, pidPath);
        },
        resume: async () => {
          if (child && child.exitCode === null && child.signalCode === null) return;
          // The port stays ours while nothing else binds it; a test that lost it would see sshd's log here.
          child = await launch(configPath, logPath, port);
          if (!child) throw new TestBedError(`sshd did not start again on port ${port}: ${await logTail(logPath)}`);
        },
        logMark: async () => (await readFile(logPath)).length,
        sessionsSince: async (mark) =>
          (await readFile(logPath))
            .subarray(mark)
            .toString('utf8')
            .split('\n')
            .filter((l) => /^(Connection from |Starting session: )/.test(l)),
      };
    }
    lastError = await logTail(logPath);
  }
  if (ownsDir) await rm(dir, { recursive: true, force: true });
  throw new TestBedError(`sshd did not start (tried 5 ports); its log says: ${lastError || '(empty)'}`);
}

const logTail = async (logPath: string) => (await readFile(logPath, 'utf8').catch(() => '')).trim().split('\n').slice(-5).join(' | ');

/** Spawns sshd on `port` and waits until it answers; undefined (and no process left) when it exits or hangs. */
async function launch(configPath: string, logPath: string, port: number): Promise<ChildProcess | undefined> {
  const log = await open(logPath, 'a');
  const logStart = (await log.stat()).size;
  const child: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-f', configPath, '-E', logPath], {
    stdio: ['ignore', log.fd, log.fd],
  });
  await log.close();
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  // Another test file's sshd may have been given the same free port a moment earlier: then this one fails to
  // bind and exits, but the port still answers with an SSH banner. Only this daemon's own log line proves that
  // the listener is ours.
  const listening = `Server listening on 127.0.0.1 port ${port}.`;
  const bound = async () => (await readFile(logPath)).subarray(logStart).toString('utf8').includes(listening);
  const deadline = Date.now() + 15_000;
  while (!exited && Date.now() < deadline) {
    if ((await bound()) && !exited && (await accepts(port))) return child;
    await sleep(100);
  }
  if (!exited) child.kill('SIGKILL');
  return undefined;
}

async function stopChild(child: ChildProcess, pidPath: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timeout = sleep(5_000).then(() => 'timeout' as const);
  if ((await Promise.race([exited, timeout])) === 'timeout') child.kill('SIGKILL');
  await writeFile(pidPath, '').catch(() => undefined);
}
