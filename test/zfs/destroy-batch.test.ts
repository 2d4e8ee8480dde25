import { describe, expect, it } from 'vitest';
import type { ExecResult } from '../../nodes/connection.ts';
import { ZfsMachine } from '../../zfs/index.ts';
import { OPENZFS_BATCHES, OpenZfsStandIn } from './openzfs-stand-in.ts';

/**
 * OpenZFS destroys `ds@a,b,c` all or nothing: one held snapshot fails the whole batch. zfs-fuse has no
 * batches (exercised live in replication.test.ts); this stand-in answers like OpenZFS so that the batch
 * path and its one-by-one fallback are covered too.
 */
class OpenZfsDestroyStandIn extends OpenZfsStandIn {
  constructor(
    readonly existing: Set<string>,
    readonly held: Set<string>,
  ) {
    super();
  }
  protected answer(argv: readonly string[]): ExecResult {
    const [, verb, spec = ''] = argv;
    if (verb !== 'destroy') return { stdout: '', stderr: 'unexpected', code: 2 };
    const at = spec.indexOf('@');
    const names = spec.slice(at + 1).split(',').map((s) => `${spec.slice(0, at)}@${s}`);
    const busy = names.find((n) => this.held.has(n));
    if (busy) return { stdout: '', stderr: `cannot destroy snapshot ${busy}: dataset is busy\n`, code: 1 };
    const missing = names.filter((n) => !this.existing.has(n));
    if (missing.length === names.length) return { stdout: '', stderr: 'could not find any snapshots to destroy; check snapshot names.\n', code: 1 };
    for (const n of names) this.existing.delete(n);
    return { stdout: '', stderr: '', code: 0 };
  }
}

const openzfs = OPENZFS_BATCHES;

describe('destroySnapshots batching', () => {
  it('destroys a dataset’s snapshots in one command and retries a failed batch one by one', async () => {
    const snaps = Array.from({ length: 5 }, (_, i) => `tank/a@s${i}`);
    const conn = new OpenZfsDestroyStandIn(new Set([...snaps, 'tank/b@x']), new Set(['tank/a@s2']));
    const results = await new ZfsMachine(conn, { capabilities: openzfs }).destroySnapshots([...snaps, 'tank/b@x']);
    expect(results.map((r) => (r.destroyed ? 'ok' : r.error.kind))).toEqual(['ok', 'ok', 'busy', 'ok', 'ok', 'ok']);
    expect(conn.commands).toEqual([
      'zfs destroy tank/a@s0,s1,s2,s3,s4',
      'zfs destroy tank/a@s0',
      'zfs destroy tank/a@s1',
      'zfs destroy tank/a@s2',
      'zfs destroy tank/a@s3',
      'zfs destroy tank/a@s4',
      'zfs destroy tank/b@x',
    ]);
    expect([...conn.existing]).toEqual(['tank/a@s2']);
  });

  it('keeps batches below 64 snapshots per command', async () => {
    const snaps = Array.from({ length: 150 }, (_, i) => `tank/a@s${i}`);
    const conn = new OpenZfsDestroyStandIn(new Set(snaps), new Set());
    const results = await new ZfsMachine(conn, { capabilities: openzfs }).destroySnapshots(snaps);
    expect(results.every((r) => r.destroyed)).toBe(true);
    expect(conn.commands.map((c) => c.split(',').length)).toEqual([64, 64, 22]);
  });

  it('never destroys anything that is not a snapshot', async () => {
    const conn = new OpenZfsDestroyStandIn(new Set(), new Set());
    await expect(new ZfsMachine(conn, { capabilities: openzfs }).destroySnapshots(['tank/a'])).rejects.toThrow(/invalid ZFS snapshot name/);
    expect(conn.commands).toEqual([]);
  });
});
