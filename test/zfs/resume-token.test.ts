/**
 * Decoding `zfs send -nvt <token>` output. The samples have the shape OpenZFS prints (libzfs's "resume token
 * contents:" line, then nvlist_print: "nvlist version: 0" and one tab-indented `name = value` per field, uint64s
 * in hex). The decimal guids were converted by hand (python3 -c "print(int('854f02a2dd32cf0d', 16))"), not by
 * the parser. zfs-fuse has no resume tokens, so the command itself cannot run on this test bed.
 */
import { describe, expect, it } from 'vitest';
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
