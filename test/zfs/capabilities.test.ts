import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../../nodes/local.ts';
import { capabilitiesFromUsage, probeCapabilities, usageFlags } from '../../zfs/capabilities.ts';
import { ensureZfsFuse } from '../testbed/index.ts';

// The lines of OpenZFS 2.x `zfs -?` / `zpool -?` output that the probe reads (tab-indented, as printed).
const OPENZFS_ZFS_USAGE = [
  'usage: zfs command args ...',
  "where 'command' is one of the following:",
  '',
  '\tversion',
  '',
  '\tsnapshot [-r] [-o property=value] ... <filesystem|volume>@<snap> ...',
  '\tdestroy [-fnpRrv] <filesystem|volume>',
  '\tdestroy [-dnpRrv] <filesystem|volume>@<snap>[%<snap>][,...]',
  '\tdestroy <filesystem|volume>#<bookmark>',
  '\tlist [-Hp] [-r|-d max] [-o property[,...]] [-s property]...',
  '\t    [-S property]... [-t type[,...]] [filesystem|volume|snapshot] ...',
  '\tget [-rHp] [-d max] [-o "all" | field[,...]]',
  '\t    [-t type[,...]] [-s source[,...]]',
  '\t    <"all" | property[,...]> [filesystem|volume|snapshot|bookmark] ...',
  '\tsend [-DnPpRVvLecwhb] [-X dataset[,dataset]...] [[-I|-i] <snapshot>] <snapshot>',
  '\tsend [-DnVvPLecw] [-i snapshot|bookmark] <filesystem|volume|snapshot>',
  '\tsend [-nVvPe] -t <receive_resume_token>',
  '\treceive [-vMnsFhu] [-o <property>=<value>] ... [-x <property>] ...',
  '\t    <filesystem|volume|snapshot>',
  '\treceive -A <filesystem|volume>',
  '\thold [-r] <tag> <snapshot> ...',
  '\tholds [-rHp] <snapshot> ...',
  '\trelease [-r] <tag> <snapshot> ...',
  '\tbookmark <snapshot|bookmark> <newbookmark>',
  '',
].join('\n');
const OPENZFS_ZPOOL_USAGE = '\tlist [-gHLpPv] [-o property[,...]] [-T d|u] [pool] ... [interval [count]]\n';

/** Every capability, as OpenZFS 2.2.2's usage texts offer them (read by eye from the recorded texts). */
const OPENZFS_2_2_2 = {
  implementation: 'openzfs',
  version: 'zfs-2.2.2-0ubuntu9',
  listParsable: true,
  getTypeFilter: true,
  bookmarks: true,
  resumeTokens: true,
  sendRaw: true,
  sendCompressed: true,
  sendLargeBlocks: true,
  sendEmbedded: true,
  sendEstimate: true,
  receiveResumable: true,
  receiveNoMount: true,
  receiveProperties: true,
  multiSnapshot: true,
  batchDestroy: true,
  listHolds: true,
  zpoolParsable: true,
};

describe('capability probe', () => {
  it('recognises OpenZFS 2.x from its usage text', () => {
    const caps = capabilitiesFromUsage({
      zfsUsage: OPENZFS_ZFS_USAGE,
      zpoolUsage: OPENZFS_ZPOOL_USAGE,
      version: 'zfs-2.2.2-0ubuntu9',
      receiveNoMountAccepted: true,
    });
    expect(caps).toEqual(OPENZFS_2_2_2);
  });

  it('reads the real `zfs -?`, `zpool -?` and `zfs version` of OpenZFS 2.2.2 (Ubuntu 24.04) as probed', () => {
    // Recorded in a VM by test/openzfs-vm/capture.sh; the usage texts go to stdout, stderr is empty.
    const fixture = (name: string): string => readFileSync(new URL(`./fixtures/openzfs-2.2.2/${name}`, import.meta.url), 'utf8');
    expect(fixture('zfs-usage.stderr') + fixture('zpool-usage.stderr')).toBe('');
    expect(fixture('zfs-version-probe.stdout')).toBe('zfs-2.2.2-0ubuntu9\nzfs-kmod-2.2.2-0ubuntu9\n');
    // The probe's dry-run receive from an empty stream fails on the stream, not on -u.
    expect(fixture('recv-probe.stderr')).toBe('cannot receive: failed to read from stream\n');
    // Combined the way probeCapabilities combines them.
    const caps = capabilitiesFromUsage({
      zfsUsage: fixture('zfs-usage.stdout') + fixture('zfs-usage.stderr'),
      zpoolUsage: fixture('zpool-usage.stdout') + fixture('zpool-usage.stderr'),
      version: fixture('zfs-version-probe.stdout').trim().split('\n')[0],
      receiveNoMountAccepted: !/invalid option/.test(fixture('recv-probe.stderr')),
    });
    // Every capability is present in 2.2.2's usage text, read by eye: e.g. "send [-DLPbcehnpsVvw]",
    // "send [-nVvPe] -t <receive_resume_token>", "receive [-vMnsFhu] [-o ...] [-x ...]", "list [-gHLpPv]" (zpool).
    expect(caps).toEqual(OPENZFS_2_2_2);
  });

  it('joins continuation lines and reads zfs-fuse style flag groups', () => {
    expect([...usageFlags(OPENZFS_ZFS_USAGE, 'get')].sort()).toEqual(['H', 'd', 'o', 'p', 'r', 's', 't']);
    expect([...usageFlags('\tsend [-RDp] [-[iI] snapshot] <snapshot>\n', 'send')].sort()).toEqual(['D', 'I', 'R', 'i', 'p']);
  });

  it('probes the zfs-fuse of this machine as a legacy ZFS without OpenZFS options', async () => {
    await ensureZfsFuse();
    const caps = await probeCapabilities(new LocalConnection());
    // What DESIGN.md and perf-limits.md measured for Debian's zfs-fuse 0.7.0 (pool version 23).
    expect(caps).toMatchObject({
      implementation: 'legacy',
      version: undefined,
      listParsable: false,
      getTypeFilter: false,
      bookmarks: false,
      resumeTokens: false,
      sendRaw: false,
      sendCompressed: false,
      sendLargeBlocks: false,
      sendEmbedded: false,
      sendEstimate: false,
      receiveResumable: false,
      receiveProperties: false,
      multiSnapshot: false,
      batchDestroy: false,
      listHolds: false,
      zpoolParsable: false,
    });
    // zfs-fuse accepts -u although its usage text does not list it.
    expect(caps.receiveNoMount).toBe(true);
  });
});
