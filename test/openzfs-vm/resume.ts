/**
 * Drives bdr's own OpenZFS resume path against the VM booted by boot.sh (manual check, not part of `npm test`):
 * capability probe, an incremental and a full relay interrupted part-way by bdr (abort after ~20 MB),
 * `resumeToken`, `describeResumeToken` (checked against `zfs get guid`, read separately), then `relay` with
 * `{ resumeToken }` to finish each stream, and the received snapshot's guid compared with the source's.
 *
 *   npx tsx test/openzfs-vm/resume.ts            # OZVM_DIR (default /var/tmp/openzfs-vm), OZVM_PORT (2222)
 *
 * Uses its own pool "bv" on /var/tmp/bv.img inside the VM, destroyed and recreated on each run. Source and
 * target are the same VM over two SSH connections, as bdr relays between two machines.
 */
import { SshConnection } from '../../nodes/ssh.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { meteredTransferArgv, runMeteredTransfer } from '../../zfs/metered-transfer.ts';
import { relay } from '../../zfs/transfer.ts';
import { check, finish, vmTarget } from './vm.ts';

const CUT_BYTES = 20_000_000;

const target = vmTarget;


async function sh(machine: ZfsMachine, script: string): Promise<string> {
  const r = await machine.connection.exec(['sh', '-c', script], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function guidOf(machine: ZfsMachine, snapshot: string): Promise<string> {
  return (await machine.run(['zfs', 'get', '-H', '-p', '-o', 'value', 'guid', snapshot])).stdout.trim();
}

/** Starts a relay and aborts it once CUT_BYTES have passed: the interruption bdr itself would suffer. */
async function interruptedRelay(src: ZfsMachine, dst: ZfsMachine, send: { snapshot: string; from?: string }, into: string): Promise<void> {
  const abort = new AbortController();
  try {
    const r = await relay(src, send, dst, into, { noMount: true, resumable: true }, {
      signal: abort.signal,
      onProgress: (bytes) => {
        if (bytes >= CUT_BYTES) abort.abort();
      },
    });
    check(`interrupted relay into ${into} fails`, false, r);
  } catch (error) {
    check(`interrupted relay into ${into} fails`, true, (error as Error).message.split('\n')[0] ?? '');
  }
  await receiveGone(dst, into);
}

/**
 * An aborted stream's promise settles as soon as it is aborted; the killed `zfs receive` may still be ending on the
 * machine, and a token read before it has ended is stale (a resume then fails: "contains partially-complete state").
 */
async function receiveGone(dst: ZfsMachine, into: string): Promise<void> {
  const aborted = Date.now();
  for (let i = 0; ; i++) {
    const r = await dst.connection.exec(['pgrep', '-f', `zfs receive .*${into}$`]);
    if (r.code !== 0) {
      console.log(`     the killed zfs receive into ${into} was gone ${Date.now() - aborted} ms after the stream was aborted (${i} polls)`);
      return;
    }
    if (i === 300) throw new Error(`zfs receive into ${into} still running after the abort`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function resumeAndFinish(src: ZfsMachine, dst: ZfsMachine, into: string, expected: { toGuid: string; fromGuid?: string; toName: string }): Promise<void> {
  const token = await dst.resumeToken(into);
  check(`resumeToken(${into}) is a token`, token !== undefined, token === undefined ? 'undefined' : `${token.slice(0, 40)}… (${token.length} chars)`);
  if (token === undefined) return;
  const contents = await src.describeResumeToken(token);
  const same = contents !== undefined && contents.toGuid === expected.toGuid && contents.fromGuid === expected.fromGuid && contents.toName === expected.toName;
  check(`describeResumeToken matches zfs get guid`, same, { contents, expected });
  check('sendResumeArgv', true, (await src.sendResumeArgv(token)).map((a) => (a === token ? '<token>' : a)).join(' '));
  const done = await relay(src, { resumeToken: token }, dst, into, { noMount: true, resumable: true });
  check(`resumed relay into ${into} completes`, true, `${done.bytes} bytes in ${done.ms} ms`);
  const received = `${into}@${expected.toName.split('@')[1] ?? ''}`;
  check(`${received} has the source's guid`, (await guidOf(dst, received)) === expected.toGuid, await guidOf(dst, received));
  check(`no token left on ${into}`, (await dst.resumeToken(into)) === undefined, 'resumeToken → undefined');
}

const srcConn = new SshConnection(target);
const dstConn = new SshConnection(target);
const src = new ZfsMachine(srcConn);
const dst = new ZfsMachine(dstConn);
try {
  const caps = await src.capabilities();
  console.log('capabilities:', JSON.stringify(caps));
  check('implementation openzfs', caps.implementation === 'openzfs', caps.version ?? '');
  check('resumeTokens', caps.resumeTokens, caps.resumeTokens);
  check('receiveResumable', caps.receiveResumable, caps.receiveResumable);

  await sh(src, [
    'modprobe zfs',
    'zpool destroy bv 2>/dev/null; rm -f /var/tmp/bv.img',
    'truncate -s 512M /var/tmp/bv.img',
    'zpool create -O compression=off bv /var/tmp/bv.img',
    'zfs create bv/src',
    'head -c 8000000 /dev/urandom > /bv/src/a',
    'zfs snapshot bv/src@s1',
    'zfs send bv/src@s1 | zfs receive -u bv/dst',
    'head -c 50000000 /dev/urandom > /bv/src/b',
    'zfs snapshot bv/src@s2',
  ].join(' && '));
  const s1 = await guidOf(src, 'bv/src@s1');
  const s2 = await guidOf(src, 'bv/src@s2');
  console.log(`guids (zfs get): bv/src@s1=${s1} bv/src@s2=${s2}`);

  await interruptedRelay(src, dst, { snapshot: 'bv/src@s2', from: 'bv/src@s1' }, 'bv/dst');
  await resumeAndFinish(src, dst, 'bv/dst', { toGuid: s2, fromGuid: s1, toName: 'bv/src@s2' });

  await interruptedRelay(src, dst, { snapshot: 'bv/src@s2' }, 'bv/full');
  await resumeAndFinish(src, dst, 'bv/full', { toGuid: s2, toName: 'bv/src@s2' });

  // The Vector controller's own path when both ends are one machine: the stream runs in one shell on the
  // machine (zfs/metered-transfer.ts), `zfs send -t` in place of the send when resuming.
  await sh(src, 'head -c 30000000 /dev/urandom > /bv/src/c && zfs snapshot bv/src@s3');
  const s3 = await guidOf(src, 'bv/src@s3');
  const receiveArgv = await dst.receiveArgv('bv/dst', { noMount: true, resumable: true });
  const abort = new AbortController();
  const cut = await runMeteredTransfer(src.connection, meteredTransferArgv(await src.sendArgv({ snapshot: 'bv/src@s3', from: 'bv/src@s2' }), { kind: 'local', receiveArgv }), 'bv/dst', {
    signal: abort.signal,
    onProgress: (bytes) => {
      if (bytes >= 10_000_000) abort.abort();
    },
  }).then((r) => r, (error: unknown) => error as Error);
  check('interrupted metered local transfer fails', cut instanceof Error, cut instanceof Error ? cut.message.split('\n')[0] ?? '' : cut);
  await receiveGone(dst, 'bv/dst');
  const localToken = await dst.resumeToken('bv/dst');
  if (localToken === undefined) {
    // zfs send and receive work inside an ioctl that TERM does not interrupt: in the seconds before the KILL that
    // follows (nodes/ssh.ts killAfterMs) a fast machine may finish the whole stream. Then there is nothing to resume.
    const arrived = await guidOf(dst, 'bv/dst@s3').catch(() => 'missing');
    check('no token after the metered transfer: the "aborted" stream completed anyway', arrived === s3, `bv/dst@s3 ${arrived}`);
  } else {
    check('resumeToken after the metered transfer', true, `${localToken.length} chars`);
    const contents = await src.describeResumeToken(localToken);
    check('describeResumeToken: s2 → s3', contents?.toGuid === s3 && contents.fromGuid === s2 && contents.toName === 'bv/src@s3', contents ?? 'undefined');
    const resumed = await runMeteredTransfer(src.connection, meteredTransferArgv(await src.sendResumeArgv(localToken), { kind: 'local', receiveArgv }), 'bv/dst');
    check('resumed metered local transfer completes', true, `${resumed.bytes} bytes counted by dd`);
    check('bv/dst@s3 has the source\'s guid', (await guidOf(dst, 'bv/dst@s3')) === s3, await guidOf(dst, 'bv/dst@s3'));
  }

  check('describeResumeToken of a corrupt token is undefined', (await src.describeResumeToken('1-deadbeef-d0-789c00')) === undefined, 'undefined');
} finally {
  await srcConn.close();
  await dstConn.close();
}
finish();
