import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { commandLine } from '../nodes/quote.ts';
import { asZfsError, receiveError, ZfsError, zfsCommandError } from './errors.ts';
import { throttle } from './throttle.ts';
import type { ReceiveOptions, SendOptions, TransferResult, ZfsMachine } from './machine.ts';

export interface RelayOptions {
  signal?: AbortSignal;
  /** Called with the running byte count each time a chunk of the stream passes through. */
  onProgress?: (bytes: number) => void;
  /** At most this many bytes per second pass through (a token bucket in this process, see throttle.ts). */
  bytesPerSecond?: number;
}

/**
 * Replicates by relaying the stream through this process: `zfs send` on `source`, `zfs receive` on
 * `target`, both over their own connections. Works whenever bdr can reach both machines; the direct
 * path (the primary's own ssh to the secondary) is faster on one hop (see bench/zfs-transfer.ts).
 * If either side fails, the other is stopped and the error of the side that failed first is thrown.
 */
export async function relay(
  source: ZfsMachine,
  /** What to send, or the receiver's resume token to continue an interrupted stream (`zfs send -t`). */
  send: SendOptions | { resumeToken: string },
  target: ZfsMachine,
  receiveInto: string,
  receive: ReceiveOptions = {},
  options: RelayOptions = {},
): Promise<TransferResult> {
  const sendArgv = 'resumeToken' in send ? await source.sendResumeArgv(send.resumeToken) : await source.sendArgv(send);
  const receiveArgv = await target.receiveArgv(receiveInto, receive);
  const started = Date.now();
  const signal = options.signal;
  const sender = source.connection.spawn(sendArgv, signal ? { signal } : {});
  const receiver = target.connection.spawn(receiveArgv, signal ? { signal } : {});
  // Nothing reads the receiver's stdout, yet an aborted or lost receive destroys it with its error: unheard,
  // that error would crash the process. `receiver.done` reports it.
  receiver.stdout.on('error', () => undefined);
  receiver.stdout.resume();
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      bytes += chunk.length;
      options.onProgress?.(bytes);
      callback(null, chunk);
    },
  });
  const stopBoth = (): void => {
    sender.kill();
    receiver.kill();
  };
  let pipeSettled = false;
  // Throttled before counted: the bytes reported are those that went on towards the receiver.
  const limiter = options.bytesPerSecond !== undefined ? throttle(options.bytesPerSecond) : undefined;
  const piping = (limiter ? pipeline(sender.stdout, limiter, counter, receiver.stdin) : pipeline(sender.stdout, counter, receiver.stdin)).then(
    () => undefined,
    (error: unknown) => {
      stopBoth();
      return error;
    },
  ).finally(() => {
    pipeSettled = true;
  });
  // Whichever side fails first stops the other, so nothing waits on a stream that will never end; its
  // error is the one reported (the other side's is then only "killed" or "broken pipe").
  let failedFirst: 'send' | 'receive' | undefined;
  const watch = (
    side: 'send' | 'receive',
    done: Promise<{ code: number | null; stderr: string; signal?: string }>,
    other: { kill(): void },
  ): Promise<{ code: number | null; stderr: string; signal?: string }> =>
    done.then(
      (r) => {
        if (r.code !== 0) {
          failedFirst ??= side;
          other.kill();
        }
        return r;
      },
      (error: unknown) => {
        failedFirst ??= side;
        other.kill();
        throw error;
      },
    );
  const [sendOutcome, receiveOutcome] = await Promise.allSettled([
    watch('send', sender.done, receiver),
    watch('receive', receiver.done, sender),
  ]);
  if (!pipeSettled) {
    // Both commands are over; a pipe still open can only be a stream no one will finish.
    await Promise.race([piping, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    if (!pipeSettled) counter.destroy();
  }
  const sendError = outcomeError(sendOutcome, sendArgv, source.connection.description);
  const receiveFailed = outcomeError(receiveOutcome, receiveArgv, target.connection.description);
  const receiveSideError = receiveFailed && receiveError(receiveFailed, receiveInto.split('@')[0] ?? receiveInto);
  // A receive whose stream ended early failed because of the sender, even when its exit status arrived first
  // (the sender's EOF can reach the receiver before the sender's own exit status reaches bdr).
  const sendEndedOnItsOwn = sendOutcome.status === 'fulfilled' ? sendOutcome.value.signal === undefined : true;
  const streamCut = receiveFailed !== undefined && STREAM_CUT.test(receiveFailed.message);
  const blameSend = failedFirst === 'send' || (streamCut && sendError !== undefined && sendEndedOnItsOwn);
  const error = blameSend ? (sendError ?? receiveSideError) : (receiveSideError ?? sendError);
  if (error) throw error;
  // Both commands succeeded: zfs receive checksums the stream, so a late pipe error changes nothing.
  return { bytes, ms: Date.now() - started };
}

/** What zfs receive says when its input ends before the stream does. */
const STREAM_CUT = /failed to read from stream|incomplete stream|premature end|unexpected end of stream/i;

function outcomeError(
  outcome: PromiseSettledResult<{ code: number | null; stderr: string; signal?: string }>,
  argv: readonly string[],
  description: string,
): ZfsError | undefined {
  if (outcome.status === 'rejected') return asZfsError(outcome.reason, argv);
  if (outcome.value.code !== 0) return zfsCommandError(argv, outcome.value, description);
  return undefined;
}

/** How the primary's own OpenSSH client reaches the secondary (files on the primary, see `installVectorIdentity`). */
export interface DirectRoute {
  host: string;
  port: number;
  user: string;
  /** Private key file on the primary (mode 600). */
  identityFile: string;
  /** known_hosts file on the primary holding the secondary's pinned host key. */
  knownHostsFile: string;
  /**
   * Extra `ssh -o` options, e.g. ['Ciphers=aes128-gcm@openssh.com']: only those in SSH_OPTION_ALLOWLIST
   * (tuning, never anything that runs a command, adds a hop or changes authentication; see assertSshOptions).
   */
  sshOptions?: readonly string[];
}

const algorithms = /^[+^-]?[a-z0-9@.-]+(,[a-z0-9@.-]+)*$/;
const integer = (min: number, max: number) => (v: string): boolean => /^\d{1,6}$/.test(v) && Number(v) >= min && Number(v) <= max;
const oneOf = (...values: string[]) => (v: string): boolean => values.includes(v.toLowerCase());
const QOS = ['af11', 'af12', 'af13', 'af21', 'af22', 'af23', 'af31', 'af32', 'af33', 'af41', 'af42', 'af43',
  'cs0', 'cs1', 'cs2', 'cs3', 'cs4', 'cs5', 'cs6', 'cs7', 'ef', 'le', 'lowdelay', 'throughput', 'reliability', 'none'];

/**
 * The `ssh -o` options a DirectRoute may add, with what each value may be. Everything else is refused:
 * ProxyCommand, LocalCommand, PermitLocalCommand, KnownHostsCommand, Match, Include (run commands or read
 * other config), ProxyJump (another hop), and anything touching authentication or host key checking,
 * which bdr sets itself.
 */
export const SSH_OPTION_ALLOWLIST: Readonly<Record<string, (value: string) => boolean>> = Object.freeze({
  Compression: oneOf('yes', 'no'),
  Ciphers: (v) => algorithms.test(v),
  MACs: (v) => algorithms.test(v),
  KexAlgorithms: (v) => algorithms.test(v),
  ServerAliveInterval: integer(0, 3600),
  ServerAliveCountMax: integer(1, 100),
  ConnectTimeout: integer(1, 3600),
  ConnectionAttempts: integer(1, 10),
  TCPKeepAlive: oneOf('yes', 'no'),
  IPQoS: (v) => { const parts = v.split(','); return parts.length <= 2 && parts.every((p) => QOS.includes(p.toLowerCase())); },
  AddressFamily: oneOf('any', 'inet', 'inet6'),
  BindAddress: (v) => /^(\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f:]+)$/.test(v),
  RekeyLimit: (v) => /^(\d{1,10}[KMG]?|default)$/.test(v),
  LogLevel: oneOf('quiet', 'fatal', 'error', 'info', 'verbose'),
});

