/**
 * The real operator SIGKILLed mid-stream: a `bdr up` process (its own embedded API server, state on disk, every
 * controller) replicates a Dataset on test-bed machine A (real sshd) to machine B (real sshd, the guard), both
 * declared in a Git repository with their key Secrets. While its incremental stream is in flight (B's receive
 * held up with SIGSTOP, the metering dd on A has read bytes), the process gets SIGKILL: no chance to end
 * anything. What it leaves running is recorded; then B's receive goes on, the pipeline on A ends by itself
 * (its ssh session to the operator is gone) or completes, and a new `bdr up` on the same state directory must
 * finish the job: incremental from the common snapshot (or nothing, when the orphaned stream delivered it), no
 * full resend, no stray hold, no partial dataset, no orphan snapshot. SIGTERM (what a rollout sends) is the
 * graceful case: bdr up ends its stream on A before it exits, so nothing of it goes on running unowned.
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOk, TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { descendsFrom, gone, heldOn, meteredBytes, parentOf, pidOf, pidsOf, pointAt, snapshotsOn } from '../controllers/sync-bed.ts';
import { BdrUp, eventually, Kubectl, tempDir, writeRepoFile } from './harness.ts';

interface VectorJson {
  metadata: { annotations?: Record<string, string> };
  status?: {
    lastSyncedSnapshot?: { name: string };
    lastSyncBytes?: number;
    lastHandledSyncRequest?: string;
    transfer?: { snapshot: string; bytes: number };
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
  };
}

describe('bdr up SIGKILLed during a transfer', { timeout: 900_000 }, () => {
  const bed = new TestBed();
  const tmp = tempDir('bdr-sigkill-');
  let a: TestMachine;
  let b: TestMachine;
  let sourcePool: TestPool;
  let replicaPool: TestPool;
  let up: BdrUp | undefined;
  const leftovers: number[] = [];
  const source = () => `${sourcePool.name}/data`;
  const replica = () => `${replicaPool.name}/replicas/v`;
  const target = () => `${replica()}/data`;
  const state = join(tmp.path, 'state');
  const repo = join(tmp.path, 'repo');

  const machineDoc = (m: TestMachine, role: 'Source' | 'Storage') => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name: m.name },
    spec: {
      role,
      connection: m.machine.spec.connection,
      paths: { authorizedKeys: m.sshd.authorizedKeysPath, guard: join(m.sshd.dir, 'bin', 'zfs-guard'), vectorKeys: join(m.sshd.dir, 'vectors') },
      allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }],
    },
  });
  const streamBytes = async (from: string, to: string) =>
    Number((await runOk(['sh', '-c', `zfs send -i ${source()}@${from} ${source()}@${to} | wc -c`])).trim());
  /** Every process of the vector's pipeline on A or its receive on B (the shell, zfs send, dd, ssh, zfs receive). */
  const pipeline = async () => {
    const out: number[] = [];
    for (const pid of [...(await pidsOf(`zfs receive -u ${target()}`)), ...(await pidsOf(`^ssh -i ${join(a.sshd.dir, 'vectors')}`)), ...(await pidsOf('^dd bs=131072 status=progress$')), ...(await pidsOf('^pv -q -L ')), ...(await pidsOf(`^zfs send .*${source()}`)), ...(await pidsOf('^sh -c .*bdr: zfs send failed'))]) {
      if ((await descendsFrom(pid, target())) || (await descendsFrom(pid, source()))) out.push(pid);
    }
    return [...new Set(out)];
  };
  /** What the processes run, one a line (for a failure's message). */
  const cmdlines = async (pids: readonly number[]) =>
    (await Promise.all(pids.map(async (p) => (await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '?')).replaceAll('\0', ' ').slice(0, 200)))).join('\n');
  let writeRepo: (remote: Record<string, unknown>, transport?: Record<string, unknown>) => Promise<void>;
  /** A restore point by hand, named as the Dataset names them (its schedule is yearly: it takes none itself). */
  const pointNow = async () => {
    const name = pointAt(Math.ceil(Date.now() / 1000) * 1000);
    await runOk(['zfs', 'snapshot', `${source()}@${name}`]);
    return name;
  };
  /**
   * Starts the vector's stream (`request` as bdr.dev/sync-requested), holds B's receive up once A's dd has read
   * bytes of it, SIGKILLs bdr up, lets the receive go on, and waits until nothing of the pipeline is left.
   */
  const killMidStream = async (k: Kubectl, request: string) => {
    await k.run('annotate', 'vector', 'v', '-n', 'default', `bdr.dev/sync-requested=${request}`, '--overwrite');
    const receivePid = await eventually(() => pidOf(`^zfs receive -u ${target()}$`), "B's zfs receive", 120_000);
    process.kill(receivePid, 'SIGSTOP');
    // The guard shell on B runs the receive and then moves the replica's hold: the holds are looked at after it.
    const guardPid = await parentOf(receivePid);
    try {
      await eventually(async () => ((await meteredBytes(target())) ?? 0) > 0 || undefined, 'bytes to move');
      const during = await pipeline();
      // B's receive and A's shell at least (zfs send, dd and the ssh client too, unless one is between looks on a
      // loaded machine: seen once, with three of the five).
      expect(during).toContain(receivePid);
      expect(during.length, await cmdlines(during)).toBeGreaterThanOrEqual(2);
      // SIGKILL: the operator ends nothing of its own.
      await up?.stop('SIGKILL');
      up = undefined;
      const left = await pipeline();
      leftovers.push(...left);
      // Its pipeline runs under A's and B's sshd, not under bdr (the shell in a session of its own): what was not
      // writing to the operator's dead session is still there (seen: the shell, the ssh client and B's receive;
      // zfs send and dd are ended with the session).
      for (const pid of left) expect(during).toContain(pid);
      expect(left).toContain(receivePid);
    } finally {
      process.kill(receivePid, 'SIGCONT');
    }
    // Without the operator's session, the pipeline either dies at its next write to it (dd's progress line) or
    // finishes the stream; either way nothing of it is left running.
    await eventually(async () => ((await pipeline()).length === 0 ? true : undefined), 'the orphaned pipeline to end', 120_000);
    if (guardPid !== undefined) await eventually(() => gone(guardPid), "B's guard to end", 120_000);
  };
  /** The bytes the run that brought `point` sent, from its SyncSucceeded event (a later run may have put 0 in status). */
  const sentBy = async (k: Kubectl, point: string) => {
    // (The event and the status are written at once: the event may land just after.)
    const bringing = await eventually(async () => {
      const events = await k.json<{ items: Array<{ reason: string; message: string; involvedObject: { name: string } }> }>('get', 'events', '-n', 'default');
      const found = events.items.filter((e) => e.reason === 'SyncSucceeded' && e.involvedObject.name === 'v' && e.message.includes(`now at ${point}`));
      return found.length > 0 ? found : undefined;
    }, `the SyncSucceeded event of the run that brought ${point}`);
    expect(bringing.map((e) => e.message)).toHaveLength(1);
    return { message: bringing[0]?.message ?? '', bytes: Number(/sent 1 stream\(s\), (\d+) bytes/.exec(bringing[0]?.message ?? '')?.[1]) };
  };
  const vector = async (k: Kubectl) => k.json<VectorJson>('get', 'vector', 'v', '-n', 'default');
  /** Starts bdr up again on the same state directory and waits until the vector is at `point`. */
  const restartUntil = async (point: string, cache: string, what: string) => {
    const started = new BdrUp(['--repo', repo, '--no-metrics'], state);
    up = started;
    await started.ready();
    const k = new Kubectl(started.kubeconfig, join(tmp.path, cache));
    const v = await eventually(async () => {
      const x = await vector(k);
      return x.status?.lastSyncedSnapshot?.name === point ? x : undefined;
    }, `${what}\n${started.stderr.slice(-3000)}`, 300_000);
    return { k, v };
  };

  beforeAll(async () => {
    [a, b, sourcePool, replicaPool] = await Promise.all([bed.machine('a'), bed.machine('b'), bed.pool({ mounted: true, sizeMb: 400 }), bed.pool()]);
    await runOk(['zfs', 'create', source()]);
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'h0.bin'), randomBytes(64 * 1024));
    const remotePolicy = { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'remote', namespace: 'default' }, spec: {} };
    const docs: object[] = [
      ...[a, b].map((m) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' }, data: m.secret.data })),
      machineDoc(a, 'Source'),
      machineDoc(b, 'Storage'),
      { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'local', namespace: 'default' }, spec: { keepLast: 5 } },
      remotePolicy,
      {
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Dataset',
        metadata: { name: 'src', namespace: 'default' },
        spec: { machineRef: { name: 'a' }, name: source(), schedule: { cron: '0 0 1 1 *' }, retentionPolicyRef: { name: 'local' } },
      },
      {
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Vector',
        metadata: { name: 'v', namespace: 'default' },
        spec: { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: replica() }, retentionPolicyRef: { name: 'remote' } },
      },
    ];
    const vectorDoc = docs.at(-1) as { spec: Record<string, unknown> };
    writeRepo = (remote, transport) =>
      writeRepoFile(
        repo,
        'bdr.yaml',
        docs.map((d) => stringify(d === remotePolicy ? { ...d, spec: remote } : d === vectorDoc && transport ? { ...vectorDoc, spec: { ...vectorDoc.spec, transport } } : d)).join('---\n'),
      );
    await writeRepo({ keepLast: 5 });
  }, 300_000);

  afterAll(async () => {
    if (up) await up.stop('SIGTERM');
    for (const pid of leftovers) if (!gone(pid)) process.kill(pid, 'SIGKILL');
    await bed.cleanup();
    tmp.remove();
  }, 240_000);

  it('the restarted operator continues incrementally from the held base; nothing stray, nothing partial', async () => {
    up = new BdrUp(['--repo', repo, '--no-metrics'], state);
    await up.ready();
    const k = new Kubectl(up.kubeconfig, join(tmp.path, 'kube-cache'));
    const first = await eventually(async () => {
      const v = await vector(k);
      return v.status?.lastSyncedSnapshot ? v : undefined;
    }, `the first sync\n${up.stderr.slice(-3000)}`, 300_000);
    const base = first.status?.lastSyncedSnapshot?.name ?? '';
    expect(await snapshotsOn(source())).toEqual([base]);
    expect(await snapshotsOn(target())).toEqual([base]);

    // A new restore point with 64 MiB of new data, and a sync asked for; bdr up killed in its stream.
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'big.bin'), randomBytes(64 * 1024 * 1024));
    const next = await pointNow();
    await killMidStream(k, 'kill');
    const afterKill = await snapshotsOn(target());
    const finishedAlone = afterKill.at(-1) === next;
    expect(afterKill).toEqual(finishedAlone ? [base, next] : [base]);
    // The holds move with the stream: on the replica by the guard once its receive succeeded, on the source by the
    // stream's shell after that (next was held there before the stream). A receive ended with its process (which
    // zfs-fuse's daemon may still complete) moves none.
    expect(finishedAlone ? [[base], [next]] : [[base]]).toContainEqual(await heldOn(target()));
    expect(finishedAlone ? [[base, next], [next]] : [[base, next]]).toContainEqual(await heldOn(source()));
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n')).toEqual([replica(), target()]);

    const { v: after } = await restartUntil(next, 'kube-cache-2', 'the sync after the restart');
    // No full resend: the one -i from the base, or nothing when the orphaned stream delivered it. zfs-fuse's daemon
    // finishes a receive on its own after the process is gone, so the snapshot can appear after the look above.
    const increment = await streamBytes(base, next);
    expect(finishedAlone ? [0] : [0, increment]).toContain(after.status?.lastSyncBytes);
    expect(after.status?.lastHandledSyncRequest).toBe('kill');
    expect(after.status?.transfer).toBeUndefined();
    expect(after.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
    expect(await snapshotsOn(target())).toEqual([base, next]);
    expect(await snapshotsOn(source())).toEqual([base, next]);
    expect(await heldOn(source())).toEqual([next]);
    expect(await heldOn(target())).toEqual([next]);
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n')).toEqual([replica(), target()]);
    expect(await pipeline()).toEqual([]);
  });

  it("killed again, then restarted with a sparser remote policy: the dead run's step hold is released, not kept for good", async () => {
    const k = new Kubectl(up?.kubeconfig ?? '', join(tmp.path, 'kube-cache-3'));
    const base = (await vector(k)).status?.lastSyncedSnapshot?.name ?? '';
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'big.bin'), randomBytes(64 * 1024 * 1024));
    const n1 = await pointNow();
    await killMidStream(k, 'kill-2');
    // The dead run held n1 on the source before its stream (and left it named in status.transfer). When the orphaned
    // stream finished on its own, its shell went on to release the base after the receive.
    const heldAfterKill = await heldOn(source());
    expect([[base, n1], [n1]]).toContainEqual(heldAfterKill);
    // Whether the orphaned stream delivered n1 is known only later: zfs-fuse's daemon can finish the receive after
    // the process is gone, so n1 may appear on the target after this look.
    const seenAlone = (await snapshotsOn(target())).includes(n1);

    // Meanwhile a new point, and the remote policy becomes keepLast: 1, so the restarted run sends n2 only.
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'n2.bin'), randomBytes(128 * 1024));
    await eventually(() => (pointAt(Math.ceil(Date.now() / 1000) * 1000) !== n1 ? true : undefined), 'a name other than n1 (1 s resolution)');
    const n2 = await pointNow();
    await writeRepo({ keepLast: 1 });
    const { k: k2, v: after } = await restartUntil(n2, 'kube-cache-4', 'the sync after the second restart');
    // One -i from the common snapshot to n2 (n1 is not kept by the remote policy, so it is not sent): from n1 when
    // the orphaned stream delivered it, else from the base. The two differ by the 64 MiB of big.bin. Read from the
    // SyncSucceeded event of the run that brought n2: a later run (the Dataset's new status wakes the vector) may
    // already have replaced status.lastSyncBytes with its own 0.
    const fromN1 = await streamBytes(n1, n2);
    const fromBase = await streamBytes(base, n2);
    const { message, bytes: sent } = await sentBy(k2, n2);
    expect(seenAlone ? [fromN1] : [fromN1, fromBase], JSON.stringify({ message, heldAfterKill, seenAlone })).toContain(sent);
    const finishedAlone = sent === fromN1;
    const common = finishedAlone ? n1 : base;
    expect(after.status?.lastHandledSyncRequest).toBe('kill-2');
    // One hold a side, on n2: the dead run's hold on n1 (source) went with the old bases.
    expect(await heldOn(source())).toEqual([n2]);
    expect(await heldOn(target())).toEqual([n2]);
    // The replica: n2, and the common base until a later run prunes it (keepLast: 1). When the orphaned stream had
    // delivered n1, the old base is there too: released in this run, it is pruned only by a run that sees it free
    // (zfs-fuse cannot list holds, so a base released in the same run is never destroyed in it).
    expect(finishedAlone ? [[base, common, n2], [common, n2], [n2]] : [[common, n2], [n2]]).toContainEqual(await snapshotsOn(target()));
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n')).toEqual([replica(), target()]);
    expect(await pipeline()).toEqual([]);
    // The next run leaves nothing but n2 on the replica (keepLast: 1), still held.
    await k2.run('annotate', 'vector', 'v', '-n', 'default', 'bdr.dev/sync-requested=after-kill-2', '--overwrite');
    await eventually(async () => ((await vector(k2)).status?.lastHandledSyncRequest === 'after-kill-2' ? true : undefined), 'the run after', 300_000);
    expect(await snapshotsOn(target())).toEqual([n2]);
    expect(await heldOn(target())).toEqual([n2]);
    expect(await heldOn(source())).toEqual([n2]);
  });

  it('SIGTERM mid-stream (as a rollout sends): bdr up ends its pipeline on A before it exits 0, and the next start continues incrementally', async () => {
    const k = new Kubectl(up?.kubeconfig ?? '', join(tmp.path, 'kube-cache-5'));
    const base = (await vector(k)).status?.lastSyncedSnapshot?.name ?? '';
    // Paced on A (pv, 4 MiB/s: the 64 MiB take 16 s), so the stream is still going when the signal comes: zfs-fuse's
    // daemon would otherwise take it all in a second, whatever becomes of B's stopped receive client. In place before
    // the new point: the Dataset's new status wakes the vector, which may start its run before the request below.
    await writeRepo({ keepLast: 1 }, { bandwidthLimit: '4M' });
    await eventually(async () => ((await k.json<{ spec: { transport?: { bandwidthLimit?: string } } }>('get', 'vector', 'v', '-n', 'default')).spec.transport?.bandwidthLimit === '4M' ? true : undefined), 'the limit in the cluster');
    await writeFile(join(sourcePool.mountpoint ?? '', 'data', 'big.bin'), randomBytes(64 * 1024 * 1024));
    await eventually(() => (pointAt(Math.ceil(Date.now() / 1000) * 1000) !== base ? true : undefined), 'a name other than the base (1 s resolution)');
    const next = await pointNow();
    await k.run('annotate', 'vector', 'v', '-n', 'default', 'bdr.dev/sync-requested=term', '--overwrite');
    const receivePid = await eventually(() => pidOf(`^zfs receive -u ${target()}$`), "B's zfs receive", 120_000);
    process.kill(receivePid, 'SIGSTOP');
    const guardPid = await parentOf(receivePid);
    /** The pipeline's processes on A: all of it but B's receive. */
    const onA = async () => (await pipeline()).filter((p) => p !== receivePid);
    try {
      await eventually(async () => ((await meteredBytes(target())) ?? 0) > 0 || undefined, 'bytes to move');
      const running = await onA();
      // (At least the stream's shell and the ssh client; zfs send and dd too, unless they are between reads.)
      expect(running.length, await cmdlines(running)).toBeGreaterThanOrEqual(2);
      expect(await up?.stop('SIGTERM')).toBe(0);
      up = undefined;
      // By the time it has exited, its stream on A is ended: nothing is left to run on its own there (with B's
      // receive still held up, that stream could not have finished by itself).
      expect(await onA()).toEqual([]);
    } finally {
      process.kill(receivePid, 'SIGCONT');
    }
    await eventually(async () => ((await pipeline()).length === 0 ? true : undefined), "B's receive to end", 120_000);
    if (guardPid !== undefined) await eventually(() => gone(guardPid), "B's guard to end", 120_000);
    // The cut stream received nothing: the replica is at the base, held there.
    expect(await snapshotsOn(target())).toEqual([base]);
    expect(await heldOn(target())).toEqual([base]);
    expect((await runOk(['zfs', 'list', '-H', '-r', '-o', 'name', replica()])).trim().split('\n')).toEqual([replica(), target()]);

    await writeRepo({ keepLast: 1 });
    const { k: k2, v: after } = await restartUntil(next, 'kube-cache-6', 'the sync after the restart');
    expect(after.status?.lastHandledSyncRequest).toBe('term');
    // One -i from the base: no full resend.
    expect((await sentBy(k2, next)).bytes).toBe(await streamBytes(base, next));
    expect(await heldOn(source())).toEqual([next]);
    expect(await heldOn(target())).toEqual([next]);
    expect(await pipeline()).toEqual([]);
  });
});
