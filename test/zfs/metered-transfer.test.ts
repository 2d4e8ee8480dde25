import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../../nodes/local.ts';
import { bytesReported, meteredTransferArgv, runMeteredTransfer } from '../../zfs/metered-transfer.ts';
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
});
