import type { Readable, Writable } from 'node:stream';

/**
 * One way to run commands on a machine. Every command is an argument array: the first element is the
 * program, the rest are its arguments. Implementations never hand user data to a shell unquoted.
 */
export interface NodeConnection {
  /** Human-readable target ("local", "root@10.0.0.5:22"), safe for logs: never contains secrets. */
  readonly description: string;
  /**
   * Runs a command to completion and collects its output. A non-zero exit code is a result, not an
   * error: callers (the zfs layer) decide what it means. Transport failures, timeouts and cancellation
   * reject with the typed errors of `errors.ts`.
   */
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Starts a command whose stdin and/or stdout are streamed (zfs send / receive). The caller must
   * consume `stdout` (or call `stdout.resume()`), or the command can stall on back-pressure.
   */
  spawn(argv: readonly string[], options?: SpawnOptions): RunningCommand;
  /** Releases the connection. Commands still running are cancelled. */
  close(): Promise<void>;
}

export interface ExecOptions {
  /** Sent to the command's stdin, which is then closed. Without it stdin is closed at once. */
  stdin?: string | Buffer;
  /** Kills the command and rejects with CommandTimeoutError after this many milliseconds. */
  timeoutMs?: number;
  /** Kills the command and rejects with CommandAbortedError when aborted. */
  signal?: AbortSignal;
}

export interface SpawnOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when the command was ended by a signal (then `signal` names it). */
  code: number | null;
  signal?: string;
}

export interface RunningCommand {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Settles when the command has exited and its stderr has been collected. */
  readonly done: Promise<ExecResult & { stdout: '' }>;
  /** Ends the command early (the transfer is abandoned). */
  kill(): void;
}