/**
 * Validates DirectRoute.sshOptions ("Name=value", name case-insensitive as in ssh_config) and returns them
 * with canonical names. Throws a RangeError naming the first option that is not allowed or not valid.
 */
export function assertSshOptions(options: readonly string[]): string[] {
  const names = new Map(Object.keys(SSH_OPTION_ALLOWLIST).map((n) => [n.toLowerCase(), n]));
  return options.map((option) => {
    const eq = option.indexOf('=');
    const rawName = eq > 0 ? option.slice(0, eq) : option;
    const value = eq > 0 ? option.slice(eq + 1) : '';
    const name = names.get(rawName.toLowerCase());
    if (name === undefined) {
      throw new RangeError(`ssh option ${JSON.stringify(rawName)} is not allowed on a direct route; allowed: ${[...names.values()].join(', ')}`);
    }
    if (eq <= 0 || !SSH_OPTION_ALLOWLIST[name]?.(value)) throw new RangeError(`ssh option ${name}: invalid value ${JSON.stringify(value)}`);
    return `${name}=${value}`;
  });
}

/**
 * The primary's OpenSSH command line that runs `remoteArgv` on the secondary over `route` (the vector key,
 * the pinned host key, batch mode): the receiving half of every direct pipeline.
 */
export function directSshArgv(route: DirectRoute, remoteArgv: readonly string[]): string[] {
  for (const path of [route.identityFile, route.knownHostsFile]) {
    if (!/^\/[A-Za-z0-9_./-]+$/.test(path)) throw new ZfsError('invalidName', `unsafe path ${JSON.stringify(path)}`, { retriable: false });
  }
  if (!/^[A-Za-z0-9.:-]+$/.test(route.host) || !/^[a-z_][a-z0-9_-]*$/.test(route.user) || !Number.isInteger(route.port)) {
    throw new ZfsError('invalidName', 'invalid ssh route', { retriable: false });
  }
  const sshOptions = assertSshOptions(route.sshOptions ?? []);
  return [
    'ssh', '-i', route.identityFile, '-p', String(route.port),
    // ssh keeps the first value it gets for an option: the route's tuning comes before bdr's default
    // keepalive, and none of the allowlisted options can override the security settings that follow.
    ...sshOptions.flatMap((o) => ['-o', o]),
    '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${route.knownHostsFile}`, '-o', 'ServerAliveInterval=15',
    `${route.user}@${route.host}`,
    // The remote side runs this through its shell (or the guard): quoted once more, as one argument.
    commandLine(remoteArgv),
  ];
}

