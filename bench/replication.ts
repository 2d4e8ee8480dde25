/**
 * A Vector's sync against the raw pipe on the same path, in one process, on the real test bed (zfs-fuse pools,
 * private sshd machines A and B, the embedded API server):
 *
 *   initial      bdr's first sync (full stream) vs `zfs send | ssh -i <vector key> B 'zfs receive -u …'` run on A
 *   incremental  a 1 MiB change: bdr's sync (-i) vs the same raw -i pipe
 *   no-op        a sync of a target that is already current (planning, inventories, holds, properties)
 *   commands     sessions the storage and primary machines' sshd logged for one incremental sync (each command
 *                bdr runs is one session channel: "Starting session" in sshd's VERBOSE log)
 *   syncoid      the same initial and 1 MiB incremental runs, and a no-op, by syncoid (Debian's sanoid package)
 *                on the same path: run on A into B's sshd as root with a key of its own (syncoid needs a shell
 *                there) and B's host key pinned, --no-sync-snap (it sends the snapshots the run made)
 *                --compress=none, its `zfs` being ZFS_SHIM on both machines (below); what it ran is counted as
 *                sessions at B's sshd and as zfs calls in each side's shim log (A is this host: no sshd there)
 *
 *   npx tsx bench/replication.ts [--mib 64] [--reps 3]
 *
 * Figures only, no assertions; both "machines" share this host's CPUs and zfs-fuse daemon: read the ratios.
 * The 100-vector no-op cycle is bench/replication-fleet.ts.
 *
 * Before (issue 10's first cut), --mib 96 --reps 3, shared 2-core machine, zfs-fuse (medians): initial 1.55 s vs
 * raw 1.32 s (1.18×), 1 MiB incremental 0.77 s vs 0.32 s (2.38×), no-op 0.21 s, 12 sessions on A and B per
 * incremental sync (A: zfs get, zpool list, hold, stream, release; B: zfs get, zpool list, hold, release, zfs
 * list + zfs get of enforceReplicaProperties, the guard's receive, which ran zfs receive, list and get).
 *
 * Second cut (the hold moves ride in the stream's own sessions: see commands), same command, the last three runs, from the
 * same runs as the syncoid figures further down (load average 2-3.5 from other work on the machine):
 *   initial      1.10 / 0.93 / 1.12 s vs raw 0.86 / 0.84 / 1.09 s: 1.28× / 1.11× / 1.03×; with --mib 200 (the
 *                issue's size) 1.42 s vs raw 1.44 s: 0.99× (goal ≤ 1.10×). bdr's own part is the listings and the
 *                status write; the rest of the spread at 64 MiB is the stream itself on zfs-fuse.
 *   incremental  0.44 / 0.45 / 0.52 s vs raw 0.34 / 0.32 / 0.38 s: 1.29× / 1.41× / 1.37×; --mib 200 run: 0.49 s vs
 *                0.34 s: 1.45× (goal ≤ 1.5×). First cut: 1.34× / 1.79× / 1.51×.
 *   no-op        0.05-0.06 s (goal ≤ 1 s)
 *   A later run, --mib 200 --reps 3 on an otherwise idle machine: initial 1.76 s vs raw 1.71 s (1.03×), 1 MiB
 *   incremental 0.43 s vs 0.29 s (1.48×), no-op 0.05 s; syncoid 1.83 s (1.08× raw), 0.66 s (2.31× raw), 0.47 s.
 *   commands     4 sessions on A and B together per incremental sync (first cut: 7), counted at their sshd:
 *                A  zfs get (source listing); the stream, one sh: zfs hold (the point sent), then
 *                   zfs send | dd | ssh B, then zfs release (the old base) once the receive succeeded
 *                B  zfs get (replica listing with its inert properties); the guard's receive (the vector key's
 *                   session of A's stream): zfs receive, one zfs get -r that checks the received tree, then
 *                   +hold (the received point) and +release (the old base)
 *                Inside them run 9 zfs processes: the two listings, send and receive are 4, and the issue's own
 *                holds (the base held on both sides, new before old) add a hold and a release per side, plus the
 *                guard's check. A no-op sync is the two listings.
 *   Where the incremental's remaining ~100 ms over the raw pipe goes (traced per phase in the first cut): transfer
 *   slots and connection lookups 7-15 ms, the listings (both at once) 17-24 ms, the holds now inside the stream's
 *   sessions (zfs-fuse sync tasks, 25-60 ms each side), the final status write 10-30 ms.
 *
 * syncoid 2.1.0 beside it. Over ssh its incremental (and so its no-op) cannot run on zfs-fuse as installed:
 * zfs-fuse's `zfs get` has no `-t`, so syncoid's target snapshot listing (`zfs get -Hpd 1 -t snapshot …`) fails
 * and it falls back to getsnapsfallback(), which is handed the already ssh-prefixed host from getsnaps() and
 * prefixes `ssh …` a second time ("bash: line 1: root@127.0.0.1: command not found", "CRITICAL ERROR: snapshots
 * couldn't be listed … (exit code 32512)", /usr/sbin/syncoid lines 1524 and 1597-1610, a syncoid bug); only the
 * initial worked, a new target having no snapshots to list. So syncoid's `zfs` is ZFS_SHIM, a bench-only sh script
 * that answers `zfs get … -t snapshot …` as OpenZFS would (the same get without -t, keeping the snapshots' lines:
 * name<TAB>property<TAB>value<TAB>source, in zfs-fuse's order, creation order here) and execs /usr/sbin/zfs for everything else. syncoid
 * calls `zfs` unqualified on both sides (root: no sudo) and appends, never prepends, /bin:/usr/bin:/sbin to PATH:
 * on A the shim is first on syncoid's PATH; on B syncoid's key is authorised with
 * `restrict,command="PATH=<shim>:…; export PATH …; eval \"$SSH_ORIGINAL_COMMAND\""`, which runs what syncoid asked
 * for in the same shell sshd would have run it in (no extra process). syncoid's code is used as installed.
 *
 * Measured with it (2-core machine shared with other work, load average 2-3.5; medians of 3 reps per run):
 *                 --mib 64, three runs                                    --mib 200, one run
 *   initial      1.07 / 0.96 / 1.23 s: 1.25× / 1.14× / 1.13× raw,         1.48 s: 1.03× raw, 1.04× bdr
 *                0.97× / 1.04× / 1.10× bdr (bdr 1.10 / 0.93 / 1.12 s,     (bdr 1.42 s, raw 1.44 s: 0.99×)
 *                raw 0.86 / 0.84 / 1.09 s; syncoid receives with a shell key: no guard to pay for)
 *   incremental  0.81 / 0.83 / 0.96 s: 2.41× / 2.57× / 2.51× raw,         1.03 s: 3.02× raw, 2.08× bdr
 *                1.84× / 1.83× / 1.86× bdr (bdr 0.44 / 0.45 / 0.52 s,     (bdr 0.49 s, raw 0.34 s: 1.45×)
 *                raw 0.34 / 0.32 / 0.38 s)
 *   no-op        0.65 / 0.57 / 0.61 s: 10.3× / 10.1× / 13.5× bdr's        0.66 s: 10.9× bdr's (0.06 s)
 *                (0.05-0.06 s)
 *   commands     per incremental sync, every rep: 11 sessions at B's sshd (exit and echo -n opening its
 *                ControlMaster, command -v mbuffer, zpool get feature@extensible_dataset (fails on zfs-fuse: resume
 *                off), ps, zfs get name, zfs get -t snapshot, zfs get used, ps, zfs rollback -R to the common
 *                snapshot, mbuffer | zfs receive -F) and 9 zfs calls: 5 on B (those) and 4 on A (get syncoid:sync,
 *                get -t snapshot, send -nvP for the size, send -I). bdr: 4 sessions on A and B together. A no-op:
 *                9 sessions at B, zfs calls 3 on B and 2 on A.
 *   shim's cost  a call passed on: +0-1.6 ms (15.6-17.7 ms per zfs list either way); a translated get -t snapshot:
 *                +6-10 ms (sh, command substitution, awk), twice per sync: ≤ 35 ms of syncoid's 0.8-1 s.
 * With both ends local (no ssh; the shim too): 1 MiB incremental 0.37 / 0.34 / 0.47 s (200 MiB: 0.44 s) vs a local
 * `zfs send -i | zfs receive` 0.05-0.06 s (6.1-8.1×), no-op 0.19-0.23 s (3.0-4.8× bdr's no-op over ssh). The
 * ≈ 0.45 s between syncoid local and over ssh goes with its 11 sessions at B, run one after another.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { vectorKind } from '../api/kinds/index.ts';
import type { Vector } from '../api/types.ts';
import type { MachineConnections } from '../controllers/machine-connections.ts';
import { systemClock } from '../controllers/runtime/clock.ts';
import { KubeClient, resourceOf, type KubeObject } from '../controllers/runtime/kube.ts';
import { silentLogger } from '../metrics/log.ts';
import { eventually, startTestCluster } from '../test/controllers/cluster-fixture.ts';
import { caughtUp, startInformers, startOperator } from '../test/controllers/sync-bed.ts';
import { generateKeyPair, run, runOk, TestBed } from '../test/testbed/index.ts';
import { applyMachines, numberArg, median } from './bed.ts';

/**
 * The bench-only `zfs` syncoid finds first on its PATH, on A (the syncoid process's environment) and on B (the
 * forced command of syncoid's own key there). zfs-fuse's `zfs get` has no `-t`: a `get` with `-t snapshot` and/or
 * `-t bookmark` runs without it and keeps the lines of that type (a name with "@", with "#"), in zfs-fuse's order,
 * which is what OpenZFS prints: name<TAB>property<TAB>value<TAB>source. Anything else it does not recognise (another
 * type, an option `zfs get` does not have, a value with unexpected characters) goes unchanged to the real zfs, as
 * does every other subcommand (exec, no extra process). Each call is logged to $ZFS_SHIM_LOG (the zfs commands
 * per sync).
 */
