import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { ExecOptions, ExecResult, NodeConnection, RunningCommand, SpawnOptions } from './connection.ts';
import {
  AuthenticationError,
  CommandAbortedError,
  CommandTimeoutError,
  ConnectError,
  ConnectionLostError,
  HostKeyMismatchError,
  InvalidConnectionConfigError,
  NodeError,
} from './errors.ts';
import { fingerprint, hostKeyAlgorithms, parseHostKey, type PinnedHostKey } from './host-key.ts';
import { Limiter } from './limiter.ts';
import { commandLine } from './quote.ts';

export interface SshTarget {
  host: string;
  port?: number;
  user?: string;
  /** Pinned host key, known_hosts style: "ssh-ed25519 AAAA…". Any other key is refused. */
  hostKey: string;
  /** PEM or OpenSSH private key (see `privateKeyFromSecret`). Never logged. */
  privateKey: string | Buffer;
}

export interface SshOptions {
  /** Channels open at the same time on the one connection (OpenSSH's MaxSessions defaults to 10). */
  maxChannels?: number;
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** Handshake plus authentication must finish within this time. */
  readyTimeoutMs?: number;
  /** Connection attempts per command before giving up, with exponential backoff between them. */
  connectAttempts?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * The key runs a forced command (bdr's guard), which parses the request itself: command lines go out bare,
   * without the wrapper that reports the remote pid, so an aborted command is only sent a signal request and
   * its channel closed (sshd refuses signals to forced commands; a `zfs receive` then ends at its input's EOF).
   */
  forcedCommand?: boolean;
  /** How long an aborted command gets between TERM and KILL, and KILL and closing its channel (default 2 s). */
  killAfterMs?: number;
}

const DEFAULTS: Required<SshOptions> = {
  maxChannels: 8,
  keepaliveIntervalMs: 15_000,
  keepaliveCountMax: 3,
  readyTimeoutMs: 20_000,
  connectAttempts: 4,
  backoffInitialMs: 250,
  backoffMaxMs: 5_000,
  forcedCommand: false,
  killAfterMs: 2_000,
};

/**
 * Why commands do not simply get a signal request when aborted: OpenSSH refuses them for root sessions
 * ("session signalling requires privilege separation") and for forced commands, and closing the channel
 * leaves a process alone until it next writes (a stalled `zfs send` would never end). So the remote login
 * shell first writes this marker and its pid to stderr, then `exec`s the command in its own place. sshd made
 * that shell a session and process group leader (setsid), so `kill -- -PID`, sent over another channel,
 * reaches the command and everything it started (the way sshd's own signal handling uses killpg). stdout is
 * untouched, so binary streams pass as they are; the marker line is removed from stderr.
 */
const PID_MARKER = 'bdr-pid:';
const wrapped = (line: string): string => `echo ${PID_MARKER}$$ >&2; exec ${line}`;
/** Signals process groups (each pid's, or the pid alone if it leads none); processes already gone are no error. */
const KILL_SCRIPT = 'sig=$1; shift; for pid in "$@"; do kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null; done; exit 0';
/** Noise a login shell may print before the marker (rc files) is searched this far, no further. */
const PREAMBLE_MAX = 64 * 1024;

/** A command running on a channel, so that a dropped connection can fail it instead of leaving it hanging. */
interface ActiveCommand {
  channel: ClientChannel;
  fail(error: Error): void;
}

/**
 * Runs commands over one SSH connection per machine (ssh2). The connection opens on first use, verifies the
 * pinned host key before authenticating, is shared by all commands up to `maxChannels` channels, and is
 * reopened with backoff after it drops. Commands that were running when it dropped fail with
 * ConnectionLostError; they are not retried, because their effect on the machine is unknown. A command that
 * times out or is aborted is ended on the machine by its process group (see PID_MARKER).
 */
export class SshConnection implements NodeConnection {
  readonly description: string;
  private readonly options: Required<SshOptions>;
  private readonly pinned: PinnedHostKey;
  private readonly limiter: Limiter;
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private readonly active = new Set<ActiveCommand>();
  /** The `kill` channel in flight: one at a time, so ending many commands never needs many channels. */
  private killing: Promise<void> = Promise.resolve();
  /** Aborted or timed-out commands still being ended: close() waits for them while the connection can carry a kill. */
  private readonly terminating = new Set<Promise<void>>();
  private closed = false;
  /** Connections opened so far; lets tests and metrics see reuse and reconnects. */
  connectCount = 0;

  constructor(
    private readonly target: SshTarget,
    options: SshOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.description = `${target.user ?? 'root'}@${target.host}:${target.port ?? 22}`;
    const pinned = parseHostKey(target.hostKey);
    if (typeof pinned === 'string') throw new InvalidConnectionConfigError(this.description, pinned);
    this.pinned = pinned;
    this.limiter = new Limiter(this.options.maxChannels);
  }

  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const line = commandLine(argv);
    const program = argv[0] ?? '';
    const release = await this.limiter.acquire(options.signal).catch(() => {
      throw new CommandAbortedError(this.description, program);
    });
    let channel: ClientChannel | undefined;
    try {
      channel = await this.openChannel(line, options.signal);
      return await this.collect(channel, program, options);
    } finally {
      // A timed-out or aborted command may still be ending: its channel keeps its slot until it is gone.
      if (channel) void stateOf(channel).gone.then(release);
      else release();
    }
  }

  spawn(argv: readonly string[], options: SpawnOptions = {}): RunningCommand {
    const line = commandLine(argv);
    const program = argv[0] ?? '';
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let channel: ClientChannel | undefined;
    let killed = false;
    // ssh2 emits 'close' only once the channel's output was consumed: whoever stops reading must let the
    // channel drain into nothing, or the command never counts as finished.
    const drain = (): void => {
      if (!channel) return;
      channel.unpipe(stdout);
      channel.resume();
    };
    const kill = (): void => {
      killed = true;
      if (channel) this.terminate(channel);
    };
    stdout.once('close', () => {
      if (!stdout.readableEnded) drain();
    });
    // Input that ends without end() (the producer failed) must not look like a complete stream.
    stdin.once('close', () => {
      if (!stdin.writableFinished) kill();
    });
    const done = (async (): Promise<ExecResult & { stdout: '' }> => {
      const release = await this.limiter.acquire(options.signal).catch(() => {
        stdout.destroy();
        throw new CommandAbortedError(this.description, program);
      });
      try {
        channel = await this.openChannel(line, options.signal);
        if (killed) kill();
        stdin.pipe(channel);
        channel.pipe(stdout);
        const result = await this.collect(channel, program, options, { streamStdout: true });
        // A channel can close without EOF (killed, dropped); readers must still see the stream end.
        if (!stdout.writableEnded) stdout.end();
        return { ...result, stdout: '' };
      } catch (error) {
        stdout.destroy(error instanceof Error ? error : new Error(String(error)));
        throw error;
      } finally {
        if (channel) void stateOf(channel).gone.then(release);
        else release();
        // Nothing reads our input any more; writers get an error instead of buffering forever.
        if (!stdin.writableFinished) stdin.destroy();
      }
    })();
    // A caller that abandons a stream (and never awaits `done`) must not crash the process.
    done.catch(() => undefined);
    return { stdin, stdout, done, kill };
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    const running = [...this.active];
    for (const command of running) command.fail(new ConnectionLostError(this.description, 'connection closed by bdr'));
    if (client) {
      // Commands still running are ended on the machine too, while the connection can still carry a kill.
      const pids: number[] = [];
      for (const { channel } of running) {
        const pid = stateOf(channel).pidNow;
        if (pid !== undefined) pids.push(pid);
      }
      if (pids.length > 0) await this.signalRemote(client, 'TERM', pids);
      // An abort that just happened is still on its way to the machine (its pid, TERM, KILL): ending the
      // connection before it gets there would leave that command running on its own.
      await Promise.all([...this.terminating]);
      await new Promise<void>((resolve) => {
        client.once('close', () => resolve());
        client.end();
        setTimeout(resolve, 1_000).unref();
      });
    }
  }

  /**
   * Ends a remote command and discards its output: TERM to its process group, KILL when its channel is still
   * open `killAfterMs` later, and after as long again the channel is closed. Without a pid (a forced command, or
   * no marker in time) only what sshd may honour is left: a signal request, and closing the channel.
   */
  private terminate(channel: ClientChannel): void {
    const state = stateOf(channel);
    if (state.terminating || state.isClosed) return;
    state.terminating = true;
    // Output no one reads any more must still be consumed, or ssh2 never reports the channel closed.
    channel.unpipe();
    channel.resume();
    const ending = (async () => {
      const pid = await settleWithin(state.pid, this.options.killAfterMs);
      if (state.isClosed) return;
      if (pid === undefined) {
        channel.signal('KILL');
        channel.close();
        return;
      }
      for (const signal of ['TERM', 'KILL'] as const) {
        await this.signalRemote(state.client, signal, [pid]);
        if ((await settleWithin(state.gone.then(() => true), this.options.killAfterMs)) === true) return;
      }
      channel.close();
    })();
    this.terminating.add(ending);
    void ending.finally(() => this.terminating.delete(ending));
  }

  /**
   * Runs `kill` on the machine over a channel of its own, outside `maxChannels` (it must not queue behind the
   * commands it ends) and one at a time. A connection that is gone cannot carry it: those commands stay.
   */
  private signalRemote(client: Client, signal: 'TERM' | 'KILL', pids: readonly number[]): Promise<void> {
    const run = (): Promise<void> =>
      new Promise<void>((resolve) => {
        if (lostClients.has(client)) return resolve();
        try {
          client.exec(commandLine(['sh', '-c', KILL_SCRIPT, 'sh', signal, ...pids.map(String)]), (err, channel) => {
            if (err) return resolve();
            const timer = setTimeout(() => channel.close(), this.options.killAfterMs);
            channel.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            channel.resume();
            channel.stderr.resume();
            channel.end();
          });
        } catch {
          resolve();
        }
      });
    const next = this.killing.then(run);
    this.killing = next;
    return next;
  }

  /** Opens an exec channel, connecting first if needed. A stale connection found at this point is replaced once. */
  private async openChannel(line: string, signal: AbortSignal | undefined): Promise<ClientChannel> {
    const request = this.options.forcedCommand ? line : wrapped(line);
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new CommandAbortedError(this.description, line.split(' ')[0] ?? '');
      const client = await this.connected(signal);
      try {
        return await new Promise<ClientChannel>((resolve, reject) => {
          client.exec(request, (err, channel) => {
            if (err) return reject(err);
            // ssh2 parses a whole TCP read in one go: a fast command's exit status and stderr can be emitted
            // before a promise continuation could attach listeners, so they are recorded from right here.
            channelStates.set(channel, watchChannel(channel, client, !this.options.forcedCommand));
            resolve(channel);
          });
        });
      } catch (error) {
        // The server refused this one channel (e.g. MaxSessions): the connection and its other commands are fine.
        if (typeof (error as { reason?: unknown }).reason === 'number') {
          throw new ConnectError(this.description, `the server refused a channel: ${messageOf(error)}`, { cause: error });
        }
        // Nothing ran yet and the connection died unnoticed: replace it once.
        if (this.client === client) this.client = undefined;
        client.end();
        if (attempt >= 1) throw new ConnectionLostError(this.description, messageOf(error), { cause: error });
      }
    }
  }

