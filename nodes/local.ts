import { execa } from 'execa';
import type { ExecOptions, ExecResult, NodeConnection, RunningCommand, SpawnOptions } from './connection.ts';
import { CommandAbortedError, CommandTimeoutError } from './errors.ts';

/**
 * Runs commands on the operator's own machine: execa with argument arrays, never a shell. Used when a
 * Machine's connection is `{ type: local }`, and by the test bed.
 */
export class LocalConnection implements NodeConnection {
  readonly description = 'local';

  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const [file, ...args] = checkedArgv(argv);
    const result = await execa(file, args, {
      input: options.stdin ?? '',
      timeout: options.timeoutMs,
      cancelSignal: options.signal,
      reject: false,
      stripFinalNewline: false,
      forceKillAfterDelay: 2_000,
      encoding: 'utf8',
    });
    if (result.timedOut) throw new CommandTimeoutError(this.description, file, options.timeoutMs ?? 0);
    if (result.isCanceled) throw new CommandAbortedError(this.description, file);
    if (result.exitCode === undefined && result.signal === undefined) {
      // execa could not start the program (ENOENT, EACCES): report it like a shell would, as exit 127.
      return { stdout: '', stderr: `${file}: ${result.originalMessage ?? result.shortMessage}\n`, code: 127 };
    }
    return {
      stdout: result.stdout,
      stderr: result.stderr,
      code: result.exitCode ?? null,
      ...(result.signal !== undefined ? { signal: result.signal } : {}),
    };
  }

  spawn(argv: readonly string[], options: SpawnOptions = {}): RunningCommand {
    const [file, ...args] = checkedArgv(argv);
    const child = execa(file, args, {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      buffer: { stdout: false, stderr: true },
      timeout: options.timeoutMs,
      cancelSignal: options.signal,
      reject: false,
      forceKillAfterDelay: 2_000,
      encoding: 'utf8',
    });
    // A consumer that stops reading early closes our end of stdin/stdout; that must not crash the process.
    child.stdin.on('error', () => undefined);
    const description = this.description;
    const done = child.then((result): ExecResult & { stdout: '' } => {
      if (result.timedOut) throw new CommandTimeoutError(description, file, options.timeoutMs ?? 0);
      if (result.isCanceled) throw new CommandAbortedError(description, file);
      return {
        stdout: '',
        stderr: typeof result.stderr === 'string' ? result.stderr : '',
        code: result.exitCode ?? (result.signal !== undefined ? null : 127),
        ...(result.signal !== undefined ? { signal: result.signal } : {}),
      };
    });
    // A caller that abandons a stream (and never awaits `done`) must not crash the process.
    done.catch(() => undefined);
    return {
      stdin: child.stdin,
      stdout: child.stdout,
      done,
      kill: () => {
        child.kill('SIGTERM');
      },
    };
  }

  async close(): Promise<void> {
    // Nothing is held open between commands.
  }
}

function checkedArgv(argv: readonly string[]): [string, ...string[]] {
  const [file, ...args] = argv;
  if (file === undefined || file === '') throw new TypeError('empty command');
  for (const arg of argv) if (arg.includes('\0')) throw new TypeError('a command argument must not contain NUL');
  return [file, ...args];
}
