import { mkdtemp, rm, symlink } from 'node:fs/promises';
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

  it('refuses a rate that is not a whole number of bytes per second', () => {
    expect(() => meteredTransferArgv(['true'], { kind: 'local', receiveArgv: ['true'] }, { bytesPerSecond: 0.5 })).toThrow(RangeError);
  });
});