  private async connected(signal: AbortSignal | undefined): Promise<Client> {
    if (this.closed) throw new ConnectionLostError(this.description, 'connection was closed');
    if (this.client) return this.client;
    this.connecting ??= this.connectWithBackoff(signal).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectWithBackoff(signal: AbortSignal | undefined): Promise<Client> {
    let delay = this.options.backoffInitialMs;
    for (let attempt = 1; ; attempt++) {
      try {
        const client = await this.connectOnce();
        this.client = client;
        return client;
      } catch (error) {
        const retriable = error instanceof NodeError ? error.retriable : true;
        if (!retriable || attempt >= this.options.connectAttempts || this.closed) throw error;
        await sleep(delay, undefined, signal ? { signal } : {}).catch(() => {
          throw new CommandAbortedError(this.description, 'connect');
        });
        delay = Math.min(delay * 2, this.options.backoffMaxMs);
      }
    }
  }

  private connectOnce(): Promise<Client> {
    const client = new Client();
    // Every open channel watches for the connection's end (watchChannel).
    client.setMaxListeners(this.options.maxChannels + 10);
    let presented: Buffer | undefined;
    const config: ConnectConfig = {
      host: this.target.host,
      port: this.target.port ?? 22,
      username: this.target.user ?? 'root',
      privateKey: this.target.privateKey,
      readyTimeout: this.options.readyTimeoutMs,
      keepaliveInterval: this.options.keepaliveIntervalMs,
      keepaliveCountMax: this.options.keepaliveCountMax,
      algorithms: { serverHostKey: hostKeyAlgorithms(this.pinned.type) as never },
      // Runs during key exchange, before authentication and before any channel can open.
      hostVerifier: (key: Buffer): boolean => {
        presented = key;
        return key.equals(this.pinned.blob);
      },
    };
    return new Promise<Client>((resolve, reject) => {
      let settled = false;
      client.once('ready', () => {
        settled = true;
        this.connectCount++;
        client.on('close', () => {
          lostClients.add(client);
          this.onClientClosed(client);
        });
        resolve(client);
      });
      client.on('error', (error: Error & { level?: string }) => {
        if (settled) return; // after 'ready', errors are followed by 'close', handled there
        settled = true;
        client.end();
        if (presented !== undefined && !presented.equals(this.pinned.blob)) {
          reject(new HostKeyMismatchError(this.description, this.pinned.fingerprint, fingerprint(presented)));
        } else if (error.level === 'client-authentication') {
          reject(new AuthenticationError(this.description));
        } else {
          reject(new ConnectError(this.description, messageOf(error), { cause: error }));
        }
      });
      try {
        client.connect(config);
      } catch {
        // ssh2 throws synchronously on an unparsable key; its message could quote the input, so drop it.
        settled = true;
        reject(new InvalidConnectionConfigError(this.description, 'the private key cannot be parsed (encrypted or unsupported format?)'));
      }
    });
  }

  private onClientClosed(client: Client): void {
    if (this.client === client) this.client = undefined;
    for (const command of this.active) command.fail(new ConnectionLostError(this.description, 'the connection dropped'));
  }

  /** Waits for a channel's exit status, collecting stderr (and stdout unless it is streamed). */
  private collect(
    channel: ClientChannel,
    program: string,
    options: ExecOptions,
    { streamStdout = false }: { streamStdout?: boolean } = {},
  ): Promise<ExecResult> {
    const state = stateOf(channel);
    return new Promise<ExecResult>((resolve, reject) => {
      const out: Buffer[] = [];
      let finished = false;
      let timer: NodeJS.Timeout | undefined;

      const finish = (error: Error | undefined, result?: ExecResult): void => {
        if (finished) return;
        finished = true;
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.active.delete(entry);
        if (error) reject(error);
        else if (result) resolve(result);
      };
      const onAbort = (): void => {
        this.terminate(channel);
        finish(new CommandAbortedError(this.description, program));
      };
      const entry: ActiveCommand = { channel, fail: (error) => finish(error) };
      this.active.add(entry);

      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.terminate(channel);
          finish(new CommandTimeoutError(this.description, program, options.timeoutMs ?? 0));
        }, options.timeoutMs);
      }
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });

      // ssh2 emits 'close' only after both streams were consumed, even when they carry nothing (stderr is
      // consumed by watchChannel).
      if (!streamStdout) channel.on('data', (chunk: Buffer) => out.push(chunk));
      channel.on('error', (error: Error) => {
        // No one waits for this channel any more; whatever still runs behind it must end (and free its slot).
        this.terminate(channel);
        finish(new ConnectionLostError(this.description, messageOf(error), { cause: error }));
      });
      void state.closed.then(() => {
        const code = state.exit?.code ?? null;
        const exitSignal = state.exit?.signal;
        if (code === null && exitSignal === undefined) {
          finish(new ConnectionLostError(this.description, `${program}: the channel closed without an exit status`));
          return;
        }
        finish(undefined, {
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(state.stderr).toString('utf8'),
          code,
          ...(exitSignal !== undefined ? { signal: exitSignal } : {}),
        });
      });

      if (!streamStdout) {
        if (options.stdin !== undefined && options.stdin.length > 0) channel.end(options.stdin);
        else channel.end();
      }
    });
  }
}

