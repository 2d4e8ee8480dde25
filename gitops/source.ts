/**
 * Where `bdr up` reads the repository from.
 *
 * - A directory (`--repo ./path`): its files as they are on disk, watched with chokidar. A directory that is a
 *   git working tree is read the same way, uncommitted edits included: the commit recorded is HEAD, with
 *   `-dirty` when the tree has changes, so that objects say what they came from.
 * - A remote (`--repo https://…`, `ssh://…`, `git@host:path`, `file:///…`): fetched with the real `git` into
 *   `STATE/repo` and checked out there (a clone bdr-up owns: local edits in it are discarded at each fetch).
 *
 * git always runs with argument arrays, never a shell; URLs and branches that git could read as options are
 * refused; credentials in a URL never reach a log line.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { watch, type FSWatcher } from 'chokidar';
import { execa } from 'execa';
import type { Logger } from '../metrics/log.ts';

export interface Revision {
  /** Directory whose YAML files are applied. */
  root: string;
  /** The commit the files are at, when known. */
  commit?: string;
}

export interface Source {
  /** For logs: the path, or the URL without credentials. */
  readonly description: string;
  readonly kind: 'directory' | 'remote';
  /** Brings the files up to date (fetches, for a remote) and says where they are. */
  prepare(): Promise<Revision>;
  /**
   * Calls `onChange` when the files may have changed: after a burst of file events has settled (directory),
   * never (remote: the caller polls `prepare`). Resolves once watching has started.
   */
  watch(onChange: () => void): Promise<void>;
  close(): Promise<void>;
}

const GIT_ENV = { GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '', SSH_ASKPASS: '', LC_ALL: 'C' };

async function git(args: string[], cwd?: string, timeoutMs = 300_000): Promise<string> {
  const r = await execa('git', args, { cwd, env: GIT_ENV, timeout: timeoutMs, stdin: 'ignore' });
  return String(r.stdout).trim();
}

/** `scheme://…` or scp-like `user@host:path`; anything else is a local path. */
export function isRemoteUrl(repo: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(repo) || /^[^/\s:]+@[^/\s:]+:/.test(repo);
}

/** The URL with any user:password removed, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

/** Calls `fn` once a burst of calls has been quiet for `quietMs`, and at least every `maxWaitMs` during one. */
export function debounce(fn: () => void, quietMs: number, maxWaitMs = quietMs * 10): { call(): void; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let first: number | undefined;
  const fire = () => {
    timer = undefined;
    first = undefined;
    fn();
  };
  return {
    call() {
      const now = Date.now();
      first ??= now;
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, Math.max(0, Math.min(quietMs, first + maxWaitMs - now)));
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      first = undefined;
    },
  };
}

/**
 * Hidden paths (.git, editor swap files) and node_modules never trigger a sync; the loader skips them too. Nor
 * do the excluded directories: a state directory inside the repository would otherwise have every status write
 * of the embedded cluster trigger a sync.
 */
function ignoredUnder(root: string, exclude: readonly string[]): (path: string) => boolean {
  const excluded = exclude.map((e) => resolve(e));
  return (path) => {
    const abs = resolve(path);
    if (excluded.some((e) => abs === e || abs.startsWith(`${e}${sep}`))) return true;
    const rel = relative(root, abs);
    if (rel === '' || rel.startsWith('..')) return false;
    return rel.split(sep).some((part) => part.startsWith('.') || part === 'node_modules');
  };
}

export function directorySource(path: string, options: { debounceMs?: number; exclude?: readonly string[]; log: Logger }): Source {
  const root = resolve(path);
  let watcher: FSWatcher | undefined;
  let pending: ReturnType<typeof debounce> | undefined;
  return {
    description: root,
    kind: 'directory',
    async prepare() {
      if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`${root} is not a directory`);
      await settleGitOperation(root, options.log);
      return { root, commit: await workingTreeCommit(root) };
    },
    async watch(onChange) {
      pending = debounce(onChange, options.debounceMs ?? 300);
      const w = watch(root, { ignoreInitial: true, ignored: ignoredUnder(root, options.exclude ?? []), awaitWriteFinish: false });
      watcher = w;
      w.on('all', (event, file) => {
        options.log.debug('file changed', { event, file: relative(root, file) });
        pending?.call();
      });
      w.on('error', (err) => options.log.warn('watching the repository failed', { error: err }));
      await new Promise<void>((ready) => w.once('ready', () => ready()));
    },
    async close() {
      pending?.cancel();
      await watcher?.close();
    },
  };
}

