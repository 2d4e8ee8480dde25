/**
 * The quickstart's replica: `bdr up --sandbox-pool A --sandbox-replica-pool B` on the quickstart's own manifests
 * (pool names swapped for this test's), a real bdr up process, real zfs-fuse pools, the real kubectl.
 *
 * Expectation, worked out by hand from examples/quickstart/quickstart.yaml: the source gets a restore point every
 * 20 s on the epoch's grid (:00, :20, :40 of each minute) and keeps the 3 newest (plus the newest of each hour);
 * the vector runs on whole minutes with a remote policy of keepLast 1 + hourly 24, so each run sends the source's
 * newest point then and the points between runs are never sent; the replica keeps its
 * newest plus the base of its last run (one more across an hour boundary), fewer than the source. The vector
 * needed no key: KeyAuthorized=True with reason LocalPipe, and no key Secret.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runBdr } from '../helpers/run-bdr.ts';
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
    const mine = quickstart
      .replaceAll('bdr-quickstart-replica/', `${replicaPool}/`)
      .replaceAll('bdr-quickstart/', `${pool}/`)
      // The Machine's dataset roots name the two pools too.
      .replace(/root: bdr-quickstart-replica$/m, `root: ${replicaPool}`)
      .replace(/root: bdr-quickstart$/m, `root: ${pool}`);
    expect(mine).toContain(`root: ${pool}\n`);
    expect(mine).toContain(`root: ${replicaPool}\n`);
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
    const seenOnReplica = new Set<string>();
    let firstReceived: string | undefined;
    const at = (names: Iterable<string>) => [...names].map((n) => instant(`x${n}`)).sort((a, b) => a - b);
    const observed = await eventually(
      async () => {
        const [src, rep] = await Promise.all([snapshots(source), snapshots(replica)]);
        for (const s of src) seenOnSource.add(s.slice(s.indexOf('@')));
        for (const r of rep) seenOnReplica.add(r.slice(r.indexOf('@')));
        firstReceived ??= rep[0]?.slice(rep[0].indexOf('@'));
        // The first run came when the vector was paired, at any instant; the points after it came from scheduled
        // runs (whole minutes, aligned to the epoch).
        const scheduled = [...seenOnReplica].filter((r) => r !== firstReceived);
        // And the source took a point between them that no run sent, so sparseness can be seen. Which point that
        // is depends on when the runs and snapshots actually happened (a loaded machine delays both), so the test
        // waits for it rather than assuming a slot.
        const times = at(scheduled);
        const received = new Set(at(seenOnReplica));
        const between = at(seenOnSource).some((t) => t > (times[0] ?? Infinity) && t < (times[times.length - 1] ?? -Infinity) && !received.has(t));
        // (The first run's point is not waited out: when it was the last of an hour, hourly: 24 keeps it.)
        return firstReceived !== undefined && scheduled.length >= 2 && between
          ? { src, rep, scheduled }
          : undefined;
      },
      `two scheduled syncs into ${replica}\n${up.stderr.slice(-3000)}`,
      400_000,
      1_000,
    );
    const { src, rep, scheduled } = observed;
    // Every replica point is one of the source's, by name.
    for (const r of seenOnReplica) expect(seenOnSource.has(r)).toBe(true);
    // Sparse: the source's points fall on :00, :20 and :40 of each minute, the vector runs on whole minutes and
    // sends the source's newest then, so between two scheduled runs the source had points no run sent; and the
    // runs sent fewer points than the source took between them.
    const times = at(scheduled);
    const first = times[0] as number;
    const last = times[times.length - 1] as number;
    const window = at(seenOnSource).filter((t) => t > first && t <= last);
    const sentInWindow = at(seenOnReplica).filter((t) => t > first && t <= last);
    expect(window.filter((t) => !sentInWindow.includes(t)).length).toBeGreaterThanOrEqual(1);
    expect(sentInWindow.length).toBeLessThan(window.length);
    // (Not asserted: that names fall on the 20 s grid. A point is named by when it was taken, which a loaded
    // machine makes a second or more late: seen at :01.)
    // Fewer: the replica keeps its newest and the base of its last run (one more across an hour boundary); the
    // source its three newest (likewise).
    expect(rep.length).toBeLessThanOrEqual(3);
    expect(src.length).toBeGreaterThanOrEqual(3);
    expect(rep.length).toBeLessThan(src.length);

    const readonly = await execa('zfs', ['get', '-H', '-o', 'value', 'readonly', replica]);
    expect(readonly.stdout.trim()).toBe('on');

    const vector = await k.json<{ status?: { conditions?: { type: string; status: string; reason: string }[]; pairing?: Record<string, unknown> } }>(
      'get', 'vector', 'demo-replica', '-n', 'default',
    );
    expect(vector.status?.conditions?.find((c) => c.type === 'KeyAuthorized')).toMatchObject({ status: 'True', reason: 'LocalPipe' });
    expect(vector.status?.pairing).toEqual({ machine: 'localhost', dataset: `${replicaPool}/replicas` });
    expect(await k.find('secret', 'vector.default.demo-replica', '-n', 'bdr-system')).toBeUndefined();
    // Nor an authorized_keys line or key files on this machine (the Machine's default paths).
    const authorized = await readFile('/root/.ssh/authorized_keys', 'utf8').catch(() => '');
    expect(authorized).not.toContain('bdr:vector=default/demo-replica');
    expect(existsSync('/var/lib/bdr/vectors/default/demo-replica')).toBe(false);

    // Deleting it finishes without any key to revoke (deletionPolicy Retain: the replica stays).
    await k.run('delete', 'vector', 'demo-replica', '-n', 'default', '--timeout=120s');
    expect(await k.find('vector', 'demo-replica', '-n', 'default')).toBeUndefined();
    expect((await snapshots(replica)).length).toBeGreaterThanOrEqual(1);
  });

  it('refuses --sandbox-replica-pool without --sandbox-pool, or naming the same pool: exit 2, one line, nothing created', async () => {
    const state = join(tmp.path, 'refused');
    const alone = await runBdr(['up', '--repo', join(tmp.path, 'repo'), '--state', state, '--sandbox-replica-pool', replicaPool]);
    expect([alone.exitCode, alone.stderr.trim()]).toEqual([2, 'bdr: --sandbox-replica-pool needs --sandbox-pool']);
    const same = await runBdr(['up', '--repo', join(tmp.path, 'repo'), '--state', state, '--sandbox-pool', pool, '--sandbox-replica-pool', pool]);
    expect([same.exitCode, same.stderr.trim()]).toEqual([2, 'bdr: --sandbox-replica-pool must name a pool other than --sandbox-pool']);
    expect(existsSync(state)).toBe(false);
  });
});
