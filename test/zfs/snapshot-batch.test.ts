import { describe, expect, it } from 'vitest';
import type { ExecResult } from '../../nodes/connection.ts';
import { ZfsMachine } from '../../zfs/index.ts';
import { OPENZFS_BATCHES, OpenZfsStandIn } from './openzfs-stand-in.ts';

/**
 * OpenZFS takes `zfs snapshot a@x b@x` atomically, all or nothing: it refuses the whole list when two names are
 * of one file system, or when one cannot be taken. zfs-fuse takes one name per command (exercised live in the
 * Dataset tests); this stand-in answers with OpenZFS 2.2.2's words (recorded in test/openzfs-vm/machine-run.txt)
 * so that the batch path and its one-by-one fallback are covered too.
 */
class OpenZfsSnapshotStandIn extends OpenZfsStandIn {
  readonly taken = new Set<string>();
  constructor(readonly missing: ReadonlySet<string>) {
    super();
  }
  protected answer(argv: readonly string[]): ExecResult {
    const names = argv.slice(2);
    const fs = names.map((n) => n.slice(0, n.indexOf('@')));
    if (new Set(fs).size !== fs.length) return { stdout: '', stderr: 'cannot create snapshots : multiple snapshots of same fs not allowed\nno snapshots were created\n', code: 1 };
    const gone = fs.find((f) => this.missing.has(f));
    if (gone) return { stdout: '', stderr: `cannot open '${gone}': dataset does not exist\nno snapshots were created\n`, code: 1 };
    for (const n of names) this.taken.add(n);
    return { stdout: '', stderr: '', code: 0 };
  }
}

const openzfs = OPENZFS_BATCHES;

describe('snapshot batching (OpenZFS)', () => {
  it('takes names of different file systems in one atomic command, a repeated name once', async () => {
    const conn = new OpenZfsSnapshotStandIn(new Set());
    const result = await new ZfsMachine(conn, { capabilities: openzfs }).snapshot(['tank/a@x', 'tank/b@x', 'tank/a@x']);
    expect(result).toEqual({ atomic: true, created: ['tank/a@x', 'tank/b@x'], failed: [] });
    expect(conn.commands).toEqual(['zfs snapshot tank/a@x tank/b@x']);
  });

  it('two names of one file system (two Datasets naming it): each its own command, none failing the others', async () => {
    const conn = new OpenZfsSnapshotStandIn(new Set());
    const result = await new ZfsMachine(conn, { capabilities: openzfs }).snapshot(['tank/a@x', 'tank/a@y', 'tank/b@x']);
    expect(result).toEqual({ atomic: false, created: ['tank/a@x', 'tank/a@y', 'tank/b@x'], failed: [] });
    expect(conn.commands).toEqual(['zfs snapshot tank/a@x', 'zfs snapshot tank/a@y', 'zfs snapshot tank/b@x']);
  });

  it('one name that cannot be taken fails only itself: the batch is tried, then each name on its own', async () => {
    const conn = new OpenZfsSnapshotStandIn(new Set(['tank/gone']));
    const result = await new ZfsMachine(conn, { capabilities: openzfs }).snapshot(['tank/a@x', 'tank/gone@x', 'tank/b@x']);
    expect(result.atomic).toBe(false);
    expect(result.created).toEqual(['tank/a@x', 'tank/b@x']);
    expect(result.failed.map((f) => [f.name, f.error.kind])).toEqual([['tank/gone@x', 'notFound']]);
    expect(conn.commands).toEqual(['zfs snapshot tank/a@x tank/gone@x tank/b@x', 'zfs snapshot tank/a@x', 'zfs snapshot tank/gone@x', 'zfs snapshot tank/b@x']);
    expect([...conn.taken]).toEqual(['tank/a@x', 'tank/b@x']);
  });

  it('a single name that fails throws, as before', async () => {
    const conn = new OpenZfsSnapshotStandIn(new Set(['tank/gone']));
    await expect(new ZfsMachine(conn, { capabilities: openzfs }).snapshot(['tank/gone@x'])).rejects.toMatchObject({ kind: 'notFound' });
  });
});
