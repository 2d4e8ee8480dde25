import { existsSync } from 'node:fs';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { crdFor } from '../../api/crd.ts';
import { KINDS } from '../../api/kinds/index.ts';
import { startCluster, type KubeObject } from '../../cluster/index.ts';
import { applyRepository, installCrds, type SyncReport } from '../../gitops/apply.ts';
import { SyncLoop } from '../../gitops/loop.ts';
import { debounce, directorySource, isRemoteUrl, redactUrl, remoteSource, sourceFor, type Revision, type Source } from '../../gitops/source.ts';
import { createLogger, silentLogger } from '../../metrics/log.ts';
import { commitAll, eventually, git, initRepo, tempDir, writeRepoFile } from './harness.ts';

const MACHINE = KINDS.find((k) => k.kind === 'Machine') ?? KINDS[0]!;

describe('debounce', () => {
  it('turns a burst into one call, and still calls during an endless burst', () => {
    vi.useFakeTimers();
    try {
      const fn = vi.fn();
      const d = debounce(fn, 100, 1000);
      for (let i = 0; i < 5; i++) {
        d.call();
        vi.advanceTimersByTime(50);
      }
      expect(fn).not.toHaveBeenCalled();
      vi.advanceTimersByTime(100);
      expect(fn).toHaveBeenCalledTimes(1);
      for (let i = 0; i < 30; i++) {
        d.call();
        vi.advanceTimersByTime(50);
      }
      expect(fn).toHaveBeenCalledTimes(2);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('repository addresses', () => {
  it('tells URLs from local paths', () => {
    for (const url of ['https://git.example.com/a.git', 'ssh://git@host/a', 'git@github.com:org/repo.git', 'file:///srv/git/a.git']) expect(isRemoteUrl(url), url).toBe(true);
    for (const path of ['examples/quickstart', '/srv/repo', './a:b', 'C']) expect(isRemoteUrl(path), path).toBe(false);
  });

  it('never shows credentials of a URL', () => {
    expect(redactUrl('https://user:s3cret@git.example.com/a.git')).toBe('https://***@git.example.com/a.git');
    expect(remoteSource({ url: 'https://bot:tok3n@git.example.com/a.git', dir: '/tmp/x', log: silentLogger }).description).not.toContain('tok3n');
  });

  it('refuses a URL or a branch that git could read as an option', () => {
    expect(() => remoteSource({ url: '--upload-pack=touch /tmp/pwned', dir: '/tmp/x', log: silentLogger })).toThrow(/invalid repository URL/);
    expect(() => remoteSource({ url: 'file:///a', branch: '-b', dir: '/tmp/x', log: silentLogger })).toThrow(/invalid branch/);
    expect(() => sourceFor('some/dir', { branch: 'main', stateDir: '/tmp/x', log: silentLogger })).toThrow(/--branch applies to a remote/);
  });
});

describe('directory source', () => {
  const tmp = tempDir('bdr-source-dir-');
  afterAll(() => tmp.remove());

  it('reports one change for a burst of edits, and none for .git', async () => {
    const repo = join(tmp.path, 'repo');
    await initRepo(repo);
    await writeRepoFile(repo, 'a.yaml', 'a: 1\n');
    const c1 = await commitAll(repo, 'one');
    // What the watcher saw, in order: each file event it logs, and each change it reports.
    const seen: string[] = [];
    const log = createLogger({ level: 'debug', format: 'json', write: (line) => seen.push(`file ${String((JSON.parse(line) as { file?: string }).file)}`) });
    // A quiet period long enough that a loaded machine does not split the burst below.
    const source = directorySource(repo, { debounceMs: 1500, log });
    expect(await source.prepare()).toEqual({ root: repo, commit: c1 });
    await source.watch(() => seen.push('change'));
    try {
      // The sentinel is written after the .git file: once its event is in, an event for .git would be too.
      await mkdir(join(repo, '.git', 'scratch'), { recursive: true });
      await writeFile(join(repo, '.git', 'scratch', 'x'), 'x');
      await writeFile(join(repo, 'sentinel.yaml'), 's: 1\n');
      await eventually(() => (seen.includes('change') ? true : undefined), 'the change of the sentinel');
      expect(seen.filter((s) => s.includes('.git'))).toEqual([]);
      expect(seen.filter((s) => s === 'change')).toHaveLength(1);
      seen.length = 0;
      for (let i = 0; i < 20; i++) await writeFile(join(repo, `f${i % 4}.yaml`), `n: ${i}\n`);
      await writeFile(join(repo, 'last.yaml'), 'n: last\n');
      // The change that follows the burst's last event: every earlier event of the burst is before it.
      await eventually(() => {
        const last = seen.indexOf('file last.yaml');
        return last >= 0 && seen.indexOf('change', last) > last ? true : undefined;
      }, 'the change after the burst');
      expect(seen.filter((s) => s === 'change')).toHaveLength(1);
      // Uncommitted edits are applied as they are, and say so in the commit they record.
      expect((await source.prepare()).commit).toBe(`${c1}-dirty`);
    } finally {
      await source.close();
    }
  });
});

describe('directory source during a git operation', () => {
  const tmp = tempDir('bdr-source-lock-');
  afterAll(() => tmp.remove());

  it('waits for git to release index.lock before reading the tree', async () => {
    const repo = join(tmp.path, 'repo');
    await initRepo(repo);
    await writeRepoFile(repo, 'a.yaml', 'a: 1\n');
    await commitAll(repo, 'one');
    await writeFile(join(repo, '.git', 'index.lock'), '');
    const logged: string[] = [];
    const source = directorySource(repo, { log: createLogger({ level: 'debug', format: 'json', write: (line) => logged.push((JSON.parse(line) as { msg: string }).msg) }) });
    let done = false;
    const prepared = source.prepare().then((r) => {
      done = true;
      return r;
    });
    await eventually(() => (logged.includes('waiting for git to release index.lock') ? true : undefined), 'prepare to see the lock');
    expect(done).toBe(false);
    await unlink(join(repo, '.git', 'index.lock'));
    expect((await prepared).root).toBe(repo);
  });
});

describe('remote source', () => {
  const tmp = tempDir('bdr-source-remote-');
  afterAll(() => tmp.remove());

  it('follows a branch, including a force-pushed one, and discards edits in its clone', async () => {
    const bare = join(tmp.path, 'origin.git');
    const work = join(tmp.path, 'work');
    await git(tmp.path, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
    await initRepo(work);
    await writeRepoFile(work, 'a.yaml', 'a: 1\n');
    await commitAll(work, 'main');
    await git(work, 'push', '--quiet', bare, 'main');
    await git(work, 'checkout', '--quiet', '-b', 'staging');
    await writeRepoFile(work, 'b.yaml', 'b: 1\n');
    const s1 = await commitAll(work, 'staging one');
    await git(work, 'push', '--quiet', bare, 'staging');

    const dir = join(tmp.path, 'state', 'repo');
    const source = remoteSource({ url: `file://${bare}`, branch: 'staging', dir, log: silentLogger });
    expect(await source.prepare()).toEqual({ root: dir, commit: s1 });
    await writeFile(join(dir, 'local-edit.yaml'), 'x: 1\n');

    await git(work, 'reset', '--quiet', '--hard', 'main');
    await writeRepoFile(work, 'c.yaml', 'c: 1\n');
    const s2 = await commitAll(work, 'rewritten');
    await git(work, 'push', '--quiet', '--force', bare, 'staging');
    expect(await source.prepare()).toEqual({ root: dir, commit: s2 });
    expect(await git(dir, 'ls-files')).toBe('a.yaml\nc.yaml');
    expect(await git(dir, 'status', '--porcelain', '--ignored')).toBe('');
  });

  it('reads a bare repository given as a path as a remote, not as an empty directory', async () => {
    const bare = join(tmp.path, 'origin.git');
    const source = sourceFor(bare, { branch: 'staging', stateDir: join(tmp.path, 'state3'), log: silentLogger });
    expect(source.kind).toBe('remote');
    expect(source.description).toBe(`file://${bare}#staging`);
    const r = await source.prepare();
    expect(r.root).toBe(join(tmp.path, 'state3', 'repo'));
    expect(existsSync(join(r.root, 'c.yaml'))).toBe(true);
  });

  it('fails with a clear message for a branch that does not exist', async () => {
    const bare = join(tmp.path, 'origin.git');
    const source = remoteSource({ url: `file://${bare}`, branch: 'nope', dir: join(tmp.path, 'state2', 'repo'), log: silentLogger });
    await expect(source.prepare()).rejects.toThrow(/cannot fetch file:\/\/.*#nope: .*nope/);
  });
});

describe('sync loop', () => {
  it('runs one apply at a time and coalesces triggers that arrive during one', async () => {
    let applies = 0;
    let release: (() => void) | undefined;
    const source: Source = { description: 'fake', kind: 'directory', prepare: async () => ({ root: '/nowhere' }), watch: async () => undefined, close: async () => undefined };
    const loop = new SyncLoop({
      source,
      log: silentLogger,
      apply: async (_rev: Revision) => {
        applies++;
        await new Promise<void>((r) => (release = r));
        return { files: 0, findings: [], errors: [], created: [], updated: [], unchanged: 0, pruned: [], kept: [], createdNamespaces: [], crdWrites: 0, writes: 0 } satisfies SyncReport;
      },
    });
    loop.trigger();
    await eventually(() => (applies === 1 ? true : undefined), 'first apply');
    for (let i = 0; i < 5; i++) loop.trigger();
    release?.();
    await eventually(() => (applies === 2 ? true : undefined), 'second apply');
    release?.();
    // Another queued apply would run before the loop settles.
    await loop.settled();
    expect(applies).toBe(2);
    await loop.stop();
  });
});

describe('applyRepository against the embedded cluster', () => {
  const tmp = tempDir('bdr-apply-');
  afterAll(() => tmp.remove());

  it('sends no write request at all when the repository is unchanged, Secrets with stringData included', async () => {
    const writes: string[] = [];
    const cluster = await startCluster({ onRequest: (e) => (e.method !== 'GET' ? writes.push(`${e.method} ${e.url}`) : undefined) });
    try {
      const kc = new KubeConfig();
      kc.loadFromFile(cluster.kubeconfigPath);
      const repo = join(tmp.path, 'repo');
      await writeRepoFile(repo, 'secret.yaml', 'apiVersion: v1\nkind: Secret\nmetadata: {name: key, namespace: vault}\nstringData: {token: abc}\n');
      await writeRepoFile(repo, 'rp.yaml', 'apiVersion: bdr.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: rp}\nspec: {keepLast: 3}\n');
      const first = await applyRepository(kc, { root: repo, log: silentLogger });
      expect(first.created.sort()).toEqual(['RetentionPolicy/default/rp', 'Secret/vault/key']);
      expect(first.createdNamespaces).toEqual(['vault']);
      writes.length = 0;
      const rv = cluster.resourceVersion();
      const second = await applyRepository(kc, { root: repo, log: silentLogger });
      expect(second.writes).toBe(0);
      expect(writes).toEqual([]);
      expect(cluster.resourceVersion()).toBe(rv);
    } finally {
      await cluster.stop();
    }
  });

  it('reports a field the cluster drops (a misspelt key) instead of patching it silently forever', async () => {
    const cluster = await startCluster({});
    try {
      const kc = new KubeConfig();
      kc.loadFromFile(cluster.kubeconfigPath);
      const repo = join(tmp.path, 'typo');
      await writeRepoFile(repo, 'cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndta: {a: b}\n');
      const r = await applyRepository(kc, { root: repo, log: silentLogger });
      expect(r.created).toEqual(['ConfigMap/default/typo']);
      expect(r.errors).toEqual(['cm.yaml:1: ConfigMap/default/typo: the cluster did not keep dta as written (unknown or misspelt fields?)']);
    } finally {
      await cluster.stop();
    }
  });

  it('restores a CRD that was changed by hand, with its enums and defaults intact', async () => {
    const cluster = await startCluster({});
    try {
      const kc = new KubeConfig();
      kc.loadFromFile(cluster.kubeconfigPath);
      expect(await installCrds(kc, silentLogger)).toBe(5);
      expect(await installCrds(kc, silentLogger)).toBe(0);
      const crd = JSON.parse(JSON.stringify(crdFor(MACHINE))) as KubeObject & { spec: { versions: Array<{ additionalPrinterColumns?: unknown[] }> } };
      const [version] = crd.spec.versions;
      if (!version) throw new Error('the Machine CRD has no version');
      delete version.additionalPrinterColumns;
      cluster.apply(crd);
      expect(await installCrds(kc, silentLogger)).toBe(1);
      expect(await installCrds(kc, silentLogger)).toBe(0);
      const machine = cluster.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'm' }, spec: { connection: { type: 'local' } } });
      // Defaults from the CRD schema were applied: the schema reached the server whole.
      expect((machine.spec as { role?: string }).role).toBe('Source');
    } finally {
      await cluster.stop();
    }
  });
});