/**
 * The direct path's command on the primary: `zfs send … | ssh … 'zfs receive …'`, one shell pipeline
 * whose every word went through `commandLine`. `set -o pipefail` is not POSIX, so the send's exit status
 * is carried out of the pipeline explicitly.
 */
export async function directTransferArgv(
  source: ZfsMachine,
  send: SendOptions,
  route: DirectRoute,
  receiveInto: string,
  receive: ReceiveOptions,
  receiveCapabilities: ZfsMachine,
): Promise<string[]> {
  const sendArgv = await source.sendArgv(send);
  const receiveArgv = await receiveCapabilities.receiveArgv(receiveInto, receive);
  const ssh = directSshArgv(route, receiveArgv);
  const script = `{ ${commandLine(sendArgv)} || echo "bdr: zfs send failed with status $?" >&2; } | ${commandLine(ssh)}`;
  return ['sh', '-c', script];
}

/**
 * Replicates over the direct path: the primary's OpenSSH pipes `zfs send` into the secondary's
 * `zfs receive` (on the secondary normally through the vector key's guard). The stream never passes
 * through bdr; this is the fast default (bench/zfs-transfer.ts).
 */
export async function directTransfer(
  source: ZfsMachine,
  send: SendOptions,
  route: DirectRoute,
  receiveInto: string,
  receive: ReceiveOptions,
  receiveCapabilities: ZfsMachine,
  options: { signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<{ ms: number }> {
  const argv = await directTransferArgv(source, send, route, receiveInto, receive, receiveCapabilities);
  const started = Date.now();
  let result;
  try {
    result = await source.connection.exec(argv, options);
  } catch (error) {
    throw asZfsError(error, argv);
  }
  if (result.code !== 0 || /bdr: zfs send failed/.test(result.stderr)) {
    // zfs send never reports a full disk of its own, so "out of space" here is the receiving side's.
    throw receiveError(zfsCommandError(['zfs', 'send|receive', ...argv.slice(2)], result, source.connection.description), receiveInto.split('@')[0] ?? receiveInto);
  }
  return { ms: Date.now() - started };
}
