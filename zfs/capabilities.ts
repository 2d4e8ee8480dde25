import type { NodeConnection } from '../nodes/connection.ts';
import { parsePropertyTable } from './replica-policy.ts';

/**
 * What the machine's ZFS can do. zfs-fuse (pool version 23) lacks most OpenZFS 2.x options; callers check
 * these flags and degrade (e.g. `zfs get -Hp` instead of `zfs list -p`, full resend instead of resume)
 * instead of failing silently the way sanoid does on zfs-fuse.
 */
export interface ZfsCapabilities {
  /** "openzfs" when `zfs version` answers; "legacy" for zfs-fuse and pre-0.8 ZFS on Linux. */
  implementation: 'openzfs' | 'legacy';
  /** First line of `zfs version` (e.g. "zfs-2.2.2-1"), undefined on legacy. */
  version: string | undefined;
  listParsable: boolean;
  getTypeFilter: boolean;
  bookmarks: boolean;
  /** `receive -s` and `send -t`, plus the receive_resume_token property. */
  resumeTokens: boolean;
  sendRaw: boolean;
  sendCompressed: boolean;
  sendLargeBlocks: boolean;
  sendEmbedded: boolean;
  /** `zfs send -n -P`: a dry run that prints the stream's estimated size (OpenZFS; zfs-fuse has neither flag). */
  sendEstimate: boolean;
  receiveResumable: boolean;
  receiveNoMount: boolean;
  /** `receive -o property=value` and `-x property` (OpenZFS): properties forced at receive time. */
  receiveProperties: boolean;
  /** `zfs snapshot a@x b@y` in one atomic command. */
  multiSnapshot: boolean;
  /** `zfs destroy ds@a,b,c` in one command. */
  batchDestroy: boolean;
  /** `zfs holds` lists tags (its helper is missing from Debian's zfs-fuse package). */
  listHolds: boolean;
  /** `zpool list -p` prints exact bytes; otherwise pool sizes are rounded human units. */
  zpoolParsable: boolean;
  /**
   * The native dataset properties this ZFS has (the table `zfs get` prints without arguments): which of the
   * replica's optional protective properties exist here (zfs/replica-policy.ts). Undefined when not probed:
   * then only the properties every ZFS has are used.
   */
  datasetProperties?: readonly string[];
}