const ZFS_SHIM = `#!/bin/sh
real=/usr/sbin/zfs
[ -z "$ZFS_SHIM_LOG" ] || printf '%s\\n' "$*" >>"$ZFS_SHIM_LOG"
[ "$1" = get ] || exec "$real" "$@"
shift
opts='' types='' header=1
while getopts :rHpd:o:s:t: c; do
  case $c in
    t) types=$OPTARG ;;
    r | p) opts="$opts -$c" ;;
    H) opts="$opts -H" header='' ;;
    d | o | s)
      case $OPTARG in '' | *[!A-Za-z0-9,:@._-]*) exec "$real" get "$@" ;; esac
      opts="$opts -$c $OPTARG" ;;
    *) exec "$real" get "$@" ;;
  esac
done
[ -n "$types" ] || exec "$real" get "$@"
snap=0 mark=0
for t in $(echo "$types" | tr , ' '); do
  case $t in snapshot | snap) snap=1 ;; bookmark) mark=1 ;; *) exec "$real" get "$@" ;; esac
done
shift $((OPTIND - 1))
# shellcheck disable=SC2086 # $opts: the checked options, one word each
out=$("$real" get $opts "$@") || exit
[ -z "$out" ] || printf '%s\\n' "$out" | awk -v h="$header" -v s="$snap" -v b="$mark" '
  h && NR == 1 { print; next }
  { split($0, f, h ? " " : "\\t"); n = f[1] }
  (s && n ~ /@/) || (b && n ~ /#/)'
`;

