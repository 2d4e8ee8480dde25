import { execa } from 'execa';

/** Thrown when a part of the test bed cannot be set up; the message says what to fix. */
export class TestBedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`test bed: ${message}`, options);
    this.name = 'TestBedError';
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a local program (argument array, no shell) and returns its output whatever the exit code. */
export async function run(argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new TypeError('empty command');
  const r = await execa(file, args, {
    input: options.input ?? '',
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
    stripFinalNewline: false,
    encoding: 'utf8',
  });
  return { stdout: r.stdout, stderr: r.stderr, code: r.exitCode ?? -1 };
}

/** Like `run`, but a non-zero exit is a TestBedError naming the command and its stderr. */
export async function runOk(argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(argv, options);
  if (r.code !== 0) {
    throw new TestBedError(`\`${argv.join(' ')}\` exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
  }
  return r.stdout;
}

export const TESTBED_ROOT = '/tmp/bdr-testbed';
/** Every pool and directory the test bed creates starts with this, followed by the owning process id. */
export const TEST_PREFIX = 'bdrt';

/** A name unique across parallel test workers and recognisable as stale once its process is gone. */
export function uniqueTestName(): string {
  return `${TEST_PREFIX}${process.pid}x${Math.random().toString(36).slice(2, 7)}`;
}

/** The process id embedded by `uniqueTestName`, if `name` is one of ours. */
export function ownerPid(name: string): number | undefined {
  const m = new RegExp(`^${TEST_PREFIX}(\\d+)x`).exec(name);
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