/** Flag letters that a usage text lists for a sub-command (across all of its usage lines). */
export function usageFlags(usage: string, command: string): Set<string> {
  const flags = new Set<string>();
  for (const line of usageLines(usage, command)) {
    for (const m of line.matchAll(/(?:^|[\s[|(])-([A-Za-z]+)/g)) for (const ch of m[1] ?? '') flags.add(ch);
    // zfs-fuse writes "[-[iI] snapshot]".
    for (const m of line.matchAll(/-\[([A-Za-z]+)\]/g)) for (const ch of m[1] ?? '') flags.add(ch);
  }
  return flags;
}

/** The usage lines of one sub-command, continuation lines joined. */
export function usageLines(usage: string, command: string): string[] {
  const out: string[] = [];
  const lines = usage.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (!new RegExp(`^\\s+${command}(\\s|$)`).test(line)) continue;
    const indent = /^\s*/.exec(line)?.[0].replace(/\t/g, '        ').length ?? 0;
    let joined = line.trim();
    // Continuation lines are indented deeper than the command they continue.
    while (i + 1 < lines.length) {
      const next = lines[i + 1] ?? '';
      const nextIndent = /^\s*/.exec(next)?.[0].replace(/\t/g, '        ').length ?? 0;
      if (next.trim() === '' || nextIndent <= indent) break;
      joined += ` ${next.trim()}`;
      i++;
    }
    out.push(joined);
  }
  return out;
}

/** Derives capabilities from `zfs -?`, `zpool -?` and `zfs version` output. Pure, so it is unit-tested. */
export function capabilitiesFromUsage(input: {
  zfsUsage: string;
  zpoolUsage: string;
  version: string | undefined;
  receiveNoMountAccepted: boolean;
  /** What `zfs get` without arguments printed (its property table); omitted, `datasetProperties` stays unknown. */
  propertyTable?: string;
}): ZfsCapabilities {
  const { zfsUsage, zpoolUsage } = input;
  const send = usageFlags(zfsUsage, 'send');
  const receive = new Set([...usageFlags(zfsUsage, 'receive'), ...usageFlags(zfsUsage, 'recv')]);
  const snapshotLines = usageLines(zfsUsage, 'snapshot');
  const destroyLines = usageLines(zfsUsage, 'destroy');
  const openzfs = input.version !== undefined;
  return {
    implementation: openzfs ? 'openzfs' : 'legacy',
    version: input.version,
    listParsable: usageFlags(zfsUsage, 'list').has('p'),
    getTypeFilter: usageFlags(zfsUsage, 'get').has('t'),
    bookmarks: usageLines(zfsUsage, 'bookmark').length > 0,
    resumeTokens: receive.has('s') && send.has('t'),
    sendRaw: send.has('w'),
    sendCompressed: send.has('c'),
    sendLargeBlocks: send.has('L'),
    sendEmbedded: send.has('e'),
    sendEstimate: send.has('n') && send.has('P'),
    receiveResumable: receive.has('s'),
    receiveNoMount: receive.has('u') || input.receiveNoMountAccepted,
    receiveProperties: receive.has('o') && receive.has('x'),
    multiSnapshot: snapshotLines.some((l) => /@\S*\s+\.\.\.\s*$/.test(l)),
    batchDestroy: destroyLines.some((l) => /@\S*(%|\[,\.\.\.\])/.test(l)),
    listHolds: openzfs && usageLines(zfsUsage, 'holds').length > 0,
    zpoolParsable: usageFlags(zpoolUsage, 'list').has('p'),
    ...(input.propertyTable !== undefined ? { datasetProperties: parsePropertyTable(input.propertyTable) } : {}),
  };
}

/**
 * Probes a machine: four read-only commands run concurrently (the usage texts, the version, and `zfs get`
 * without arguments, which fails printing the table of the properties this ZFS has), plus a dry-run receive
 * from an empty stream that tells whether `-u` is accepted (zfs-fuse accepts it without listing it in its usage).
 */
export async function probeCapabilities(connection: NodeConnection, programs = { zfs: 'zfs', zpool: 'zpool' }): Promise<ZfsCapabilities> {
  const [zfsHelp, zpoolHelp, version, recvU, getTable] = await Promise.all([
    connection.exec([programs.zfs, '-?']),
    connection.exec([programs.zpool, '-?']),
    connection.exec([programs.zfs, 'version']),
    // Dry run (-n) from an empty stream into a pool nobody has: it can only fail, by option or by stream.
    connection.exec([programs.zfs, 'receive', '-n', '-u', 'bdr-capability-probe-nonexistent/x']),
    connection.exec([programs.zfs, 'get']),
  ]);
  const propertyTable = getTable.stdout + getTable.stderr;
  // A table without the properties every ZFS has is not one: the optional ones stay unknown (not forced).
  const tableRead = parsePropertyTable(propertyTable).includes('canmount');
  const zfsUsage = zfsHelp.stdout + zfsHelp.stderr;
  if (!/send/.test(zfsUsage)) {
    throw new Error(`${connection.description}: \`zfs -?\` printed no usage text; is ZFS installed? (${zfsUsage.trim().slice(0, 200)})`);
  }
  const versionLine = version.code === 0 ? version.stdout.trim().split('\n')[0] : undefined;
  return capabilitiesFromUsage({
    zfsUsage,
    zpoolUsage: zpoolHelp.stdout + zpoolHelp.stderr,
    version: versionLine,
    receiveNoMountAccepted: !/invalid option/.test(recvU.stderr),
    ...(tableRead ? { propertyTable } : {}),
  });
}
