/**
 * Test harness for `bdr up`: a real `bdr up` subprocess with JSON logs, a real git repository, and the real
 * kubectl against the kubeconfig bdr up writes.
 */
import { eventually as pollUntil } from '../helpers/eventually.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { REPO_ROOT } from '../helpers/run-bdr.ts';

const BIN = join(REPO_ROOT, 'bin/bdr.js');
export const KUBECTL = '/usr/bin/kubectl';

export interface LogEntry {
  msg: string;
  level: string;
  [field: string]: unknown;
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa('git', args, {
    cwd,
    env: { GIT_AUTHOR_NAME: 'bdr test', GIT_AUTHOR_EMAIL: 'test@bdr.invalid', GIT_COMMITTER_NAME: 'bdr test', GIT_COMMITTER_EMAIL: 'test@bdr.invalid', GIT_CONFIG_NOSYSTEM: '1', HOME: cwd },
  });
  return String(r.stdout).trim();
}

/** A new git repository with `main` as its branch. */
export async function initRepo(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(dir, 'init', '--quiet', '--initial-branch=main');
}

export async function writeRepoFile(repo: string, file: string, text: string): Promise<void> {
  await mkdir(dirname(join(repo, file)), { recursive: true });
  await writeFile(join(repo, file), text);
}

/** Stages everything and commits; returns the commit id. */
export async function commitAll(repo: string, message: string): Promise<string> {
  await git(repo, 'add', '--all');
  await git(repo, 'commit', '--quiet', '--allow-empty', '-m', message);
  return git(repo, 'rev-parse', 'HEAD');
}

/** Slower machines need longer here: every step waits on a `bdr up` process. */
export const eventually = <T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 60_000): Promise<T> =>
  pollUntil(check, what, timeoutMs, 150);

export class BdrUp {
  readonly entries: LogEntry[] = [];
  stdout = '';
  stderr = '';
  readonly proc: ResultPromise;
  readonly exited: Promise<number>;

  constructor(
    readonly args: string[],
    readonly stateDir: string,
  ) {
    this.proc = execa('node', [BIN, 'up', ...args, '--state', stateDir, '--port', '0', '--metrics-port', '0'], {
      cwd: REPO_ROOT,
      reject: false,
      env: { NO_COLOR: '1', BDR_LOG_FORMAT: 'json', BDR_LOG_LEVEL: 'debug' },
      buffer: false,
    });
    let partial = '';
    this.proc.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.stderr += text;
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        try {
          this.entries.push(JSON.parse(line) as LogEntry);
        } catch {
          // not a log line (a stack trace, a Node warning): kept in stderr only
        }
      }
    });
    this.proc.stdout?.on('data', (chunk: Buffer) => {
      this.stdout += chunk.toString('utf8');
    });
    this.exited = this.proc.then((r) => r.exitCode ?? -1);
  }

  get kubeconfig(): string {
    return join(this.stateDir, 'kubeconfig');
  }

  syncs(): LogEntry[] {
    return this.entries.filter((e) => e.msg === 'synced');
  }

  /**
   * Waits until the process says it is watching (initial sync done, controllers started) and has logged the
   * catch-up sync it runs once watching, so that a test's next edit gets a sync of its own.
   */
  async ready(timeoutMs = 150_000): Promise<void> {
    await eventually(() => (this.stdout.includes('watching for changes') ? true : undefined), `bdr up to start\n${this.stderr.slice(-3000)}`, timeoutMs);
    await this.nextSync(1);
  }

  /** Waits for a sync that started after `after` syncs had been logged, and returns it. */
  async nextSync(after: number, timeoutMs = 60_000): Promise<LogEntry> {
    return eventually(() => this.syncs()[after], `sync #${after + 1}\n${this.stderr.slice(-3000)}`, timeoutMs);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    this.proc.kill(signal);
    return this.exited;
  }
}

export class Kubectl {
  constructor(
    readonly kubeconfig: string,
    readonly cacheDir: string,
  ) {}

  async run(...args: string[]): Promise<string> {
    const r = await execa(KUBECTL, ['--kubeconfig', this.kubeconfig, '--cache-dir', this.cacheDir, ...args], { reject: false, timeout: 30_000 });
    if (r.exitCode !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.exitCode}): ${String(r.stderr)}`);
    return String(r.stdout);
  }

  async json<T = KubeJson>(...args: string[]): Promise<T> {
    return JSON.parse(await this.run(...args, '-o', 'json')) as T;
  }

  /** The object, or undefined when kubectl says NotFound. */
  async find(...args: string[]): Promise<KubeJson | undefined> {
    const r = await execa(KUBECTL, ['--kubeconfig', this.kubeconfig, '--cache-dir', this.cacheDir, 'get', ...args, '-o', 'json'], { reject: false, timeout: 30_000 });
    if (r.exitCode === 0) return JSON.parse(String(r.stdout)) as KubeJson;
    if (String(r.stderr).includes('NotFound')) return undefined;
    throw new Error(`kubectl get ${args.join(' ')} failed: ${String(r.stderr)}`);
  }
}

export interface KubeJson {
  metadata: { name: string; namespace?: string; uid: string; resourceVersion: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  items?: KubeJson[];
  [k: string]: unknown;
}
