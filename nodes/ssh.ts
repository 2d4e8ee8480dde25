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
}

const DEFAULTS: Required<SshOptions> = {
  maxChannels: 8,
  keepaliveIntervalMs: 15_000,
  keepaliveCountMax: 3,
  readyTimeoutMs: 20_000,
  connectAttempts: 4,
  backoffInitialMs: 250,
  backoffMaxMs: 5_000,
};

/** A command running on a channel, so that a dropped connection can fail it instead of leaving it hanging. */
interface ActiveCommand {
  fail(error: Error): void;
}

/**
 * Runs commands over one SSH connection per machine (ssh2). The connection opens on first use, verifies the
 * pinned host key before authenticating, is shared by all commands up to `maxChannels` channels, and is
 * reopened with backoff after it drops. Commands that were running when it dropped fail with
 * ConnectionLostError; they are not retried, because their effect on the machine is unknown.
 */
export class SshConnection implements NodeConnection {
  readonly description: string;
  private readonly options: Required<SshOptions>;
  private readonly pinned: PinnedHostKey;
  private readonly limiter: Limiter;
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private readonly active = new Set<ActiveCommand>();
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
    try {
      const channel = await this.openChannel(line, options.signal);
      return await this.collect(channel, program, options);
    } finally {
      release();
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
      if (channel) {
        channel.signal('TERM');
        channel.close();
        drain();
      }
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
        release();
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
    for (const command of this.active) command.fail(new ConnectionLostError(this.description, 'connection closed by bdr'));
    if (client) {
      await new Promise<void>((resolve) => {
        client.once('close', () => resolve());
        client.end();
        setTimeout(resolve, 1_000).unref();
      });
    }
  }

  /** Opens an exec channel, connecting first if needed. A stale connection found at this point is replaced once. */
  private async openChannel(line: string, signal: AbortSignal | undefined): Promise<ClientChannel> {
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new CommandAbortedError(this.description, line.split(' ')[0] ?? '');
      const client = await this.connected(signal);
      try {
        return await new Promise<ClientChannel>((resolve, reject) => {
          client.exec(line, (err, channel) => {
            if (err) return reject(err);
            // ssh2 parses a whole TCP read in one go: a fast command's exit status can be emitted before a
            // promise continuation could attach a listener, so record it right here.
            channel.on('exit', (code: number | null, signalName?: string) => {
              exitStatus.set(channel, { code, ...(signalName ? { signal: signalName } : {}) });
            });
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
        client.on('close', () => this.onClientClosed(client));
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
    return new Promise<ExecResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let finished = false;
      let timer: NodeJS.Timeout | undefined;

      const stop = (): void => {
        // The remote process may ignore the closing channel; the signal request makes sure it ends.
        channel.signal('KILL');
        channel.close();
      };
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
        stop();
        finish(new CommandAbortedError(this.description, program));
      };
      const entry: ActiveCommand = { fail: (error) => finish(error) };
      this.active.add(entry);

      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          stop();
          finish(new CommandTimeoutError(this.description, program, options.timeoutMs ?? 0));
        }, options.timeoutMs);
      }
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });

      // ssh2 emits 'close' only after both streams were consumed, even when they carry nothing.
      if (!streamStdout) channel.on('data', (chunk: Buffer) => out.push(chunk));
      channel.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      channel.on('error', (error: Error) => finish(new ConnectionLostError(this.description, messageOf(error), { cause: error })));
      channel.on('close', () => {
        const status = exitStatus.get(channel);
        const code = status?.code ?? null;
        const exitSignal = status?.signal;
        if (code === null && exitSignal === undefined) {
          finish(new ConnectionLostError(this.description, `${program}: the channel closed without an exit status`));
          return;
        }
        finish(undefined, {
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
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

/** Exit status per channel, recorded as soon as ssh2 reports it. */
const exitStatus = new WeakMap<ClientChannel, { code: number | null; signal?: string }>();

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
