/**
 * Decoding `zfs send -nvt <token>` output. The samples have the shape OpenZFS prints (libzfs's "resume token
 * contents:" line, then nvlist_print: "nvlist version: 0" and one tab-indented `name = value` per field, uint64s
 * in hex). The decimal guids were converted by hand (python3 -c "print(int('854f02a2dd32cf0d', 16))"), not by
 * the parser. zfs-fuse has no resume tokens, so the command itself cannot run on this test bed; the last block
 * reads output recorded from a real OpenZFS (test/openzfs-vm).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../../nodes/local.ts';
import { capabilitiesFromUsage } from '../../zfs/capabilities.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { parseResumeTokenContents } from '../../zfs/resume-token.ts';

const incremental = [
  'resume token contents:',
  'nvlist version: 0',
  '\tfromguid = 0x595d9f81aa9dddab',
  '\tobject = 0x1',
  '\toffset = 0x0',
  '\tbytes = 0x0',
  '\ttoguid = 0x854f02a2dd32cf0d',
  '\ttoname = pool1/test@b',
  '',
].join('\n');

const full = [
  'resume token contents:',
  'nvlist version: 0',
  '\tobject = 0x72a',
  '\toffset = 0x5f80000',
  '\tbytes = 0x90c3f2184',
  '\ttoguid = 0xffffffffffffffff',
  '\ttoname = rpool/data@bdr-20261201T090000Z',
  '\tcompressok = 1',
  '\trawok = 1',
  'full\trpool/data@bdr-20261201T090000Z\t3711767360',
  'size\t3711767360',
  '',
].join('\n');

describe('resume token contents', () => {
  it('reads toguid and fromguid of an incremental stream as decimal guids', () => {
    expect(parseResumeTokenContents(incremental)).toEqual({ toGuid: '9605899428723609357', fromGuid: '6439478421471747499', toName: 'pool1/test@b' });
  });

  it('a full stream has no fromguid; lines after the nvlist (a -P estimate) are ignored', () => {
    expect(parseResumeTokenContents(full)).toEqual({ toGuid: '18446744073709551615', toName: 'rpool/data@bdr-20261201T090000Z' });
  });

  it('a fromguid of 0 means a full stream', () => {
    expect(parseResumeTokenContents(incremental.replace('0x595d9f81aa9dddab', '0x0'))).toEqual({ toGuid: '9605899428723609357', toName: 'pool1/test@b' });
  });

  it('anything it cannot read exactly gives undefined (the partial receive is then discarded)', () => {
    expect(parseResumeTokenContents('')).toBeUndefined();
    expect(parseResumeTokenContents('cannot resume send: resume token is corrupt')).toBeUndefined();
    expect(parseResumeTokenContents(incremental.replace('\ttoguid = 0x854f02a2dd32cf0d\n', ''))).toBeUndefined();
    expect(parseResumeTokenContents(incremental.replace('\ttoname = pool1/test@b\n', ''))).toBeUndefined();
    expect(parseResumeTokenContents(incremental.replace('0x854f02a2dd32cf0d', '0x1854f02a2dd32cf0d'))).toBeUndefined();
    expect(parseResumeTokenContents(incremental.replace('0x595d9f81aa9dddab', 'banana'))).toBeUndefined();
    expect(parseResumeTokenContents(incremental.replace('nvlist version: 0', 'nvlist version: 1'))).toBeUndefined();
  });
});

/**
 * Real output of OpenZFS 2.2.2 (Ubuntu 24.04, zfs-2.2.2-0ubuntu9, kernel 6.8.0-31), recorded in a VM by
 * test/openzfs-vm/capture.sh: `zfs send -i @s1 tp/src@s2 | head -c 20000000 | zfs receive -u -s tp/dst` (and the
 * same for a full stream into tp/full) left the tokens; the guids were read with `zfs get -H -p guid` (guids.txt):
 * tp/src@s1 = 15132871277643284574, tp/src@s2 = 5704517814503144477.
 */
describe('resume token contents printed by a real OpenZFS 2.2.2', () => {
  const fixture = (name: string): string => readFileSync(new URL(`./fixtures/openzfs-2.2.2/${name}`, import.meta.url), 'utf8');
  const S1 = '15132871277643284574';
  const S2 = '5704517814503144477';

  it('the guids above are what `zfs get` printed', () => {
    expect(fixture('guids.txt')).toBe(`tp/src@s1\tguid\t${S1}\t-\ntp/src@s2\tguid\t${S2}\t-\n`);
  });

  it('`zfs send -nvt` prints the contents on stdout, nothing on stderr', () => {
    expect(fixture('send-nvt-incremental.stderr')).toBe('');
    expect(fixture('send-nvt-full.stderr')).toBe('');
    expect(fixture('send-nvt-incremental.stdout')).toMatch(/^resume token contents:\nnvlist version: 0\n/);
  });

  it('an interrupted incremental stream: toguid is @s2, fromguid is @s1', () => {
    const out = fixture('send-nvt-incremental.stdout');
    expect(parseResumeTokenContents(out)).toEqual({ toGuid: S2, fromGuid: S1, toName: 'tp/src@s2' });
    // As describeResumeToken reads it: stdout, then stderr.
    expect(parseResumeTokenContents(`${out}\n${fixture('send-nvt-incremental.stderr')}`)).toEqual({ toGuid: S2, fromGuid: S1, toName: 'tp/src@s2' });
  });

  it('an interrupted full stream: no fromguid line at all, and the size estimate after the nvlist is ignored', () => {
    const out = fixture('send-nvt-full.stdout');
    expect(out).not.toContain('fromguid');
    expect(out).toContain('full send of tp/src@s2 estimated size is');
    expect(parseResumeTokenContents(out)).toEqual({ toGuid: S2, toName: 'tp/src@s2' });
  });

  it('a raw (-w -c) stream of an encrypted dataset adds compressok and rawok, which change nothing', () => {
    // `zfs send -w -c bg/enc@e2 | head -c 20000000 | zfs receive -u -s bg/rawfull`; `zfs get guid bg/enc@e2` printed
    // 12517846933880437742 (= 0xadb85376c6a7fbee).
    const out = fixture('send-nvt-raw-compressed-full.stdout');
    expect(fixture('send-nvt-raw-compressed-full.stderr')).toBe('');
    expect(out).toContain('\tcompressok = 1\n\trawok = 1\n');
    expect(parseResumeTokenContents(out)).toEqual({ toGuid: '12517846933880437742', toName: 'bg/enc@e2' });
  });

  it('the real tokens pass the shape check before reaching a command line', async () => {
    const caps = capabilitiesFromUsage({ zfsUsage: fixture('zfs-usage.stdout'), zpoolUsage: fixture('zpool-usage.stdout'), version: 'zfs-2.2.2-0ubuntu9', receiveNoMountAccepted: true });
    const zfs = new ZfsMachine(new LocalConnection(), { capabilities: caps });
    for (const name of ['token-incremental.txt', 'token-full.txt']) {
      const token = fixture(name).trim();
      expect(await zfs.sendResumeArgv(token)).toEqual(['zfs', 'send', '-t', token]);
    }
    // receive's own hint names the same token that `zfs get receive_resume_token` printed.
    expect(fixture('recv-incremental.stderr')).toContain(`zfs send -t ${fixture('token-incremental.txt').trim()}\n`);
    expect(fixture('recv-full.stderr')).toContain(`zfs send -t ${fixture('token-full.txt').trim()}\n`);
  });
});
