/**
 * Stream size estimates (`zfs send -n -P`), which `bdr plan` prints for a Vector's steps. zfs-fuse cannot make
 * them (its `zfs send` has neither -n nor -P), so the answers here are OpenZFS 2.2.2's own, recorded in the VM
 * (test/openzfs-vm/) for a 3 MiB random file and then 3 MiB of zeros: a full, an -i and an -I dry run, and one
 * naming a snapshot that does not exist. The recorded byte counts of the real streams (`zfs send … | wc -c`)
 * sit beside them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ExecResult } from '../../nodes/connection.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { ZfsMachine, parseSendEstimate } from '../../zfs/machine.ts';
import { ensureZfsFuse } from '../testbed/index.ts';
import { OpenZfsStandIn, OPENZFS_BATCHES } from './openzfs-stand-in.ts';

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/openzfs-2.2.2/${name}`, import.meta.url), 'utf8');
const recorded = (name: string): ExecResult => ({
  code: Number(fixture(`send-nP-${name}.rc`).trim()),
  stdout: fixture(`send-nP-${name}.stdout`),
  stderr: fixture(`send-nP-${name}.stderr`),
});
const realBytes = new Map(
  fixture('send-nP-real-bytes.txt')
    .trim()
    .split('\n')
    .map((l) => l.split(' ') as [string, string])
    .map(([k, v]) => [k, Number(v)]),
);

/** Answers `zfs send -n -P …` with what OpenZFS 2.2.2 printed for the same dry run. */
class RecordedDryRuns extends OpenZfsStandIn {
  protected answer(argv: readonly string[]): ExecResult {
    const line = argv.join(' ');
    if (line === 'zfs send -n -P tp/src@s1') return recorded('full');
    if (line === 'zfs send -n -P -i tp/src@s1 tp/src@s2') return recorded('incremental');
    if (line === 'zfs send -n -P -I tp/src@s1 tp/src@s3') return recorded('intermediates');
    if (line === 'zfs send -n -P -i tp/src@s1 tp/src@nosuch') return recorded('missing');
    throw new Error(`unexpected command: ${line}`);
  }
}

describe('zfs send estimates', () => {
  it('reads the total from OpenZFS 2.2.2 dry runs: the last size line, also of a package of several streams', () => {
    // Read by eye from the recorded outputs: "size\t12912", "size\t3159472", and for -I two "incremental" lines
    // (3159472 + 7792) and "size\t3167264".
    expect(parseSendEstimate(fixture('send-nP-full.stdout'))).toBe(12_912);
    expect(parseSendEstimate(fixture('send-nP-incremental.stdout'))).toBe(3_159_472);
    expect(parseSendEstimate(fixture('send-nP-intermediates.stdout'))).toBe(3_167_264);
    expect(parseSendEstimate(fixture('send-nP-missing.stdout') + fixture('send-nP-missing.stderr'))).toBeUndefined();
    expect(parseSendEstimate('size\t99999999999999999999\n')).toBeUndefined();
  });

  it('asks OpenZFS for the dry run of exactly the stream it would send, and gives undefined when zfs refuses', async () => {
    const conn = new RecordedDryRuns();
    const zfs = new ZfsMachine(conn, { capabilities: { ...OPENZFS_BATCHES, sendEstimate: true } });
    expect(await zfs.sendEstimate({ snapshot: 'tp/src@s1' })).toBe(12_912);
    expect(await zfs.sendEstimate({ snapshot: 'tp/src@s2', from: 'tp/src@s1' })).toBe(3_159_472);
    expect(await zfs.sendEstimate({ snapshot: 'tp/src@s3', from: 'tp/src@s1', intermediates: true })).toBe(3_167_264);
    expect(await zfs.sendEstimate({ snapshot: 'tp/src@nosuch', from: 'tp/src@s1' })).toBeUndefined();
    expect(conn.commands).toHaveLength(4);
    // The estimates against the real streams' bytes (the stream's headers and end records are not in them):
    // within 1 % for the data-bearing streams.
    expect(Math.abs(3_159_472 - (realBytes.get('incremental') ?? 0)) / (realBytes.get('incremental') ?? 1)).toBeLessThan(0.01);
    expect(Math.abs(3_167_264 - (realBytes.get('intermediates') ?? 0)) / (realBytes.get('intermediates') ?? 1)).toBeLessThan(0.01);
  });

  it('asks nothing where ZFS cannot estimate (the zfs-fuse of this machine)', async () => {
    await ensureZfsFuse();
    const zfs = new ZfsMachine(new LocalConnection());
    expect((await zfs.capabilities()).sendEstimate).toBe(false);
    expect(await zfs.sendEstimate({ snapshot: 'any/pool@s1' })).toBeUndefined();
  });
});