const MIB = numberArg('mib', 64);
const REPS = numberArg('reps', 3);

async function main(): Promise<void> {
  const bed = new TestBed();
  const tc = await startTestCluster();
  const informers: Array<{ stop(): Promise<void> }> = [];
  let connections: MachineConnections | undefined;
  try {
    const poolMb = Math.ceil(MIB * 2.5) + 128;
    const [a, b, sourcePool, replicaPool] = await Promise.all([bed.machine('a'), bed.machine('b'), bed.pool({ mounted: true, sizeMb: poolMb }), bed.pool({ sizeMb: poolMb * 2 })]);
    const client = new KubeClient(tc.kubeConfig);
    applyMachines(tc, a, b);
    const source = `${sourcePool.name}/data`;
    await runOk(['zfs', 'create', source]);
    const dir = join(sourcePool.mountpoint ?? '', 'data');
    const fill = async (name: string, mib: number) => {
      const file = await open(join(dir, name), 'w');
      for (let w = 0; w < mib; w += 8) await file.write(randomBytes(Math.min(8, mib - w) * 1024 * 1024));
      await file.close();
    };
    await fill('random', MIB);
    let n = 0;
    const snap = async () => {
      const name = `bdr-${new Date(Date.UTC(2026, 0, 1) + ++n * 60_000).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}`;
      await runOk(['zfs', 'snapshot', `${source}@${name}`]);
      return name;
    };
    const first = await snap();
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'all', namespace: 'default' }, spec: { keepLast: 1000 } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'src', namespace: 'default' },
      spec: { machineRef: { name: 'a' }, name: source, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'all' } },
    });
    const replica = `${replicaPool.name}/replicas/v`;
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'v', namespace: 'default', annotations: { 'bdr.dev/sync-requested': '0' } },
      spec: { source: { datasetRef: { name: 'src' } }, target: { machineRef: { name: 'b' }, dataset: replica }, retentionPolicyRef: { name: 'all' }, schedule: { interval: '24h' } },
    });
    const { vectors, machines, datasets, policies, targets } = await startInformers(tc, client, informers);
    await eventually(() => (vectors.get('default/v') && machines.list().length === 2 && datasets.get('default/src') && policies.list().length === 1 ? true : undefined), 'the cache');
    const operator = startOperator({ client, vectors, datasets, policies, machines, targets, clock: systemClock });
    connections = operator.connections;
    const { sync, reconciler } = operator;
    const signal = new AbortController().signal;
    const current = () => caughtUp(client, vectors, resourceOf(vectorKind), 'v', 'default');
    let request = 0;
    /** One sync now (a new bdr.dev/sync-requested value), timed from the reconcile that runs it. */
    const syncNow = async (): Promise<{ ms: number; v: Vector }> => {
      const v0 = await current();
      const applied = tc.apply({ ...v0, metadata: { ...v0.metadata, annotations: { 'bdr.dev/sync-requested': String(++request) } }, status: undefined } as unknown as KubeObject);
      await eventually(() => (vectors.get('default/v')?.metadata.resourceVersion === applied.metadata.resourceVersion ? true : undefined), 'the request in the cache');
      const t0 = performance.now();
      await reconciler.reconcile('default/v', { key: 'default/v', log: silentLogger, signal });
      const ms = performance.now() - t0;
      const v = await current();
      if (v.status?.lastHandledSyncRequest !== String(request) || (v.status.consecutiveFailures ?? 0) > 0) throw new Error(`sync failed: ${JSON.stringify(v.status?.conditions)}`);
      return { ms, v };
    };
    // Pairing (key, guard, dataset) first: not part of any figure.
    await eventually(async () => {
      await reconciler.reconcile('default/v', { key: 'default/v', log: silentLogger, signal });
      const v = await current();
      return v.status?.pairing?.keyFingerprint && v.status.lastSyncedSnapshot ? v : undefined;
    }, 'pairing and the first sync', 600_000, 200);
    const keyDir = join(a.sshd.dir, 'vectors', 'default', 'v');
    const raw = async (from: string | undefined, to: string, into: string) => {
      const send = from ? `zfs send -i ${source}@${from} ${source}@${to}` : `zfs send ${source}@${to}`;
      const ssh = `ssh -i ${keyDir}/id -p ${b.sshd.port} -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${keyDir}/known_hosts root@127.0.0.1 'zfs receive -u ${into}'`;
      const t0 = performance.now();
      await runOk(['sh', '-c', `${send} | ${ssh}`]);
      return performance.now() - t0;
    };
    const destroy = (ds: string) => runOk(['zfs', 'destroy', '-r', ds]);
    // syncoid (Debian's sanoid package) on the same path: run on A (this host) into B's sshd as root (syncoid needs a
    // shell there, which the vector key's guard refuses), with a key of its own and B's host key pinned. It sends the
    // snapshots bdr's names already exist for (--no-sync-snap) and, like bdr on zfs-fuse, uncompressed. Its `zfs`
    // is ZFS_SHIM on both machines: on A through its PATH, on B through its key's forced command, which sets PATH
    // and runs the command syncoid asked for in the same shell, as sshd would have without it.
    const hasSyncoid = (await run(['sh', '-c', 'command -v syncoid'])).code === 0;
    const syncoidDir = join(a.sshd.dir, 'syncoid');
    const shim = { a: join(syncoidDir, 'bin'), b: join(b.sshd.dir, 'syncoid', 'bin') };
    const shimLog = { a: join(syncoidDir, 'zfs-calls.log'), b: join(b.sshd.dir, 'syncoid', 'zfs-calls.log') };
    const sessionLog = join(b.sshd.dir, 'syncoid', 'sessions.log');
    for (const side of ['a', 'b'] as const) {
      await mkdir(shim[side], { recursive: true, mode: 0o700 });
      await writeFile(join(shim[side], 'zfs'), ZFS_SHIM, { mode: 0o755 });
      await writeFile(shimLog[side], '');
    }
    await writeFile(sessionLog, '');
    const syncoidKey = await generateKeyPair(syncoidDir, 'id', 'bench-syncoid');
    const forced = `PATH=${shim.b}:/usr/sbin:/usr/bin:/sbin:/bin ZFS_SHIM_LOG=${shimLog.b}; export PATH ZFS_SHIM_LOG; printf '%s\\n' \\"$SSH_ORIGINAL_COMMAND\\" >>${sessionLog}; eval \\"$SSH_ORIGINAL_COMMAND\\"`;
    await appendFile(b.sshd.authorizedKeysPath, `restrict,command="${forced}" ${syncoidKey.publicKey}\n`);
    await writeFile(join(syncoidDir, 'known_hosts'), `[127.0.0.1]:${b.sshd.port} ${b.sshd.hostKey}\n`, { mode: 0o600 });
    /** One syncoid run into `into` on B over ssh, or (`local`) into `into` on this host without ssh. */
    const syncoid = async (into: string, local = false) => {
      const t0 = performance.now();
      await runOk([
        'env', `PATH=${shim.a}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, `ZFS_SHIM_LOG=${shimLog.a}`,
        'syncoid', '--no-sync-snap', '--compress=none', '--quiet',
        ...(local
          ? [source, into]
          : [
              `--sshkey=${syncoidKey.privateKeyPath}`, `--sshport=${b.sshd.port}`, `--sshoption=UserKnownHostsFile=${join(syncoidDir, 'known_hosts')}`,
              '--sshoption=StrictHostKeyChecking=yes', '--sshoption=IdentitiesOnly=yes', source, `root@127.0.0.1:${into}`,
            ]),
      ], { timeoutMs: 600_000 });
      return performance.now() - t0;
    };
    /** Fails the bench unless `ds` holds `source@snapshot` itself (same guid): a syncoid run that did nothing is no figure. */
    const received = async (ds: string, snapshot: string) => {
      const guid = async (s: string) => (await runOk(['zfs', 'get', '-H', '-o', 'value', 'guid', s])).trim();
      if ((await guid(`${ds}@${snapshot}`)) !== (await guid(`${source}@${snapshot}`))) throw new Error(`${ds}@${snapshot} is not ${source}@${snapshot}`);
    };
    const lines = async (path: string) => (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '');
    const rawLocal = async (from: string, to: string, into: string) => {
      const t0 = performance.now();
      await runOk(['sh', '-c', `zfs send -i ${source}@${from} ${source}@${to} | zfs receive -u ${into}`]);
      return performance.now() - t0;
    };

    // Initial: bdr (after destroying what the pairing run received) vs the raw pipe, alternating.
    const initial = { bdr: [] as number[], raw: [] as number[], syncoid: [] as number[] };
    let bytes = 0;
    for (let r = 0; r < REPS; r++) {
      // The vector's holds go first (a held snapshot cannot be destroyed); the next sync then finds an empty target.
      await sync.releaseHolds(await current(), { primary: machines.get('a'), storage: machines.get('b') });
      await destroy(`${replica}/data`);
      const { ms, v } = await syncNow();
      initial.bdr.push(ms);
      bytes = v.status?.lastSyncBytes ?? 0;
      initial.raw.push(await raw(undefined, first, `${replica}/raw${r}@${first}`));
      await destroy(`${replica}/raw${r}`);
      if (hasSyncoid) {
        initial.syncoid.push(await syncoid(`${replica}/syncoid${r}`));
        await received(`${replica}/syncoid${r}`, first);
        await destroy(`${replica}/syncoid${r}`);
      }
    }
    // Incremental: 1 MiB new data, bdr's -i vs the raw -i (into a copy kept current by raw pipes).
    await raw(undefined, first, `${replica}/rawinc@${first}`);
    let base = first;
    if (hasSyncoid) {
      await syncoid(`${replica}/syncoidinc`);
      await syncoid(`${replica}/syncoidlocal`, true);
      await runOk(['sh', '-c', `zfs send ${source}@${first} | zfs receive -u ${replica}/rawlocal`]);
    }
    const inc = { bdr: [] as number[], raw: [] as number[], syncoid: [] as number[], syncoidLocal: [] as number[], rawLocal: [] as number[] };
    const sessions: number[] = [];
    const logs = async () => (await readFile(a.sshd.logPath, 'utf8')).split('Starting session').length + (await readFile(b.sshd.logPath, 'utf8')).split('Starting session').length;
    /** What one syncoid run over ssh ran: sessions at B's sshd, zfs calls logged by the shims on A and on B. */
    interface SyncoidCount { sessionsB: number; commandsB: string[]; zfsA: string[]; zfsB: string[] }
    const counted = async (go: () => Promise<number>): Promise<{ ms: number; count: SyncoidCount }> => {
      const [mark, commandsB, zfsA, zfsB] = [await b.sshd.logMark(), (await lines(sessionLog)).length, (await lines(shimLog.a)).length, (await lines(shimLog.b)).length];
      const ms = await go();
      const count = {
        sessionsB: (await b.sshd.sessionsSince(mark)).filter((l) => l.startsWith('Starting session')).length,
        commandsB: (await lines(sessionLog)).slice(commandsB),
        zfsA: (await lines(shimLog.a)).slice(zfsA),
        zfsB: (await lines(shimLog.b)).slice(zfsB),
      };
      return { ms, count };
    };
    const syncoidInc: SyncoidCount[] = [];
    for (let r = 0; r < REPS; r++) {
      await writeFile(join(dir, `inc${r}`), randomBytes(1024 * 1024));
      const next = await snap();
      const before = await logs();
      inc.bdr.push((await syncNow()).ms);
      sessions.push((await logs()) - before);
      inc.raw.push(await raw(base, next, `${replica}/rawinc@${next}`));
      if (hasSyncoid) {
        const { ms, count } = await counted(() => syncoid(`${replica}/syncoidinc`));
        await received(`${replica}/syncoidinc`, next);
        inc.syncoid.push(ms);
        syncoidInc.push(count);
        inc.syncoidLocal.push(await syncoid(`${replica}/syncoidlocal`, true));
        await received(`${replica}/syncoidlocal`, next);
        inc.rawLocal.push(await rawLocal(base, next, `${replica}/rawlocal@${next}`));
      }
      base = next;
    }
    // No-op: the target is current.
    const noop: number[] = [];
    for (let r = 0; r < REPS; r++) noop.push((await syncNow()).ms);
    const noopSyncoid: number[] = [];
    const syncoidNoop: SyncoidCount[] = [];
    const noopSyncoidLocal: number[] = [];
    // The shim's own cost, to discount: one sh (and its log line) before zfs for a plain call, and for the one it
    // translates, the sh, a command substitution and awk against zfs-fuse's nearest (the same get without -t).
    const shimCost = { plain: [] as number[], direct: [] as number[], get: [] as number[], getDirect: [] as number[] };
    if (hasSyncoid) {
      for (let r = 0; r < REPS; r++) {
        const { ms, count } = await counted(() => syncoid(`${replica}/syncoidinc`));
        noopSyncoid.push(ms);
        syncoidNoop.push(count);
      }
      for (let r = 0; r < REPS; r++) noopSyncoidLocal.push(await syncoid(`${replica}/syncoidlocal`, true));
      const costLog = join(syncoidDir, 'cost.log');
      const timed = async (argv: string[]) => {
        const t0 = performance.now();
        await runOk(['env', `ZFS_SHIM_LOG=${costLog}`, ...argv]);
        return performance.now() - t0;
      };
      for (let r = 0; r < 30; r++) {
        shimCost.plain.push(await timed([join(shim.a, 'zfs'), 'list', '-H', '-o', 'name', source]));
        shimCost.direct.push(await timed(['/usr/sbin/zfs', 'list', '-H', '-o', 'name', source]));
        shimCost.get.push(await timed([join(shim.a, 'zfs'), 'get', '-Hpd', '1', '-t', 'snapshot', 'guid,creation', source]));
        shimCost.getDirect.push(await timed(['/usr/sbin/zfs', 'get', '-Hpd', '1', 'guid,creation', source]));
      }
    }

    const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    const line = (what: string, x: number[], y: number[]) =>
      `${what.padEnd(34)} bdr ${f(median(x)).padStart(8)}   raw ${f(median(y)).padStart(8)}   ratio ${(median(x) / median(y)).toFixed(2)}`;
    process.stdout.write(`bench/replication: ${MIB} MiB of random data, ${REPS} rep(s), medians (first stream ${bytes} bytes)\n`);
    process.stdout.write(`${line('initial (full) sync vs raw pipe', initial.bdr, initial.raw)}\n`);
    process.stdout.write(`${line('1 MiB incremental sync vs raw -i', inc.bdr, inc.raw)}\n`);
    process.stdout.write(`no-op sync (target current)        bdr ${f(median(noop)).padStart(8)}\n`);
    process.stdout.write(`commands (sessions) per incremental sync on A and B: ${sessions.join(', ')}\n`);
    if (hasSyncoid) {
      const vs = (what: string, x: number[], y: number[], z: number[]) =>
        `${what.padEnd(34)} syncoid ${f(median(x)).padStart(8)}   ratio to raw ${(median(x) / median(y)).toFixed(2)}   to bdr ${(median(x) / median(z)).toFixed(2)}`;
      const calls = (c: SyncoidCount[]) =>
        `${c.map((x) => `${x.sessionsB}`).join(', ')} sessions at B's sshd; zfs calls (shim log) A ${c.map((x) => x.zfsA.length).join(', ')}, B ${c.map((x) => x.zfsB.length).join(', ')}`;
      const ms = (xs: number[]) => `${median(xs).toFixed(1)} ms`;
      process.stdout.write('syncoid over ssh (zfs shim on A and B, see the header):\n');
      process.stdout.write(`${vs('initial (full), syncoid', initial.syncoid, initial.raw, initial.bdr)}\n`);
      process.stdout.write(`${vs('1 MiB incremental, syncoid', inc.syncoid, inc.raw, inc.bdr)}\n`);
      process.stdout.write(`no-op, syncoid                     syncoid ${f(median(noopSyncoid)).padStart(8)}   to bdr ${(median(noopSyncoid) / median(noop)).toFixed(1)}\n`);
      process.stdout.write(`syncoid per incremental sync: ${calls(syncoidInc)}\n`);
      const last = syncoidInc.at(-1);
      if (last) {
        process.stdout.write(`  the last one's commands at B (forced command's log): ${last.commandsB.join(' | ')}\n`);
        process.stdout.write(`  its zfs calls: ${[...last.zfsA.map((c) => `A: zfs ${c}`), ...last.zfsB.map((c) => `B: zfs ${c}`)].join(' | ')}\n`);
      }
      process.stdout.write(`syncoid per no-op sync: ${calls(syncoidNoop)}\n`);
      process.stdout.write(
        `shim cost per zfs call (median of 30): passed on ${ms(shimCost.plain)} vs ${ms(shimCost.direct)} direct (zfs list); translated get -t snapshot ${ms(shimCost.get)} vs ${ms(shimCost.getDirect)} for the same get without -t\n`,
      );
      process.stdout.write(`1 MiB incremental, both local      syncoid ${f(median(inc.syncoidLocal)).padStart(8)}   raw zfs send -i | zfs receive ${f(median(inc.rawLocal))}   ratio ${(median(inc.syncoidLocal) / median(inc.rawLocal)).toFixed(2)}\n`);
      process.stdout.write(`no-op, both local                  syncoid ${f(median(noopSyncoidLocal)).padStart(8)}   to bdr's no-op over ssh ${(median(noopSyncoidLocal) / median(noop)).toFixed(1)}\n`);
    } else {
      process.stdout.write('syncoid: not installed (apt-get install -y --no-install-recommends sanoid), not measured\n');
    }
  } finally {
    for (const i of informers) await i.stop();
    // The operator's ssh2 connections would otherwise keep the process alive after the figures.
    await connections?.closeAll();
    await tc.stop();
    await bed.cleanup();
  }
}

await main();
