/**
 * Runs bdr's ZfsMachine paths that only OpenZFS takes (zfs-fuse, the test bed, lacks them) against the VM booted
 * by boot.sh, and checks each result against ZFS's own answer read separately (manual check, not `npm test`):
 * inventory with bookmarks and exact pool bytes, atomic multi-snapshot, batch destroy with a held snapshot,
 * `zfs holds`, moveHold, an incremental from a bookmark, -c/-L/-e sends, and how OpenZFS's error wordings classify.
 *
 *   npx tsx test/openzfs-vm/machine.ts           # OZVM_DIR (default /var/tmp/openzfs-vm), OZVM_PORT (2222)
 *
 * Uses its own pool "bm" on /var/tmp/bm.img inside the VM, destroyed and recreated on each run.
 */
import { SshConnection } from '../../nodes/ssh.ts';
import { DestinationFull, ZfsError } from '../../zfs/errors.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { relay } from '../../zfs/transfer.ts';
import { check, finish, vmTarget } from './vm.ts';

const target = vmTarget;


const conn = new SshConnection(target);
const other = new SshConnection(target);
const zfs = new ZfsMachine(conn);
const peer = new ZfsMachine(other);

async function sh(script: string): Promise<string> {
  const r = await conn.exec(['sh', '-c', script], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
const get = async (property: string, name: string): Promise<string> => (await sh(`zfs get -H -p -o value ${property} ${name}`)).trim();
async function failure(p: Promise<unknown>): Promise<ZfsError | undefined> {
  try {
    await p;
    return undefined;
  } catch (error) {
    return error instanceof ZfsError ? error : new ZfsError('failed', String(error));
  }
}

try {
  await sh([
    'modprobe zfs',
    'zpool destroy bm 2>/dev/null; rm -f /var/tmp/bm.img',
    'truncate -s 512M /var/tmp/bm.img',
    'zpool create -O compression=lz4 bm /var/tmp/bm.img',
    'zfs create bm/a',
    'head -c 4000000 /dev/urandom > /bm/a/f',
  ].join(' && '));

  // Atomic multi-snapshot: one command, so one transaction group. OpenZFS refuses two names of one file system
  // in one command ("multiple snapshots of same fs not allowed"): the due snapshots of a round name different ones.
  await sh('zfs create bm/b');
  const snap = await zfs.snapshot(['bm/a@m1', 'bm/b@m1']);
  check('snapshot of two datasets is one atomic command', snap.atomic && snap.created.length === 2, snap);
  const [t1, t2] = [await get('createtxg', 'bm/a@m1'), await get('createtxg', 'bm/b@m1')];
  check('both snapshots share a createtxg', t1 === t2, { t1, t2 });
  // OpenZFS refuses two snapshots of one file system in one command ("multiple snapshots of same fs not allowed"),
  // taking none: ZfsMachine.snapshot then takes each on its own.
  const refused = await sh('zfs snapshot bm/a@x0 bm/a@x9 2>&1 || true');
  check('two snapshots of one file system in one zfs command: refused by OpenZFS', /multiple snapshots of same fs not allowed/.test(refused), refused.trim());
  const sameFs = await zfs.snapshot(['bm/a@x1', 'bm/a@x2', 'bm/b@x1']);
  const listed = (await sh('zfs list -H -t snapshot -o name -r bm/a')).trim().split('\n');
  check('ZfsMachine.snapshot of two names of one file system: each on its own, all taken', !sameFs.atomic && sameFs.failed.length === 0 && listed.join(' ') === 'bm/a@m1 bm/a@x1 bm/a@x2', { atomic: sameFs.atomic, created: sameFs.created, listed });
  await sh('zfs destroy bm/a@x1,x2 && zfs destroy bm/b@x1');
  await zfs.snapshot(['bm/a@m2']);

  await sh('zfs bookmark bm/a@m1 bm/a#bk1 && head -c 1000000 /dev/urandom > /bm/a/g && zfs snapshot bm/a@m3');
  const inv = await zfs.inventory({ roots: ['bm'] });
  const guidM1 = await get('guid', 'bm/a@m1');
  const entryM1 = inv.snapshots.find((s) => s.name === 'bm/a@m1');
  check('inventory: snapshot guid as zfs get prints it', entryM1?.guid === guidM1, { inventory: entryM1?.guid, zfsGet: guidM1 });
  check('inventory: createtxg read', entryM1?.createtxg === Number(t1), entryM1?.createtxg ?? 'missing');
  const bk = inv.bookmarks.find((b) => b.name === 'bm/a#bk1');
  check('inventory: bookmark listed with its snapshot\'s guid', bk?.guid === guidM1, bk ?? 'missing');
  const size = Number((await sh('zpool get -H -p -o value size bm')).trim());
  const pool = inv.pools.find((p) => p.name === 'bm');
  check('inventory: pool size in exact bytes (zpool list -p)', pool?.size === size, { inventory: pool?.size, zpoolGet: size });

  // Holds: listed by tag, moved forward, idempotent.
  await zfs.hold('bdr:test', ['bm/a@m1']);
  const holds = await zfs.holds(['bm/a@m1', 'bm/a@m2']);
  check('holds lists tags per snapshot', JSON.stringify([...holds]) === JSON.stringify([['bm/a@m1', ['bdr:test']], ['bm/a@m2', []]]), [...holds]);
  await zfs.moveHold('bdr:test', 'bm/a@m3', 'bm/a@m1');
  await zfs.moveHold('bdr:test', 'bm/a@m3', 'bm/a@m1');
  const moved = [await get('userrefs', 'bm/a@m1'), await get('userrefs', 'bm/a@m3')];
  check('moveHold moved the hold (twice: idempotent)', moved[0] === '0' && moved[1] === '1', { userrefs: moved });

  // Incremental from a bookmark, with -c -L -e, relayed to a new replica.
  await relay(zfs, { snapshot: 'bm/a@m1', compressed: true, largeBlocks: true, embedded: true }, peer, 'bm/r', { noMount: true });
  const fromBookmark = await relay(zfs, { snapshot: 'bm/a@m3', from: 'bm/a#bk1', compressed: true }, peer, 'bm/r', { noMount: true });
  const replicaGuid = await get('guid', 'bm/r@m3');
  check('incremental from a bookmark arrives with the source guid', replicaGuid === (await get('guid', 'bm/a@m3')), { bytes: fromBookmark.bytes, guid: replicaGuid });

  // Batch destroy with one held snapshot: the batch fails, then one by one, the held one alone stays.
  await sh('zfs snapshot bm/a@d1 && zfs snapshot bm/a@d2 && zfs snapshot bm/a@d3 && zfs hold keep bm/a@d2');
  const destroyed = await zfs.destroySnapshots(['bm/a@d1', 'bm/a@d2', 'bm/a@d3']);
  const summary = destroyed.map((d) => (d.destroyed ? `${d.snapshot} destroyed` : `${d.snapshot} kept (${d.error.kind}: ${d.error.message})`));
  check('batch destroy keeps only the held snapshot, as busy', destroyed.map((d) => d.destroyed).join() === 'true,false,true' && !destroyed[1]?.destroyed && destroyed[1]?.error.kind === 'busy', summary);
  await sh('zfs release keep bm/a@d2');

  // OpenZFS's wordings, classified.
  // An incremental whose snapshot the target already has (same guid) is a silent no-op on OpenZFS 2.2.2: exit 0.
  const listR = (): Promise<string> => sh('zfs list -H -p -t snapshot -o name,guid,createtxg -r bm/r');
  const before = await listR();
  const again = await failure(relay(zfs, { snapshot: 'bm/a@m3', from: 'bm/a@m2' }, peer, 'bm/r', { noMount: true }));
  check('incremental to a snapshot the target already has: succeeds, changes nothing', again === undefined && (await listR()) === before, again?.message ?? before.trim().split('\n'));
  await sh('zfs snapshot bm/a@m4');
  const wrongBase = await failure(relay(zfs, { snapshot: 'bm/a@m4', from: 'bm/a@m2' }, peer, 'bm/r', { noMount: true }));
  check('incremental from a base that is not the target\'s newest: conflict', wrongBase?.kind === 'conflict', wrongBase?.message ?? 'no error');
  const older = await failure(relay(zfs, { snapshot: 'bm/a@m2', from: 'bm/a@m1' }, peer, 'bm/r', { noMount: true }));
  check('incremental onto a target already past it: conflict', older?.kind === 'conflict', older?.message ?? 'no error');
  const exists = await failure(relay(zfs, { snapshot: 'bm/a@m1' }, peer, 'bm/r', { noMount: true }));
  check('full stream onto an existing replica: conflict', exists?.kind === 'conflict', exists?.message ?? 'no error');
  const missing = await failure(relay(zfs, { snapshot: 'bm/a@nope' }, peer, 'bm/x', { noMount: true }));
  check('missing snapshot: notFound', missing?.kind === 'notFound', missing?.message ?? 'no error');
  check('destroyDataset of a missing dataset answers false', (await zfs.destroyDataset('bm/never')) === false, 'false');
  await sh('zfs create -o quota=2M bm/small');
  const full = await failure(relay(zfs, { snapshot: 'bm/a@m1' }, peer, 'bm/small/r', { noMount: true }));
  check('receive over quota: noSpace as DestinationFull', full?.kind === 'noSpace' && full instanceof DestinationFull, full?.message ?? 'no error');
  await sh('zfs receive -A bm/small/r 2>/dev/null; true');
  await sh('head -c 300000 /dev/urandom > /bm/a/h');
  const modified = await failure(relay(zfs, { snapshot: 'bm/a@m3' }, peer, 'bm/a', { noMount: true }));
  check('full stream onto the source itself: conflict', modified?.kind === 'conflict', modified?.message ?? 'no error');
} finally {
  await conn.close();
  await other.close();
}
finish();
