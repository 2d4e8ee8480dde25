/**
 * The forced-command guard (nodes/guard.ts) on OpenZFS, where it forces the replica properties as receive options
 * (`receiveProperties`, "options" mode), which zfs-fuse cannot run. Manual check against the VM of boot.sh:
 *
 *   npx tsx test/openzfs-vm/guard.ts             # OZVM_DIR (default /var/tmp/openzfs-vm), OZVM_PORT (2222)
 *
 * The guard is installed with bdr's installGuard and run the way sshd runs a forced command: the client's request
 * in SSH_ORIGINAL_COMMAND, the prefix, hold tag and replica leaf as arguments, the stream on stdin. A full stream, an
 * interrupted incremental (`-s`) and its resume (`zfs send -t`) go through it, with a +hold move; then the same
 * for a raw (-w) stream of an encrypted dataset.
 * Uses its own pool "bg" on /var/tmp/bg.img, destroyed and recreated on each run.
 */
import { guardOptions, installGuard, REPLICA_PROPERTIES, RECEIVE_ONLY_PROPERTIES } from '../../nodes/guard.ts';
import { SshConnection } from '../../nodes/ssh.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { check, finish, vmTarget } from './vm.ts';

const conn = new SshConnection(vmTarget);
const zfs = new ZfsMachine(conn);

