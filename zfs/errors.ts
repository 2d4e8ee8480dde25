import { InvalidNameError } from '../api/names.ts';
import { NodeError, type NodeErrorKind } from '../nodes/errors.ts';

/**
 * What went wrong, in the terms a controller acts on:
 * - notFound: the dataset, snapshot, pool or hold tag does not exist (re-list, then re-plan).
 * - busy: held, mounted, or in use by a send/receive (destroy later; never force it).
 * - exists: the dataset, snapshot or hold tag already exists (usually harmless on retry).
 * - noSpace: the pool or a quota is full (trigger capacity retention, alert); a receive's is DestinationFull.
 * - permissionDenied: ZFS delegation, sshd or the bdr guard refused (configuration error).
 * - unsupported: this ZFS lacks the option or command (degrade; see capabilities).
 * - conflict: the target diverged from the incremental source (needs a rollback decision or a full send).
 * - invalidName: a name failed validation before any command ran.
 * - transport kinds (from nodes/): hostKeyMismatch, authenticationFailed, connectFailed, connectionLost,
 *   timeout, aborted, invalidConfig.
 * - failed: anything else; the message carries ZFS's own words.
 */
export type ZfsErrorKind =
  | 'notFound'
  | 'busy'
  | 'exists'
  | 'noSpace'
  | 'permissionDenied'
  | 'unsupported'
  | 'conflict'
  | 'invalidName'
  | 'failed'
  | NodeErrorKind;

export class ZfsError extends Error {
  constructor(
    readonly kind: ZfsErrorKind,
    message: string,
    readonly details: {
      /** The command that failed (argument array; names only, never secrets). */
      argv?: readonly string[];
      stderr?: string;
      code?: number | null;
      target?: string;
      retriable?: boolean;
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'ZfsError';
  }

  get retriable(): boolean {
    return this.details.retriable ?? (this.kind === 'busy' || this.kind === 'failed');
  }
}

/**
 * A receive stopped because its destination is full: the quota the operator set on the vector's dataset,
 * or the storage pool itself. Not retriable as is: it needs space (retention, a larger quota, re-pairing).
 */
export class DestinationFull extends ZfsError {
  constructor(
    /** The dataset received into. */
    readonly dataset: string,
    message: string,
    details: ZfsError['details'] = {},
  ) {
    super('noSpace', message, { ...details, retriable: false });
    this.name = 'DestinationFull';
  }
}

/** A receive side's error, as DestinationFull when it ran out of space or quota. */
export function receiveError(error: ZfsError, dataset: string): ZfsError {
  if (error instanceof DestinationFull || error.kind !== 'noSpace') return error;
  return new DestinationFull(dataset, `${dataset} is full (quota or pool): ${error.message}`, { ...error.details, cause: error });
}

const PATTERNS: readonly [RegExp, ZfsErrorKind][] = [
  [/bdr-guard: refused/, 'permissionDenied'],
  // OpenSSH on the primary (direct path) speaking for the connection to the secondary.
  [/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i, 'hostKeyMismatch'],
  [/Permission denied \(publickey/i, 'authenticationFailed'],
  [/ssh: connect to host|Could not resolve hostname|Connection closed by remote host/i, 'connectFailed'],
  [/invalid option|unrecognized command|unsupported|not supported|operation not applicable|unknown option/i, 'unsupported'],
  [/permission denied|insufficient privileges|operation not permitted/i, 'permissionDenied'],
  // OpenZFS maps EDQUOT to "quota exceeded" / strerror's "Disk quota exceeded"; ENOSPC to "out of space".
  [/out of space|no space left|quota exceeded|EDQUOT|ENOSPC/i, 'noSpace'],
  [
    /has been modified[\s\S]*since most recent snapshot|does not match incremental source|most recent snapshot[\s\S]*does not\s+match|destination[\s\S]*exists[\s\S]*must specify -F|incremental source[\s\S]*is not earlier|destination already exists|destination has snapshots/i,
    'conflict',
  ],
  [/dataset is busy|pool is busy|device busy|resource busy|has dependent clones|is in use/i, 'busy'],
  [/already exists/i, 'exists'],
  [/does not exist|no such pool|no such tag|could not find any snapshots|no such file or directory|not found/i, 'notFound'],
];

/** Classifies a failed ZFS command by its stderr (OpenZFS and zfs-fuse wordings). */
export function classifyStderr(stderr: string): ZfsErrorKind {
  for (const [re, kind] of PATTERNS) if (re.test(stderr)) return kind;
  return 'failed';
}

export function zfsCommandError(
  argv: readonly string[],
  result: { stderr: string; code: number | null; signal?: string },
  target: string,
): ZfsError {
  const text = firstLines(result.stderr) || (result.signal ? `killed by ${result.signal}` : `exit ${result.code}`);
  return new ZfsError(classifyStderr(result.stderr), `${target}: ${argv.slice(0, 2).join(' ')}: ${text}`, {
    argv,
    stderr: result.stderr,
    code: result.code,
    target,
  });
}

/** Brings transport errors and name validation errors into the one ZfsError vocabulary. */
export function asZfsError(error: unknown, argv?: readonly string[]): ZfsError {
  if (error instanceof ZfsError) return error;
  if (error instanceof NodeError) {
    return new ZfsError(error.kind, error.message, {
      ...(argv ? { argv } : {}),
      target: error.target,
      retriable: error.retriable,
      cause: error,
    });
  }
  if (error instanceof InvalidNameError) {
    return new ZfsError('invalidName', error.message, { retriable: false, cause: error });
  }
  return new ZfsError('failed', error instanceof Error ? error.message : String(error), { cause: error });
}

function firstLines(stderr: string): string {
  // zfs-fuse prints the whole usage text after "invalid option"; the first lines carry the meaning.
  // OpenSSH's warning banners are lines of "@"; the meaning is in the lines around them.
  const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('@') && l.trim() !== '');
  return lines.slice(0, 3).join(' / ').slice(0, 500);
}
