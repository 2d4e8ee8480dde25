import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../../nodes/local.ts';
import { bytesReported, meteredTransferArgv, runMeteredTransfer, ThrottleUnavailableError } from '../../zfs/metered-transfer.ts';
import { ZfsError } from '../../zfs/errors.ts';

describe('metered transfer (real sh and GNU dd, no ZFS needed)', () => {
  const local = new LocalConnection();

  it("reads dd's byte counts from its progress and summary lines", () => {
    // GNU coreutils 9's formats, copied from a terminal.
    expect(bytesReported('1048576 bytes (1.0 MB, 1.0 MiB) copied, 1 s, 1.0 MB/s\r2097152 bytes (2.1 MB, 2.0 MiB) copied, 2 s, 1.0 MB/s\r')).toBe(2097152);
    expect(bytesReported('5+1 records in\n5+1 records out\n655360 bytes (655 kB, 640 KiB) copied, 0.01 s, 65 MB/s\n')).toBe(655360);
    expect(bytesReported('')).toBe(0);
  });

  it('counts every byte that went through the pipe, without changing it', async () => {
    // 3,000,001 bytes: not a multiple of dd's block size, so a partial last block must be counted too.
    const argv = meteredTransferArgv(['head', '-c', '3000001', '/dev/urandom'], { kind: 'local', receiveArgv: ['sh', '-c', 'test "$(wc -c)" -eq 3000001'] });
    const progress: number[] = [];
    const { bytes } = await runMeteredTransfer(local, argv, 'pool/ds', { onProgress: (b) => progress.push(b) });
    expect(bytes).toBe(3000001);
    expect(progress.at(-1)).toBe(3000001);
  });

  it("fails with the send side's failure even when the receiving side succeeds", async () => {
    const argv = meteredTransferArgv(['sh', '-c', 'echo partial; exit 3'], { kind: 'local', receiveArgv: ['cat'] });
    await expect(runMeteredTransfer(local, argv, 'pool/ds')).rejects.toBeInstanceOf(ZfsError);
  });

  it('with a rate, pv paces the stream before dd counts it: at least (bytes - one tenth of a second of the rate) / rate', async () => {
    const rate = 1024 * 1024;
    const size = 3 * 1024 * 1024 + 5;
    const timed = async (limit: { bytesPerSecond?: number }) => {
      const argv = meteredTransferArgv(['head', '-c', String(size), '/dev/urandom'], { kind: 'local', receiveArgv: ['sh', '-c', `test "$(wc -c)" -eq ${size}`] }, limit);
      const started = performance.now();
      const { bytes } = await runMeteredTransfer(local, argv, 'pool/ds');
      return { bytes, ms: performance.now() - started };
    };
    const limited = await timed({ bytesPerSecond: rate });
    const free = await timed({});
    // pv adds rate/10 bytes to its allowance every 100 ms from its start: by t it has let through at most rate * (t + 0.1).
    const floorMs = ((size - rate / 10) * 1000) / rate;
    console.log(`pv -L ${rate}: ${limited.bytes} bytes in ${limited.ms.toFixed(0)} ms (floor ${floorMs.toFixed(0)} ms, ${((limited.bytes / limited.ms) * 1000).toFixed(0)} B/s); unlimited ${free.ms.toFixed(0)} ms`);
    expect(limited.bytes).toBe(size);
    expect(free.bytes).toBe(size);
    expect(limited.ms).toBeGreaterThanOrEqual(floorMs);
    expect(free.ms).toBeLessThan(limited.ms);
  });

  it('with a rate on a machine without pv: refuses before sending anything', async () => {
    // A PATH with sh, head and dd but no pv, as on a machine where pv was never installed.
    const bin = await mkdtemp(join(tmpdir(), 'bdr-nopv-'));
    const saved = process.env.PATH;
    try {
      for (const tool of ['sh', 'head', 'dd', 'touch']) await symlink(`/usr/bin/${tool}`, join(bin, tool));
      process.env.PATH = bin;
      const marker = join(bin, 'sent');
      const argv = meteredTransferArgv(['sh', '-c', `touch ${marker}; head -c 1000 /dev/zero`], { kind: 'local', receiveArgv: ['sh', '-c', 'cat >/dev/null'] }, { bytesPerSecond: 1024 });
      await expect(runMeteredTransfer(local, argv, 'pool/ds')).rejects.toBeInstanceOf(ThrottleUnavailableError);
      process.env.PATH = saved;
      expect(await local.exec(['test', '-e', marker])).toMatchObject({ code: 1 });
    } finally {
      process.env.PATH = saved;
      await rm(bin, { recursive: true, force: true });
    }
  });

  describe('hold moves in the stream session', () => {
    /** A stand-in `zfs` for hold and release only (the real ones are tested on zfs-fuse in the vector sync tests), answering with ZFS's messages. */
    const fakeZfs = async () => {
      const bin = await mkdtemp(join(tmpdir(), 'bdr-holds-'));
      const log = join(bin, 'log');
      await writeFile(join(bin, 'zfs'), [
        '#!/bin/sh',
        `echo "$*" >> ${log}`,
        'case "$1:$3" in',
        `  hold:*@exists) echo "cannot hold snapshot '$3': tag already exists on this dataset" >&2; exit 1 ;;`,
        `  hold:*@denied) echo "cannot hold snapshot '$3': permission denied" >&2; exit 1 ;;`,
        `  release:*@gone) echo "cannot release hold from snapshot '$3': no such tag on this dataset" >&2; exit 1 ;;`,
        `  release:*@busy) echo "cannot release hold from snapshot '$3': dataset is busy" >&2; exit 1 ;;`,
        'esac',
      ].join('\n'), { mode: 0o755 });
      const zfs = join(bin, 'zfs');
      const calls = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      return { bin, zfs, calls, hold: (s: string) => [zfs, 'hold', 'bdr:t', s], release: (s: string) => [zfs, 'release', 'bdr:t', s] };
    };

    it('holds before the stream and releases after the receive, in order, in one session', async () => {
      const f = await fakeZfs();
      try {
        const send = ['sh', '-c', `echo "send" >> ${f.bin}/log; head -c 1000 /dev/zero`];
        const argv = meteredTransferArgv(send, { kind: 'local', receiveArgv: ['sh', '-c', `cat >/dev/null; echo receive >> ${f.bin}/log`] }, {}, {
          before: [f.hold('p/d@new')],
          after: [f.hold('q/d@new'), f.release('q/d@old'), f.release('p/d@old')],
        });
        expect(await runMeteredTransfer(local, argv, 'q/d')).toEqual({ bytes: 1000 });
        expect(await f.calls()).toEqual(['hold bdr:t p/d@new', 'send', 'receive', 'hold bdr:t q/d@new', 'release bdr:t q/d@old', 'release bdr:t p/d@old']);
      } finally {
        await rm(f.bin, { recursive: true, force: true });
      }
    });

    it('a hold already there and a release of a hold already gone are what was wanted', async () => {
      const f = await fakeZfs();
      try {
        const argv = meteredTransferArgv(['head', '-c', '10', '/dev/zero'], { kind: 'local', receiveArgv: ['sh', '-c', 'cat >/dev/null'] }, {}, { before: [f.hold('p/d@exists')], after: [f.release('p/d@gone')] });
        expect(await runMeteredTransfer(local, argv, 'q/d')).toEqual({ bytes: 10 });
        expect(await f.calls()).toEqual(['hold bdr:t p/d@exists', 'release bdr:t p/d@gone']);
      } finally {
        await rm(f.bin, { recursive: true, force: true });
      }
    });

    it('a failed hold sends nothing; a failed receive moves nothing after it; a failed release is reported as one', async () => {
      const f = await fakeZfs();
      try {
        const send = ['sh', '-c', `echo send >> ${f.bin}/log; head -c 10 /dev/zero`];
        const ok = ['sh', '-c', 'cat >/dev/null'];
        const denied = runMeteredTransfer(local, meteredTransferArgv(send, { kind: 'local', receiveArgv: ok }, {}, { before: [f.hold('p/d@denied')], after: [f.release('p/d@old')] }), 'q/d');
        await expect(denied).rejects.toMatchObject({ kind: 'permissionDenied', message: expect.stringMatching(/zfs hold.*permission denied/s) });
        expect(await f.calls()).toEqual(['hold bdr:t p/d@denied']);

        const refused = meteredTransferArgv(send, { kind: 'local', receiveArgv: ['sh', '-c', 'cat >/dev/null; echo "cannot receive: invalid stream" >&2; exit 1'] }, {}, { after: [f.release('p/d@old')] });
        await expect(runMeteredTransfer(local, refused, 'q/d')).rejects.toBeInstanceOf(ZfsError);
        expect(await f.calls()).toEqual(['hold bdr:t p/d@denied', 'send']);

        const busy = meteredTransferArgv(['head', '-c', '10', '/dev/zero'], { kind: 'local', receiveArgv: ok }, {}, { after: [f.release('p/d@busy')] });
        await expect(runMeteredTransfer(local, busy, 'q/d')).rejects.toMatchObject({ message: expect.stringMatching(/zfs release.*dataset is busy/s) });
      } finally {
        await rm(f.bin, { recursive: true, force: true });
      }
    });

    it('takes only a hold or release of one snapshot', () => {
      expect(() => meteredTransferArgv(['true'], { kind: 'local', receiveArgv: ['true'] }, {}, { before: [['zfs', 'destroy', 'p/d@x']] })).toThrow(TypeError);
      expect(() => meteredTransferArgv(['true'], { kind: 'local', receiveArgv: ['true'] }, {}, { after: [['zfs', 'hold', 't', 'p/d@x', 'p/d@y']] })).toThrow(TypeError);
    });
  });

  it('refuses a rate that is not a whole number of bytes per second', () => {
    expect(() => meteredTransferArgv(['true'], { kind: 'local', receiveArgv: ['true'] }, { bytesPerSecond: 0.5 })).toThrow(RangeError);
  });
});