async function sh(script: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return conn.exec(['sh', '-c', script, 'sh', ...args], { timeoutMs: 300_000 });
}
async function ok(script: string): Promise<string> {
  const r = await sh(script);
  if (r.code !== 0) throw new Error(`${script}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const PREFIX = 'bg/replicas/ns/vec';
const TAG = 'bdr:vector:ns:vec';
const REPLICA = `${PREFIX}/src`;

try {
  const caps = await zfs.capabilities();
  check('receiveProperties (the guard forces -o options)', caps.receiveProperties, caps.receiveProperties);
  const guard = await installGuard(conn, guardOptions(caps));
  check('installGuard', true, guard);
  await ok([
    'modprobe zfs',
    'zpool destroy bg 2>/dev/null; rm -f /var/tmp/bg.img',
    'truncate -s 512M /var/tmp/bg.img',
    'zpool create bg /var/tmp/bg.img',
    `zfs create -p -o canmount=off ${PREFIX}`,
    'zfs create bg/src',
    'head -c 8000000 /dev/urandom > /bg/src/a',
    'zfs snapshot bg/src@s1',
    'head -c 50000000 /dev/urandom > /bg/src/b',
    'zfs snapshot bg/src@s2',
  ].join(' && '));

  // What sshd does with `restrict,command="<guard> <prefix> <tag> <leaf>"`: the request goes in SSH_ORIGINAL_COMMAND.
  // The key may receive into one replica (its leaf): each replica here has its own.
  const throughGuard = (send: string, request: string, leaf = 'src') =>
    sh(`${send} | SSH_ORIGINAL_COMMAND="$1" "$2" "$3" "$4" "$5"`, request, guard, PREFIX, TAG, leaf);

  const full = await throughGuard('zfs send bg/src@s1', `zfs receive -u -s ${REPLICA} +hold ${REPLICA}@s1`);
  check('full stream through the guard (receive -u -s -o …, +hold)', full.code === 0, full.stderr.trim() || 'exit 0');
  const props = await ok(`zfs get -H -o property,value,source ${[...Object.keys(REPLICA_PROPERTIES), ...Object.keys(RECEIVE_ONLY_PROPERTIES)].join(',')} ${REPLICA}`);
  const want = { ...REPLICA_PROPERTIES, ...RECEIVE_ONLY_PROPERTIES };
  const got = Object.fromEntries(props.trim().split('\n').map((l) => { const [p, v, s] = l.split('\t'); return [p ?? '', `${v ?? ''} (${s ?? ''})`]; }));
  check('the replica is inert: every forced property has its value, set locally', Object.entries(want).every(([k, v]) => got[k] === `${v} (local)`), got);
  check('+hold placed the key\'s tag', (await ok(`zfs holds -H ${REPLICA}@s1`)).includes(`\t${TAG}\t`), (await ok(`zfs holds -H ${REPLICA}@s1`)).trim());
  check('nothing mounted', (await ok(`zfs get -H -o value mounted ${REPLICA}`)).trim() === 'no', (await ok(`zfs get -H -o value mounted ${REPLICA}`)).trim());

  const cut = await throughGuard('zfs send -i @s1 bg/src@s2 | head -c 20000000', `zfs receive -u -s ${REPLICA}`);
  check('interrupted incremental through the guard fails', cut.code !== 0, cut.stderr.trim().split('\n')[0] ?? '');
  const token = await zfs.resumeToken(REPLICA);
  check('the guard kept it resumable: a token', token !== undefined, token === undefined ? 'undefined' : `${token.length} chars`);
  if (token !== undefined) {
    const contents = await zfs.describeResumeToken(token);
    const s2 = (await ok('zfs get -H -p -o value guid bg/src@s2')).trim();
    check('describeResumeToken', contents?.toGuid === s2, contents ?? 'undefined');
    const resumed = await throughGuard((await zfs.sendResumeArgv(token)).join(' '), `zfs receive -u -s ${REPLICA} +hold ${REPLICA}@s2 +release ${REPLICA}@s1`);
    check('resume through the guard (-o options on a resumed receive), hold moved', resumed.code === 0, resumed.stderr.trim() || 'exit 0');
    check(`${REPLICA}@s2 has the source's guid`, (await ok(`zfs get -H -p -o value guid ${REPLICA}@s2`)).trim() === s2, s2);
    const holds = (await ok(`zfs holds -H ${REPLICA}@s1 ${REPLICA}@s2`)).trim();
    check('the hold moved from @s1 to @s2', holds === `${REPLICA}@s2\t${TAG}\t${holds.split('\t')[2] ?? ''}`, holds);
  }
  // An encrypted source sent raw (-w): the replica never sees the key. The same forced -o options apply.
  await ok([
    'printf "bdr-test-passphrase" > /var/tmp/bg.key',
    'zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file:///var/tmp/bg.key bg/enc',
    'head -c 8000000 /dev/urandom > /bg/enc/a && zfs snapshot bg/enc@e1',
    'head -c 40000000 /dev/urandom > /bg/enc/b && zfs snapshot bg/enc@e2',
  ].join(' && '));
  const ENC = `${PREFIX}/enc`;
  const rawSend = (await zfs.sendArgv({ snapshot: 'bg/enc@e1', raw: true })).join(' ');
  const rawFull = await throughGuard(rawSend, `zfs receive -u -s ${ENC}`, 'enc');
  check(`raw encrypted full stream through the guard (${rawSend})`, rawFull.code === 0, rawFull.stderr.trim() || 'exit 0');
  const encProps = (await ok(`zfs get -H -o property,value,source encryption,keystatus,readonly,canmount,mountpoint ${ENC}`)).trim().split('\n');
  check('the raw replica is encrypted, its key unavailable, and inert', encProps.some((l) => l.startsWith('keystatus\tunavailable')) && encProps.some((l) => l === 'readonly\ton\tlocal'), encProps);
  const rawIncr = (await zfs.sendArgv({ snapshot: 'bg/enc@e2', from: '@e1', raw: true })).join(' ');
  const rawCut = await throughGuard(`${rawIncr} | head -c 15000000`, `zfs receive -u -s ${ENC}`, 'enc');
  check('interrupted raw incremental fails', rawCut.code !== 0, rawCut.stderr.trim().split('\n')[0] ?? '');
  const rawToken = await zfs.resumeToken(ENC);
  const e2 = (await ok('zfs get -H -p -o value guid bg/enc@e2')).trim();
  const rawContents = rawToken === undefined ? undefined : await zfs.describeResumeToken(rawToken);
  check('raw token decoded', rawContents?.toGuid === e2 && rawContents.toName === 'bg/enc@e2', rawContents ?? 'no token');
  if (rawToken !== undefined) {
    const rawResumed = await throughGuard((await zfs.sendResumeArgv(rawToken)).join(' '), `zfs receive -u -s ${ENC}`, 'enc');
    check('raw resume through the guard', rawResumed.code === 0, rawResumed.stderr.trim() || 'exit 0');
    check(`${ENC}@e2 has the source's guid`, (await ok(`zfs get -H -p -o value guid ${ENC}@e2`)).trim() === e2, e2);
  }

  const refused = await throughGuard('true', `zfs receive -u -F ${REPLICA}`);
  check('the guard still refuses -F', refused.code === 1 && refused.stderr.includes('refused'), refused.stderr.trim());
} finally {
  await conn.close();
}
finish();
