/**
 * `bdr up` with a remote repository (a bare repository behind a file:// URL) and `bdr up --once`.
 */
import { createServer, type AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBdr } from '../helpers/run-bdr.ts';
import { BdrUp, commitAll, eventually, git, initRepo, Kubectl, tempDir, writeRepoFile } from './harness.ts';

/** bdr up starts an API server and the controllers: slow on a loaded CI machine. */
const SLOW = { timeoutMs: 150_000 };

const configMap = (name: string, value: string) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
data:
  value: ${value}
`;

describe('bdr up --repo file://… (remote)', { timeout: 180_000 }, () => {
  const tmp = tempDir('bdr-up-remote-');
  let up: BdrUp | undefined;
  afterAll(async () => {
    if (up) await up.stop('SIGKILL');
    tmp.remove();
  });

  it('clones the branch into STATE/repo and picks up a pushed commit', async () => {
    const bare = join(tmp.path, 'origin.git');
    const work = join(tmp.path, 'work');
    await git(tmp.path, 'init', '--quiet', '--bare', '--initial-branch=main', bare);
    await initRepo(work);
    await writeRepoFile(work, 'first.yaml', configMap('first', 'one'));
    const c1 = await commitAll(work, 'first');
    await git(work, 'push', '--quiet', bare, 'main');

    const state = join(tmp.path, 'state');
    up = new BdrUp(['--repo', `file://${bare}`, '--branch', 'main', '--interval', '1s'], state);
    await up.ready();
    const k = new Kubectl(up.kubeconfig, join(tmp.path, 'kube-cache'));
    const first = await k.json('get', 'configmap', 'first', '-n', 'default');
    expect(first.metadata.annotations?.['bdr.dev/source-commit']).toBe(c1);
    expect(up.stdout).toContain(`@ ${c1}`);
    expect(await git(join(state, 'repo'), 'rev-parse', 'HEAD')).toBe(c1);

    await writeRepoFile(work, 'second.yaml', configMap('second', 'two'));
    const c2 = await commitAll(work, 'second');
    await git(work, 'push', '--quiet', bare, 'main');
    const second = await eventually(() => k.find('configmap', 'second', '-n', 'default'), 'ConfigMap/second from the pushed commit');
    expect(second.metadata.annotations?.['bdr.dev/source-commit']).toBe(c2);
    // The object appears while that sync still runs; its log line comes once it is done.
    await eventually(() => up?.syncs().find((s) => s.commit === c2 && s.created === 1), 'the sync of the pushed commit, logged');
    // Unchanged objects are not rewritten for a new commit: their annotation still names the commit that wrote them.
    expect((await k.json('get', 'configmap', 'first', '-n', 'default')).metadata.annotations?.['bdr.dev/source-commit']).toBe(c1);

    // Drift is repaired at the next interval: an object deleted by hand comes back, one edited by hand is reset.
    await k.run('delete', 'configmap', 'second', '-n', 'default');
    await k.run('patch', 'configmap', 'first', '-n', 'default', '--type=merge', '-p', '{"data":{"value":"edited by hand"}}');
    await eventually(() => k.find('configmap', 'second', '-n', 'default'), 'ConfigMap/second re-created');
    await eventually(async () => ((await k.json('get', 'configmap', 'first', '-n', 'default')).data?.value === 'one' ? true : undefined), 'ConfigMap/first reset');

    // A commit that removes a file prunes its object.
    await git(work, 'rm', '--quiet', 'first.yaml');
    await commitAll(work, 'drop first');
    await git(work, 'push', '--quiet', bare, 'main');
    await eventually(async () => ((await k.find('configmap', 'first', '-n', 'default')) === undefined ? true : undefined), 'ConfigMap/first pruned');
    expect(await up.stop('SIGTERM')).toBe(0);
    up = undefined;
  });

  it('fails with exit code 3 and a clear message when the remote cannot be fetched (--once)', async () => {
    const r = await runBdr(['up', '--repo', `file://${join(tmp.path, 'missing.git')}`, '--once', '--state', join(tmp.path, 'state-missing'), '--metrics-port', '0'], SLOW);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/bdr: cannot sync file:\/\/.*missing\.git: cannot fetch/);
  });
});

