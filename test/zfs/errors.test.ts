import { describe, expect, it } from 'vitest';
import { InvalidNameError } from '../../api/names.ts';
import { HostKeyMismatchError } from '../../nodes/errors.ts';
import { asZfsError, classifyStderr, DestinationFull, receiveError, ZfsError, zfsCommandError, type ZfsErrorKind } from '../../zfs/errors.ts';

// stderr as printed by zfs-fuse 0.7 (seen in this project's tests) and by OpenZFS 2.x.
const SAMPLES: [string, ZfsErrorKind][] = [
  ["cannot open 'tank/x@nope': dataset does not exist\n", 'notFound'],
  ["cannot open 'nopool': no such pool\n", 'notFound'],
  ["cannot release 'keep' from 'tank/d@s1': no such tag on this dataset\n", 'notFound'],
  ['could not find any snapshots to destroy; check snapshot names.\n', 'notFound'],
  ["cannot destroy 'tank/d@s1': dataset is busy\n", 'busy'],
  ["cannot destroy snapshot tank/d@s1: dataset is busy\n", 'busy'],
  ["cannot destroy 'tank/d@s3': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\n", 'busy'],
  ["cannot hold 'tank/d@s1': tag already exists on this dataset\n", 'exists'],
  ["cannot create snapshot 'tank/d@s1': dataset already exists\n", 'exists'],
  ['cannot receive new filesystem stream: out of space\n', 'noSpace'],
  ["cannot create snapshot 'tank/d@x': out of space\n", 'noSpace'],
  // OpenZFS turns EDQUOT of a receive into this wording; strerror(EDQUOT) and a bare errno name also occur.
  ['cannot receive new filesystem stream: destination tank/r/v/d space quota exceeded.\n', 'noSpace'],
  ['cannot receive incremental stream: Disk quota exceeded\n', 'noSpace'],
  ['zfs: write failed: No space left on device\n', 'noSpace'],
  ['internal error: EDQUOT\n', 'noSpace'],
  // The guard received the stream but could not finish its property overrides: not a refusal.
  ['bdr-guard: received into tank/r/v/d, but could not make it inert; the operator re-applies this\n', 'failed'],
  ["cannot receive new filesystem stream: destination 'tank/d' exists\nmust specify -F to overwrite it\n", 'conflict'],
  ['cannot receive new filesystem stream: destination has snapshots (eg. tank/d@s1)\nmust destroy them to overwrite it\n', 'conflict'],
  ['cannot receive incremental stream: destination tank/d has been modified\nsince most recent snapshot\n', 'conflict'],
  ['cannot receive incremental stream: most recent snapshot of tank/d does not\nmatch incremental source\n', 'conflict'],
  ["invalid option 'p'\nusage:\n\tlist [-rH][-d max] ...\n", 'unsupported'],
  ["unrecognized command 'version'\nusage: zfs command args ...\n", 'unsupported'],
  ["cannot create 'tank/x': permission denied\n", 'permissionDenied'],
  ['bdr-guard: refused: receive target tank/other is outside tank/replicas/v\n', 'permissionDenied'],
  ['@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@\nHost key verification failed.\n', 'hostKeyMismatch'],
  ['root@10.0.0.5: Permission denied (publickey).\n', 'authenticationFailed'],
  ['ssh: connect to host 10.0.0.5 port 22: Connection refused\n', 'connectFailed'],
  ['internal error: Bad file descriptor\n', 'failed'],
];

describe('ZFS error classification', () => {
  it.each(SAMPLES)('%j is %s', (stderr, kind) => {
    expect(classifyStderr(stderr)).toBe(kind);
  });

  it('keeps transport and name errors in the same vocabulary', () => {
    const mismatch = asZfsError(new HostKeyMismatchError('root@h:22', 'SHA256:a', 'SHA256:b'), ['zfs', 'list']);
    expect(mismatch).toMatchObject({ kind: 'hostKeyMismatch', retriable: false, details: { target: 'root@h:22', argv: ['zfs', 'list'] } });
    const invalid = asZfsError(new InvalidNameError('dataset', 'a;b', 'bad'));
    expect(invalid).toMatchObject({ kind: 'invalidName', retriable: false });
  });

  it('turns a receive side running out of space or quota into DestinationFull, and leaves other errors alone', () => {
    const full = zfsCommandError(['zfs', 'receive', '-u', 'tank/r/v/d'], { stderr: 'cannot receive new filesystem stream: out of space\n', code: 1 }, 'root@b:22');
    const error = receiveError(full, 'tank/r/v/d');
    expect(error).toBeInstanceOf(DestinationFull);
    expect(error).toBeInstanceOf(ZfsError);
    expect(error).toMatchObject({ kind: 'noSpace', dataset: 'tank/r/v/d', retriable: false, details: { argv: ['zfs', 'receive', '-u', 'tank/r/v/d'] } });
    expect(error.message).toMatch(/^tank\/r\/v\/d is full \(quota or pool\): root@b:22: zfs receive: cannot receive new filesystem stream: out of space$/);
    expect(receiveError(error, 'tank/r/v/d')).toBe(error);
    const conflict = zfsCommandError(['zfs', 'receive'], { stderr: 'cannot receive incremental stream: destination tank/d has been modified\nsince most recent snapshot\n', code: 1 }, 'b');
    expect(receiveError(conflict, 'tank/d')).toBe(conflict);
  });
});
