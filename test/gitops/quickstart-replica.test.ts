/**
 * The quickstart's replica: `bdr up --sandbox-pool A --sandbox-replica-pool B` on the quickstart's own manifests
 * (pool names swapped for this test's), a real bdr up process, real zfs-fuse pools, the real kubectl.
 *
 * Expectation, worked out by hand from examples/quickstart/quickstart.yaml: the source gets a restore point every
 * 20 s and keeps the 3 newest (plus the newest of each hour); the vector runs every 60 s with a remote policy of
 * keepLast 1 + hourly 24, so each run sends only the source's newest point. The first run is a full send of one
 * point; the second sends one more and keeps the first as its base until the third prunes it. So once the replica
 * holds two points, they are at least 40 s apart (at least one 20 s point in between was never sent), the replica
 * holds fewer points than the source (2, or 3 across an hour boundary, against at least 3, or 4), and the vector
 * needed no key: KeyAuthorized=True with reason LocalPipe, and no key Secret.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/run-bdr.ts';
import { ensureZfsFuse, run, uniqueTestName } from '../testbed/index.ts';
import { eventually } from '../helpers/eventually.ts';
import { BdrUp, Kubectl, tempDir, writeRepoFile } from './harness.ts';

const instant = (snapshot: string): number => {
  const m = /@bdr-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(snapshot);
  if (!m) throw new Error(`not a bdr restore point: ${snapshot}`);
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi, s);
};

async function snapshots(dataset: string): Promise<string[]> {
  const r = await execa('zfs', ['list', '-H', '-t', 'snapshot', '-o', 'name', '-s', 'createtxg', '-d', '1', dataset], { reject: false });
  if (r.exitCode !== 0) return [];
  return r.stdout.split('\n').filter((l) => l.includes('@bdr-'));
}

describe('npm start: the quickstart replicates into a second sandbox pool', { timeout: 600_000 }, () => {
  const pool = uniqueTestName();
  const replicaPool = uniqueTestName();
  const tmp = tempDir('bdr-qs-replica-');
  let up: BdrUp | undefined;

  beforeAll(async () => {
    await ensureZfsFuse();
    const quickstart = await readFile(join(REPO_ROOT, 'examples/quickstart/quickstart.yaml'), 'utf8');
    expect(quickstart).toContain('dataset: bdr-quickstart-replica/replicas');
    // The replica pool's name first: the source pool's name is a prefix of it.
    const mine = quickstart.replaceAll('bdr-quickstart-replica/', `${replicaPool}/`).replaceAll('bdr-quickstart/', `${pool}/`);
    await writeRepoFile(join(tmp.path, 'repo'), 'quickstart.yaml', mine);
  }, 600_000);

  afterAll(async () => {
    if (up) await up.stop('SIGTERM');
    for (const p of [pool, replicaPool]) await run(['zpool', 'destroy', '-f', p], { timeoutMs: 120_000 });
    tmp.remove();
  }, 240_000);

  it('a sparse replica appears on the second pool, through a local pipe without any key', async () => {
    const state = join(tmp.path, 'state');
    up = new BdrUp(['--repo', join(tmp.path, 'repo'), '--sandbox-pool', pool, '--sandbox-replica-pool', replicaPool, '--no-metrics'], state);
    await up.ready();
    expect(up.stdout).toContain(`sandbox:     pool ${pool} created (backed by ${join(state, 'sandbox', `${pool}.img`)})`);
    expect(up.stdout).toContain(`sandbox:     pool ${replicaPool} created (backed by ${join(state, 'sandbox', `${replicaPool}.img`)})`);
    const k = new Kubectl(up.kubeconfig, join(tmp.path, 'kube-cache'));

    const source = `${pool}/demo`;
    const replica = `${replicaPool}/replicas/demo`;
    const seenOnSource = new Set<string>();
    const observed = await eventually(
      async () => {
        const [src, rep] = await Promise.all([snapshots(source), snapshots(replica)]);
        for (const s of src) seenOnSource.add(s.slice(s.indexOf('@')));
        return rep.length >= 2 ? { src, rep } : undefined;
      },
      `two restore points on ${replica}\n${up.stderr.slice(-3000)}`,
      400_000,
      1_000,
    );
    const rep = observed.rep;
    const src = observed.src;
    // Every replica point is one of the source's, by name.
    for (const r of rep) expect(seenOnSource.has(r.slice(r.indexOf('@')))).toBe(true);
    // Sparse: consecutive replica points skip at least one 20 s source point, which the source did have.
    for (let i = 1; i < rep.length; i++) {
      const [a, b] = [instant(rep[i - 1] as string), instant(rep[i] as string)];
      expect(b - a).toBeGreaterThanOrEqual(40_000);
      const skipped = [...seenOnSource].filter((s) => instant(`x${s}`) > a && instant(`x${s}`) < b);
      expect(skipped.length).toBeGreaterThanOrEqual(1);
      for (const s of skipped) expect(rep.map((r) => r.slice(r.indexOf('@')))).not.toContain(s);
    }
    expect(rep.length).toBeLessThan(src.length);
    expect(src.length).toBeGreaterThanOrEqual(3);

    const readonly = await execa('zfs', ['get', '-H', '-o', 'value', 'readonly', replica]);
    expect(readonly.stdout.trim()).toBe('on');

    const vector = await k.json<{ status?: { conditions?: { type: string; status: string; reason: string }[]; pairing?: Record<string, unknown> } }>(
      'get', 'vector', 'demo-replica', '-n', 'default',
    );
    expect(vector.status?.conditions?.find((c) => c.type === 'KeyAuthorized')).toMatchObject({ status: 'True', reason: 'LocalPipe' });
    expect(vector.status?.pairing).toEqual({ machine: 'localhost', dataset: `${replicaPool}/replicas` });
    expect(await k.find('secret', 'vector.default.demo-replica', '-n', 'bdr-system')).toBeUndefined();
  });
});
