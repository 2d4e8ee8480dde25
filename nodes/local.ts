import { execa, type ResultPromise } from 'execa';
import type { ExecOptions, ExecResult, NodeConnection, RunningCommand, SpawnOptions } from './connection.ts';
import { CommandAbortedError, CommandTimeoutError } from './errors.ts';

/** How long a command has after TERM before its process group gets KILL (as SshConnection's `killAfterMs`). */
const KILL_AFTER_MS = 2_000;

type EndReason = 'timeout' | 'abort' | 'kill' | 'close';

/**
 * Runs commands on the operator's own machine: execa with argument arrays, never a shell. Used when a
 * Machine's connection is `{ type: local }`, and by the test bed.
 *
 * Each command leads its own process group (`detached`), so that ending it also ends what it started: a
 * `sh -c 'zfs send … | ssh …'` would otherwise leave the pipeline running after its shell was signalled.
 * Being in their own group, commands no longer get the terminal's Ctrl-C, so this module ends them itself:
 * on timeout, abort, `kill()`, `close()`, when the process exits, and on a SIGINT/SIGTERM/SIGHUP that nothing
 * else handles (it then re-raises the signal).
 */
export class LocalConnection implements NodeConnection {
  readonly description = 'local';
  private readonly running = new Set<ProcessGroup>();

  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const [file, ...args] = checkedArgv(argv);
    const child = execa(file, args, {
      input: options.stdin ?? '',
      detached: true,
      reject: false,
      stripFinalNewline: false,
      encoding: 'utf8',
    });
    const group = this.supervise(child, options);
    const result = await child;
    group.exited();
    if (group.reason === 'timeout') throw new CommandTimeoutError(this.description, file, options.timeoutMs ?? 0);
    if (group.reason === 'abort' || group.reason === 'close') throw new CommandAbortedError(this.description, file);
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
      detached: true,
      reject: false,
      encoding: 'utf8',
    });
    // A consumer that stops reading early closes our end of stdin/stdout; that must not crash the process.
    child.stdin.on('error', () => undefined);
    const group = this.supervise(child, options);
    const description = this.description;
    const done = child.then((result): ExecResult & { stdout: '' } => {
      group.exited();
      if (group.reason === 'timeout') throw new CommandTimeoutError(description, file, options.timeoutMs ?? 0);
      if (group.reason === 'abort' || group.reason === 'close') throw new CommandAbortedError(description, file);
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
      kill: () => group.end('kill'),
    };
  }

  /** Ends the commands still running (TERM to each group, KILL after the grace period) and waits for them. */
  async close(): Promise<void> {
    const groups = [...this.running];
    for (const group of groups) group.end('close');
    await Promise.all(groups.map((g) => g.settled));
  }

  private supervise(child: ResultPromise, options: { timeoutMs?: number; signal?: AbortSignal }): ProcessGroup {
    const group = new ProcessGroup(child, options, () => this.running.delete(group));
    if (child.pid !== undefined) this.running.add(group);
    return group;
  }
}

/** A running command's process group, and the timers and listeners that end it. */
class ProcessGroup {
  reason: EndReason | undefined;
  readonly settled: Promise<void>;
  private readonly pid: number | undefined;
  private done = false;
  private timeout: NodeJS.Timeout | undefined;
  private forceKill: NodeJS.Timeout | undefined;
  private readonly onAbort = () => this.end('abort');

  constructor(
    child: ResultPromise,
    private readonly options: { timeoutMs?: number; signal?: AbortSignal },
    private readonly forget: () => void,
  ) {
    this.pid = child.pid;
    this.settled = child.then(
      () => undefined,
      () => undefined,
    );
    if (this.pid === undefined) return; // never started: execa reports why
    liveGroups.add(this.pid);
    watchProcessEnd();
    if (options.timeoutMs !== undefined) this.timeout = setTimeout(() => this.end('timeout'), options.timeoutMs);
    if (options.signal?.aborted) this.end('abort');
    else options.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** TERM to the whole group now, KILL to what is left of it after the grace period. */
  end(reason: EndReason): void {
    if (this.pid === undefined || this.done || this.reason !== undefined) return;
    this.reason = reason;
    const pid = this.pid;
    signalGroup(pid, 'SIGTERM');
    // Kept after the leader has exited: a child that ignores TERM still holds the group (and so its id).
    this.forceKill = setTimeout(() => {
      signalGroup(pid, 'SIGKILL');
      liveGroups.delete(pid);
      unwatchIfIdle();
    }, KILL_AFTER_MS);
    this.forceKill.unref();
  }

  /** Called once the leader has exited and its output is collected. */
  exited(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timeout);
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.forget();
    if (this.pid !== undefined && this.forceKill === undefined) liveGroups.delete(this.pid);
    unwatchIfIdle();
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group has ended already.
  }
}

/** Process groups started here and not yet known to be over, for ending them when bdr itself ends. */
const liveGroups = new Set<number>();
const RELAYED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let watching = false;

function endAllGroups(): void {
  for (const pid of liveGroups) signalGroup(pid, 'SIGTERM');
  liveGroups.clear();
}

/**
 * Someone else's handler (bdr up's graceful shutdown) owns the signal when there is one; otherwise the
 * default action would end bdr without an 'exit' event, so the groups are ended here and the signal re-raised.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  endAllGroups();
  unwatch();
  process.kill(process.pid, signal);
}

function watchProcessEnd(): void {
  if (watching) return;
  watching = true;
  process.on('exit', endAllGroups);
  for (const s of RELAYED_SIGNALS) process.on(s, onSignal);
}

function unwatch(): void {
  if (!watching) return;
  watching = false;
  process.off('exit', endAllGroups);
  for (const s of RELAYED_SIGNALS) process.off(s, onSignal);
}

function unwatchIfIdle(): void {
  if (liveGroups.size === 0) unwatch();
}

function checkedArgv(argv: readonly string[]): [string, ...string[]] {
  const [file, ...args] = argv;
  if (file === undefined || file === '') throw new TypeError('empty command');
  for (const arg of argv) if (arg.includes('\0')) throw new TypeError('a command argument must not contain NUL');
  return [file, ...args];
}
