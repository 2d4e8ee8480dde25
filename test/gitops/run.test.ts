/**
 * `bdr run` against a cluster reached through a kubeconfig (here the embedded one, started by the test).
 */
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../../cluster/index.ts';
import { installCrds } from '../../gitops/apply.ts';
import { silentLogger } from '../../metrics/log.ts';
import { REPO_ROOT, runBdr } from '../helpers/run-bdr.ts';
import { eventually, tempDir } from './harness.ts';

describe('bdr run', { timeout: 180_000 }, () => {
  const tmp = tempDir('bdr-run-');
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
    tmp.remove();
  });

  it('runs the controllers with --kubeconfig until SIGTERM, then stops gracefully with exit 0', async () => {
    cluster = await startCluster({ kubeconfigPath: join(tmp.path, 'kubeconfig') });
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    await installCrds(kc, silentLogger);
    const proc = execa('node', [join(REPO_ROOT, 'bin/bdr.js'), 'run', '--kubeconfig', cluster.kubeconfigPath, '--no-leader-elect', '--metrics-port', '0'], {
      cwd: REPO_ROOT,
      reject: false,
      env: { BDR_LOG_FORMAT: 'json' },
      buffer: false,
    });
    let stderr = '';
    proc.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    try {
      const line = await eventually(() => stderr.split('\n').find((l) => l.includes('"controllers running"')), `controllers running\n${stderr}`, 60_000);
      const entry = JSON.parse(line) as { metrics?: string; leaderElection?: boolean };
      expect(entry.leaderElection).toBe(false);
      expect(entry.metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+/);
      const health = await fetch(new URL('/healthz', entry.metrics));
      expect(health.status).toBe(200);
    } finally {
      proc.kill('SIGTERM');
    }
    const r = await proc;
    expect(r.exitCode, stderr).toBe(0);
    expect(stderr).toContain('"shutting down"');
  });

  it('fails with exit code 3 when no cluster can be reached from the kubeconfig', async () => {
    const r = await runBdr(['run', '--kubeconfig', join(tmp.path, 'missing-kubeconfig')]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/^bdr: cannot load the kubeconfig/);
  });
});
