import { commandLine } from '../nodes/quote.ts';
import type { NodeConnection } from '../nodes/connection.ts';
import { asZfsError, receiveError, zfsCommandError } from './errors.ts';
import { directSshArgv, type DirectRoute } from './transfer.ts';

/**
 * One replication stream run by a single shell pipeline on the sending machine, with its bytes counted there:
 *
 *   { { zfs send … || echo "bdr: zfs send failed…" >&2; } | dd bs=128k status=progress 2>&3 | RECEIVE >/dev/null; } 3>&1
 *
 * With a bandwidth limit, `pv -q -L RATE` sits between zfs send and dd (after a check that pv exists). *
 * RECEIVE is `ssh … 'zfs receive …'` (direct: the primary's own OpenSSH with the vector key, the stream never
 * passes through bdr) or `zfs receive …` itself (both ends on one machine: a local pipe). `dd` copies the stream
 * unchanged and reports the bytes it copied (about once a second, and exactly at the end) on the pipeline's
 * stdout, which is all bdr reads of the stream. `status=progress` is GNU coreutils' (busybox dd ignores it).
 */
export type MeteredReceive = { kind: 'local'; receiveArgv: readonly string[] } | { kind: 'direct'; route: DirectRoute; receiveArgv: readonly string[] };

/**
 * `zfs hold|release <tag> <snapshot>` commands (ZfsMachine.holdArgv) run on the sending machine in the stream's
 * own session: `before` ahead of the stream (a failure sends nothing), `after` once the receive succeeded, each
 * in order. A hold already there, or a release of a hold already gone, is what was wanted.
 */
export interface StreamHolds {
  before?: readonly (readonly string[])[];
  after?: readonly (readonly string[])[];
}

export function meteredTransferArgv(sendArgv: readonly string[], receive: MeteredReceive, limit: { bytesPerSecond?: number | undefined } = {}, holds: StreamHolds = {}): string[] {
  const receiving = receive.kind === 'local' ? [...receive.receiveArgv] : directSshArgv(receive.route, receive.receiveArgv);
  const rate = limit.bytesPerSecond;
  if (rate !== undefined && (!Number.isSafeInteger(rate) || rate < 1)) throw new RangeError(`invalid rate ${rate}`);
  const moves = (list: StreamHolds['before']) => (list ?? []).map((argv) => `${holdFunction(argv)} ${commandLine(argv)}; `).join('');
  const before = moves(holds.before);
  const after = moves(holds.after);
  // pv paces the stream before dd counts it, so the bytes reported are those that went on to the receiver. It is
  // looked for first: a machine without it refuses the transfer rather than sending unthrottled.
  const script =
    (before || after ? HOLD_FUNCTIONS : '') +
    (rate !== undefined ? `command -v pv >/dev/null 2>&1 || { echo "${PV_MISSING}" >&2; exit 3; }; ` : '') +
    before +
    `{ { ${commandLine(sendArgv)} || echo "bdr: zfs send failed with status $?" >&2; } ` +
    (rate !== undefined ? `| pv -q -L ${rate} ` : '') +
    `| dd bs=131072 status=progress 2>&3 | ${commandLine(receiving)} >/dev/null; } 3>&1` +
    // An incomplete stream never receives, so the receive's success says the whole stream arrived.
    (after ? ` || exit; ${after}` : '');
  return ['sh', '-c', script];
}

const PV_MISSING = 'bdr: pv is not installed';
/** Exit statuses of a hold or release in the stream's session that failed (its message on stderr). */
const HOLD_FAILED = 90;
const RELEASE_FAILED = 91;
const HOLD_FUNCTIONS =
  `bdr_hold() { bdr_out=$("$@" 2>&1 </dev/null) || case $bdr_out in *"already exists"*) ;; *) printf '%s\\n' "$bdr_out" >&2; exit ${HOLD_FAILED} ;; esac; }; ` +
  `bdr_release() { bdr_out=$("$@" 2>&1 </dev/null) || case $bdr_out in *"no such tag"*|*"does not exist"*) ;; *) printf '%s\\n' "$bdr_out" >&2; exit ${RELEASE_FAILED} ;; esac; }; `;

function holdFunction(argv: readonly string[]): string {
  const op = argv[1];
  if (argv.length !== 4 || (op !== 'hold' && op !== 'release')) throw new TypeError(`not a hold or release of one snapshot: ${argv.join(' ')}`);
  return op === 'hold' ? 'bdr_hold' : 'bdr_release';
}

/** A bandwidth limit was asked for and the sending machine has no pv: nothing was sent. */
export class ThrottleUnavailableError extends Error {
  constructor(readonly machine: string) {
    super(`pv is not installed on ${machine}, which the bandwidth limit needs (Debian and Ubuntu: apt install pv)`);
    this.name = 'ThrottleUnavailableError';
  }
}

/** The largest byte count dd has reported so far in `text` (its progress and final lines both start with it). */
export function bytesReported(text: string): number {
  let max = 0;
  for (const m of text.matchAll(/(\d+) bytes/g)) max = Math.max(max, Number(m[1]));
  return max;
}

export interface MeteredOptions {
  signal?: AbortSignal;
  /** The running byte count, each time dd reports one. */
  onProgress?: (bytes: number) => void;
}

/**
 * Runs `meteredTransferArgv` on `connection` (the sending machine) and returns the bytes that crossed the pipe.
 * A failure of either side throws the classified ZfsError (a diverged target is `conflict`, a full one
 * DestinationFull), with `receiveInto` as the dataset the receive was writing.
 */
export async function runMeteredTransfer(
  connection: NodeConnection,
  argv: readonly string[],
  receiveInto: string,
  options: MeteredOptions = {},
): Promise<{ bytes: number }> {
  let out = '';
  let bytes = 0;
  let result;
  try {
    const running = connection.spawn(argv, options.signal ? { signal: options.signal } : {});
    // A failed or aborted command also destroys stdout with its error; `done` reports it.
    running.stdout.on('error', () => undefined);
    running.stdout.on('data', (chunk: Buffer) => {
      // Only the tail can hold an unfinished number; older progress lines are not needed.
      out = (out + chunk.toString('latin1')).slice(-4096);
      const now = bytesReported(out);
      if (now > bytes) {
        bytes = now;
        options.onProgress?.(bytes);
      }
    });
    result = await running.done;
  } catch (error) {
    throw asZfsError(error, argv);
  }
  if (result.code === 3 && result.stderr.includes(PV_MISSING)) throw new ThrottleUnavailableError(connection.description);
  if (result.code === HOLD_FAILED || result.code === RELEASE_FAILED) {
    throw zfsCommandError(['zfs', result.code === HOLD_FAILED ? 'hold' : 'release', '(in the stream session)'], result, connection.description);
  }
  if (result.code !== 0 || /bdr: zfs send failed/.test(result.stderr)) {
    // zfs send never reports a full disk of its own, so "out of space" here is the receiving side's.
    throw receiveError(zfsCommandError(['zfs', 'send|receive', ...argv.slice(2)], result, connection.description), receiveInto.split('@')[0] ?? receiveInto);
  }
  return { bytes: Math.max(bytes, bytesReported(out)) };
}