/**
 * A checkout or pull rewrites the tree file by file; applying halfway would prune objects whose files are
 * momentarily gone. git holds index.lock meanwhile, so wait (a bounded time: a lock left by a crashed git must
 * not stop syncing for good).
 */
async function settleGitOperation(root: string, log: Logger, maxWaitMs = 10_000): Promise<void> {
  const lock = join(root, '.git', 'index.lock');
  const deadline = Date.now() + maxWaitMs;
  if (existsSync(lock)) log.debug('waiting for git to release index.lock', { lock });
  while (existsSync(lock)) {
    if (Date.now() > deadline) {
      log.warn('git index.lock is still there; applying anyway', { lock });
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** HEAD of the working tree containing root (with -dirty when it has changes), or undefined outside git. */
async function workingTreeCommit(root: string): Promise<string | undefined> {
  try {
    const head = await git(['rev-parse', '--verify', '--quiet', 'HEAD'], root, 30_000);
    const status = await git(['status', '--porcelain', '--untracked-files=normal', '--', '.'], root, 30_000);
    return status === '' ? head : `${head}-dirty`;
  } catch {
    return undefined;
  }
}

export interface RemoteOptions {
  url: string;
  /** Branch to follow; default: the remote's default branch (its HEAD). */
  branch?: string;
  /** Where the clone lives (STATE/repo). */
  dir: string;
  log: Logger;
}

export function remoteSource(options: RemoteOptions): Source {
  const { url, branch, dir, log } = options;
  if (url.startsWith('-')) throw new Error(`invalid repository URL ${JSON.stringify(redactUrl(url))}`);
  if (branch !== undefined && (branch === '' || branch.startsWith('-') || !/^[\w./-]+$/.test(branch) || branch.includes('..'))) {
    throw new Error(`invalid branch name ${JSON.stringify(branch)}`);
  }
  const target = dir;
  const ref = branch === undefined ? 'HEAD' : `refs/heads/${branch}`;
  const description = `${redactUrl(url)}${branch === undefined ? '' : `#${branch}`}`;
  return {
    description,
    kind: 'remote',
    async prepare() {
      if (!existsSync(join(target, '.git'))) {
        await mkdir(target, { recursive: true });
        await git(['init', '--quiet', target]);
      }
      // The URL is passed on each fetch rather than stored as a remote, so a changed --repo just works.
      // The fetched commit goes to a ref of our own, then the tree is forced to it and cleaned.
      try {
        await git(['fetch', '--quiet', '--no-tags', '--force', '--depth', '1', '--', url, `+${ref}:refs/bdr/source`], target);
      } catch (err) {
        const stderr = String((err as { stderr?: unknown }).stderr ?? '').split('\n').filter(Boolean).pop() ?? 'git fetch failed';
        throw new Error(`cannot fetch ${description}: ${redactUrl(stderr)}`);
      }
      await git(['checkout', '--quiet', '--force', '--detach', 'refs/bdr/source'], target);
      await git(['clean', '-ffdxq'], target);
      const commit = await git(['rev-parse', 'HEAD'], target);
      log.debug('fetched', { repo: description, commit });
      return { root: resolve(target), commit };
    },
    async watch() {
      // Remote sources are polled by the sync loop.
    },
    async close() {},
  };
}

/** A bare repository (HEAD, objects/, refs/ and no working tree): it has commits, not files to read. */
export function isBareRepository(path: string): boolean {
  return !existsSync(join(path, '.git')) && existsSync(join(path, 'HEAD')) && existsSync(join(path, 'objects')) && existsSync(join(path, 'refs'));
}

/**
 * A remote when `repo` looks like a URL or is a bare repository on disk (read as file://, since its directory
 * holds no manifests and applying it as one would find nothing); otherwise a directory.
 */
export function sourceFor(repo: string, options: { branch?: string; stateDir: string; debounceMs?: number; log: Logger }): Source {
  const url = isRemoteUrl(repo) ? repo : isBareRepository(repo) ? pathToFileURL(resolve(repo)).href : undefined;
  if (url !== undefined) return remoteSource({ url, branch: options.branch, dir: join(options.stateDir, 'repo'), log: options.log });
  if (options.branch !== undefined) throw new Error(`--branch applies to a remote repository; ${repo} is a local directory (its files are read as they are)`);
  return directorySource(repo, { debounceMs: options.debounceMs, exclude: [options.stateDir], log: options.log });
}