/** Clients whose connection is gone: nothing more can be sent over them. */
const lostClients = new WeakSet<Client>();

/** What is known of a command's channel, recorded from the moment it opened. */
interface ChannelState {
  client: Client;
  exit?: { code: number | null; signal?: string };
  /** stderr as the command wrote it, without the wrapper's marker line. */
  stderr: Buffer[];
  /** The remote command's pid (and process group); undefined once it can no longer come. */
  pid: Promise<number | undefined>;
  pidNow: number | undefined;
  closed: Promise<void>;
  isClosed: boolean;
  /** The channel closed, or its connection did (then ssh2 may never report the channel closed). */
  gone: Promise<void>;
  terminating: boolean;
}

const channelStates = new WeakMap<ClientChannel, ChannelState>();

function stateOf(channel: ClientChannel): ChannelState {
  const state = channelStates.get(channel);
  if (!state) throw new Error('a channel not opened by openChannel');
  return state;
}

function watchChannel(channel: ClientChannel, client: Client, wrapper: boolean): ChannelState {
  let setPid: (pid: number | undefined) => void = () => undefined;
  let setClosed: () => void = () => undefined;
  let setGone: () => void = () => undefined;
  const state: ChannelState = {
    client,
    stderr: [],
    pid: new Promise((resolve) => (setPid = resolve)),
    pidNow: undefined,
    closed: new Promise((resolve) => (setClosed = resolve)),
    isClosed: false,
    gone: new Promise((resolve) => (setGone = resolve)),
    terminating: false,
  };
  const found = (pid: number | undefined): void => {
    state.pidNow ??= pid;
    setPid(pid);
  };
  if (!wrapper) found(undefined);
  let preamble: Buffer | undefined = wrapper ? Buffer.alloc(0) : undefined;
  channel.on('exit', (code: number | null, signalName?: string) => {
    state.exit = { code, ...(signalName ? { signal: signalName } : {}) };
  });
  channel.stderr.on('data', (chunk: Buffer) => {
    if (preamble === undefined) {
      state.stderr.push(chunk);
      return;
    }
    preamble = Buffer.concat([preamble, chunk]);
    const marker = findMarker(preamble);
    if (marker) {
      state.stderr.push(preamble.subarray(0, marker.start), preamble.subarray(marker.end));
      preamble = undefined;
      found(marker.pid);
    } else if (preamble.length > PREAMBLE_MAX) {
      state.stderr.push(preamble);
      preamble = undefined;
      found(undefined);
    }
  });
  const onClientClose = (): void => setGone();
  client.once('close', onClientClose);
  channel.on('close', () => {
    if (preamble !== undefined) state.stderr.push(preamble);
    preamble = undefined;
    state.isClosed = true;
    found(undefined);
    setClosed();
    setGone();
    client.off('close', onClientClose);
  });
  return state;
}

const MARKER_LINE = new RegExp(`(?:^|\\n)${PID_MARKER}(\\d+)\\n`);

/** The wrapper's marker line, and the bytes to cut out of stderr (rc-file noise before it stays). Exported for tests. */
export function findMarker(preamble: Buffer): { pid: number; start: number; end: number } | undefined {
  // latin1 maps bytes to characters one to one, so string offsets are byte offsets.
  const m = MARKER_LINE.exec(preamble.toString('latin1'));
  if (!m) return undefined;
  return { pid: Number(m[1]), start: m.index + (m[0].startsWith('\n') ? 1 : 0), end: m.index + m[0].length };
}

/** The promise's value if it settles within `ms`, else undefined. */
async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
