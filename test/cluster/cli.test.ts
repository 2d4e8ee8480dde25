import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import type { Cluster } from '../../cluster/index.ts';
import { kubectlOk, REPO_ROOT, requireKubectl } from './helpers.ts';

/** Starts `bdr cluster` and resolves once it prints its kubeconfig. */
async function serve(stateDir: string): Promise<{ child: ResultPromise; cluster: Cluster }> {
  const child = execa('node', [join(REPO_ROOT, 'bin', 'bdr.js'), 'cluster', '--state', stateDir, '--port', '0'], { cwd: tmpdir(), reject: false });
  let out = '';
  const kubeconfigPath = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /export KUBECONFIG=(\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    void child.then((r) => reject(new Error(`bdr cluster exited early (${r.exitCode}): ${String(r.stderr)}`)));
  });
  const url = /cluster serving at (\S+)/.exec(out)![1]!;
  return { child, cluster: { url, kubeconfigPath } as Cluster };
}

// Each test starts `bdr` (tsx compiles the whole CLI) and kubectl several times: minutes on a loaded machine.
const SLOW = { timeout: 180_000 };

describe('bdr cluster', () => {
  it('serves with bdr CRDs installed, writes DIR/kubeconfig, stops on SIGTERM and keeps state', SLOW, async () => {
    requireKubectl();
    const state = mkdtempSync(join(tmpdir(), 'bdr-cluster-cli-'));
    const first = await serve(state);
    expect(first.cluster.kubeconfigPath).toBe(join(state, 'kubeconfig'));
    expect(readFileSync(first.cluster.kubeconfigPath, 'utf8')).toContain(first.cluster.url);
    const crds = await kubectlOk(first.cluster, ['get', 'crd', '-o', 'name']);
    const expected = readdirSync(join(REPO_ROOT, 'crds')).filter((f) => f.endsWith('.yaml')).length;
    expect(crds.trim().split('\n').filter((l) => l.includes('.bdr.dev'))).toHaveLength(expected);
    await kubectlOk(first.cluster, ['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep-me}\ndata: {a: b}\n' });
    first.child.kill('SIGTERM');
    const result = await first.child;
    expect(result.exitCode).toBe(0);
    expect(String(result.stderr)).toContain('cluster stopped');

    const second = await serve(state);
    try {
      expect(await kubectlOk(second.cluster, ['get', 'configmap', 'keep-me', '-o', 'jsonpath={.data.a}'])).toBe('b');
    } finally {
      second.child.kill('SIGINT');
      expect((await second.child).exitCode).toBe(0);
    }
  });

  it('fails with a clear message when the port is taken', SLOW, async () => {
    const state = mkdtempSync(join(tmpdir(), 'bdr-cluster-cli-'));
    const first = await serve(state);
    try {
      const port = new URL(first.cluster.url).port;
      const r = await execa('node', [join(REPO_ROOT, 'bin', 'bdr.js'), 'cluster', '--port', port], { reject: false });
      expect(r.exitCode).toBe(3);
      expect(String(r.stderr)).toContain(`port ${port} is already in use`);
    } finally {
      first.child.kill('SIGTERM');
      await first.child;
    }
  });
});