describe('bdr up --once', { timeout: 180_000 }, () => {
  const tmp = tempDir('bdr-up-once-');
  afterAll(() => tmp.remove());

  it('exits 0 when everything applied, and 1 with file:line when a manifest is invalid', async () => {
    const repo = join(tmp.path, 'repo');
    await initRepo(repo);
    await writeRepoFile(repo, 'ok.yaml', configMap('ok', 'fine'));
    const state = join(tmp.path, 'state');
    const clean = await runBdr(['up', '--repo', repo, '--once', '--state', state, '--metrics-port', '0'], SLOW);
    expect(clean.exitCode, clean.stderr).toBe(0);
    expect(clean.stdout).toContain(`kubeconfig:  ${join(state, 'kubeconfig')}`);

    await writeRepoFile(repo, 'bad.yaml', 'apiVersion: bdr.dev/v1alpha1\nkind: Machine\nmetadata: {name: m1}\nspec:\n  connection: {type: telnet}\n');
    const dirty = await runBdr(['up', '--repo', repo, '--once', '--state', state, '--metrics-port', '0'], SLOW);
    expect(dirty.exitCode, dirty.stderr).toBe(1);
    expect(dirty.stdout).toMatch(/^bad\.yaml:5: Machine\/m1: spec\.connection\.type: /m);
  });

  it('exits 3 with a hint when the metrics port is taken', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const repo = join(tmp.path, 'repo-port');
      await writeRepoFile(repo, 'ok.yaml', configMap('ok', 'fine'));
      const r = await runBdr(['up', '--repo', repo, '--once', '--state', join(tmp.path, 'state-port'), '--metrics-port', String(port)], SLOW);
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toMatch(/^bdr: cannot start the controllers: .*EADDRINUSE.*choose another --metrics-port/m);
    } finally {
      server.close();
    }
  });

  it('refuses a state directory in use by a running bdr up, and takes over one left by a dead process', async () => {
    const repo = join(tmp.path, 'repo-locked');
    await writeRepoFile(repo, 'ok.yaml', configMap('ok', 'fine'));
    const state = join(tmp.path, 'state-locked');
    await mkdir(state, { recursive: true });
    // This test process stands in for a running bdr up: its pid is alive.
    await writeFile(join(state, 'bdr-up.pid'), `${process.pid}\n`);
    const locked = await runBdr(['up', '--repo', repo, '--once', '--state', state, '--metrics-port', '0'], SLOW);
    expect(locked.exitCode).toBe(3);
    expect(locked.stderr).toContain(`is in use by another bdr up (pid ${process.pid})`);
    // A pid that cannot be running (above the kernel's pid_max): the lock of a killed process.
    await writeFile(join(state, 'bdr-up.pid'), '4194305\n');
    const taken = await runBdr(['up', '--repo', repo, '--once', '--state', state, '--metrics-port', '0'], SLOW);
    expect(taken.exitCode, taken.stderr).toBe(0);
  });

  it('refuses a --branch for a local directory and an unreadable path', async () => {
    const branch = await runBdr(['up', '--repo', tmp.path, '--branch', 'main', '--once', '--state', join(tmp.path, 's2')], SLOW);
    expect(branch.exitCode).toBe(2);
    expect(branch.stderr).toContain('--branch applies to a remote repository');
    const missing = await runBdr(['up', '--repo', join(tmp.path, 'nope'), '--once', '--state', join(tmp.path, 's3')], SLOW);
    expect(missing.exitCode).toBe(3);
    expect(missing.stderr).toContain('no such directory');
  });
});
