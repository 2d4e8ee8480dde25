/**
 * The Vector controller's direct path on OpenZFS, end to end on one VM (manual check against boot.sh's VM):
 * the primary's own OpenSSH client, with a vector key bdr generated and installed, into the forced-command guard
 * in its OpenZFS mode, the stream counted by dd and paced by pv (zfs/metered-transfer.ts), exactly the argv the
 * controller builds. The VM is both primary and storage machine, reached as 127.0.0.1:22 from inside.
 *
 *   npx tsx test/openzfs-vm/direct.ts            # OZVM_DIR (default /var/tmp/openzfs-vm), OZVM_PORT (2222)
 *
 * A full stream with +hold, then an incremental paced at 5 MB/s and aborted after 10 MB, whose token is decoded
 * and resumed over the same path with `zfs send -t` and the hold moved. Installs pv in the VM when missing.
 * Uses its own pool "bd" on /var/tmp/bd.img, destroyed and recreated on each run.
 */
import { authorizeKey } from '../../nodes/authorized-keys.ts';
import { guardOptions, installGuard, vectorHoldTag, vectorKeyEntry } from '../../nodes/guard.ts';
import { installVectorIdentity } from '../../nodes/identity.ts';
import { generateEd25519Key } from '../../nodes/keygen.ts';
import { SshConnection } from '../../nodes/ssh.ts';
import { meteredTransferArgv, runMeteredTransfer } from '../../zfs/metered-transfer.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { check, finish, vmTarget } from './vm.ts';

const conn = new SshConnection(vmTarget);
const { hostKey } = vmTarget;
const zfs = new ZfsMachine(conn);

async function ok(script: string): Promise<string> {
  const r = await conn.exec(['sh', '-c', script], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}
const guidOf = async (name: string): Promise<string> => (await ok(`zfs get -H -p -o value guid ${name}`)).trim();

const OWNER = 'bdr:vector=ns/direct';
const TAG = vectorHoldTag(OWNER);
const PREFIX = 'bd/replicas/ns/direct';
const REPLICA = `${PREFIX}/src`;

try {
  await ok([
    'modprobe zfs',
    'command -v pv >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y pv >/dev/null',
    'zpool destroy bd 2>/dev/null; rm -f /var/tmp/bd.img',
    'truncate -s 512M /var/tmp/bd.img',
    'zpool create bd /var/tmp/bd.img',
    `zfs create -p -o canmount=off ${PREFIX}`,
    'zfs create bd/src',
    'head -c 8000000 /dev/urandom > /bd/src/a && zfs snapshot bd/src@s1',
    'head -c 50000000 /dev/urandom > /bd/src/b && zfs snapshot bd/src@s2',
  ].join(' && '));

  const caps = await zfs.capabilities();
  const guard = await installGuard(conn, guardOptions(caps));
  const key = generateEd25519Key();
  await authorizeKey(conn, vectorKeyEntry({ publicKey: key.publicKey, owner: OWNER, prefix: PREFIX, leaf: 'src', guardPath: guard }));
  const files = await installVectorIdentity(conn, { dir: '/var/lib/bdr/vectors/ns/direct', privateKey: key.privateKey, host: '127.0.0.1', port: 22, hostKey });
  check('vector key authorized behind the guard, identity installed', true, `${key.fingerprint} ${files.identityFile}`);
  const route = { host: '127.0.0.1', port: 22, user: 'root', ...files };
  const direct = async (sendArgv: string[], moves: string[], options: Parameters<typeof runMeteredTransfer>[3] = {}, rate?: number) =>
    runMeteredTransfer(conn, meteredTransferArgv(sendArgv, { kind: 'direct', route, receiveArgv: [...(await zfs.receiveArgv(REPLICA, { noMount: true, resumable: true })), ...moves] }, { bytesPerSecond: rate }), REPLICA, options);

  const full = await direct(await zfs.sendArgv({ snapshot: 'bd/src@s1', compressed: true }), ['+hold', `${REPLICA}@s1`]);
  check('full stream over the direct path', (await guidOf(`${REPLICA}@s1`)) === (await guidOf('bd/src@s1')), `${full.bytes} bytes counted by dd`);
  check('replica inert (readonly local)', (await ok(`zfs get -H -o value,source readonly ${REPLICA}`)).trim() === 'on\tlocal', (await ok(`zfs get -H -o value,source readonly ${REPLICA}`)).trim());

  const abort = new AbortController();
  const cut = await direct(await zfs.sendArgv({ snapshot: 'bd/src@s2', from: '@s1' }), [], {
    signal: abort.signal,
    onProgress: (bytes) => {
      if (bytes >= 10_000_000) abort.abort();
    },
  }, 5_000_000).then((r) => r, (error: unknown) => error as Error);
  check('incremental paced at 5 MB/s, aborted after 10 MB', cut instanceof Error, cut instanceof Error ? cut.message.split('\n')[0] ?? '' : cut);
  // The aborted session's receive may still be ending (see README.md): wait until no zfs receive runs.
  for (let i = 0; (await conn.exec(['pgrep', '-f', 'zfs receive'])).code === 0; i++) {
    if (i === 300) throw new Error('zfs receive still running');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const token = await zfs.resumeToken(REPLICA);
  check('a token on the replica', token !== undefined, token === undefined ? 'undefined' : `${token.length} chars`);
  if (token !== undefined) {
    const contents = await zfs.describeResumeToken(token);
    const [s1, s2] = [await guidOf('bd/src@s1'), await guidOf('bd/src@s2')];
    check('describeResumeToken', contents?.toGuid === s2 && contents.fromGuid === s1, contents ?? 'undefined');
    const resumed = await direct(await zfs.sendResumeArgv(token), ['+hold', `${REPLICA}@s2`, '+release', `${REPLICA}@s1`]);
    check('resumed over the direct path with zfs send -t', (await guidOf(`${REPLICA}@s2`)) === s2, `${resumed.bytes} bytes counted by dd; @s2 guid ${s2}`);
    const holds = (await ok(`zfs holds -H ${REPLICA}@s1 ${REPLICA}@s2`)).trim().split('\n').map((l) => l.split('\t').slice(0, 2).join(' '));
    check('the hold moved to @s2', holds.join() === `${REPLICA}@s2 ${TAG}`, holds);
  }
} finally {
  await conn.close();
}
finish();
