import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nameProblem } from '../../api/names.ts';
import type { ExecResult, NodeConnection, RunningCommand } from '../../nodes/connection.ts';
import { commandLine } from '../../nodes/quote.ts';
import { capabilitiesFromUsage, ZfsMachine, type ZfsCapabilities } from '../../zfs/index.ts';

/**
 * Names with shell metacharacters must be refused before any command exists. The connection below only
 * records what it is asked to run: the property is that it is never asked.
 */
class RecordingConnection implements NodeConnection {
  readonly description = 'recording';
  readonly commands: string[][] = [];
  async exec(argv: readonly string[]): Promise<ExecResult> {
    this.commands.push([...argv]);
    return { stdout: '', stderr: '', code: 0 };
  }
  spawn(argv: readonly string[]): RunningCommand {
    this.commands.push([...argv]);
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}

// OpenZFS-like capabilities, so that no code path is skipped for lack of a feature.
const caps: ZfsCapabilities = {
  ...capabilitiesFromUsage({ zfsUsage: '', zpoolUsage: '', version: 'zfs-2.2.2', receiveNoMountAccepted: true }),
  multiSnapshot: true,
  batchDestroy: true,
  listHolds: true,
  resumeTokens: true,
  receiveResumable: true,
  sendRaw: true,
  bookmarks: true,
  getTypeFilter: true,
};

const META = [...';&|$`\'"\\<>(){}[]*?~!#%^= \t\n\r', '\u0000', '\u00a0', '$(id)', '`id`', '../', ' -rf /', '\n/bin/sh'];
const plain = fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/);
/** A plausible name with at least one metacharacter spliced in somewhere. */
const hostile = fc
  .tuple(plain, fc.constantFrom(...META), plain, fc.constantFrom('', '/', '@'), plain)
  .map(([a, meta, b, sep, c]) => `${a}${meta}${b}${sep}${c}`);
const hostileSnapshot = fc.oneof(
  hostile.map((h) => `pool/${h}@snap`),
  hostile.map((h) => `pool/ds@${h}`),
  hostile,
);

type Call = (zfs: ZfsMachine, bad: string) => Promise<unknown>;
const CALLS: Record<string, Call> = {
  createDataset: (z, bad) => z.createDataset(bad),
  createDatasetProperty: (z, bad) => z.createDataset('pool/ok', { properties: { [bad]: 'x' } }),
  snapshot: (z, bad) => z.snapshot(['pool/ok@a', bad]),
  destroySnapshots: (z, bad) => z.destroySnapshots(['pool/ok@a', bad]),
  holdTag: (z, bad) => z.hold(bad, ['pool/ok@a']),
  holdSnapshot: (z, bad) => z.hold('tag', [bad]),
  release: (z, bad) => z.release('tag', ['pool/ok@a', bad]),
  holds: (z, bad) => z.holds([bad]),
  setUserPropertyName: (z, bad) => z.setUserProperties('pool/ok', { [bad]: 'v' }),
  setUserPropertyOn: (z, bad) => z.setUserProperties(bad, { 'dev.bdr:owner': 'v' }),
  inherit: (z, bad) => z.inheritUserProperty('pool/ok', bad),
  sendSnapshot: (z, bad) => z.sendArgv({ snapshot: bad }),
  sendFrom: (z, bad) => z.sendArgv({ snapshot: 'pool/ok@b', from: bad }),
  sendFromShort: (z, bad) => z.sendArgv({ snapshot: 'pool/ok@b', from: `@${bad}` }),
  receive: (z, bad) => z.receiveArgv(bad),
  resumeToken: (z, bad) => z.resumeToken(bad),
  sendResume: (z, bad) => z.sendResume(bad),
  cloneFrom: (z, bad) => z.clone(bad, 'pool/clone'),
  cloneTo: (z, bad) => z.clone('pool/ok@a', bad),
  rollback: (z, bad) => z.rollback(bad),
  inventoryRoot: (z, bad) => z.inventory({ roots: [bad] }),
  inventoryProperty: (z, bad) => z.inventory({ userProperties: [bad] }),
};

describe('names with shell metacharacters never reach a command line', () => {
  for (const [method, call] of Object.entries(CALLS)) {
    it(method, async () => {
      await fc.assert(
        fc.asyncProperty(hostileSnapshot, async (bad) => {
          const connection = new RecordingConnection();
          const zfs = new ZfsMachine(connection, { capabilities: caps });
          await expect(call(zfs, bad)).rejects.toThrow(/invalid|malformed/i);
          expect(connection.commands).toEqual([]);
        }),
        { numRuns: 150 },
      );
    });
  }

  it('accepts a bookmark of the same dataset as incremental base, where bookmarks exist', async () => {
    const zfs = new ZfsMachine(new RecordingConnection(), { capabilities: caps });
    expect(await zfs.sendArgv({ snapshot: 'pool/ok@b', from: 'pool/ok#cursor' })).toEqual(['zfs', 'send', '-i', 'pool/ok#cursor', 'pool/ok@b']);
    await expect(zfs.sendArgv({ snapshot: 'pool/ok@b', from: 'pool/other#cursor' })).rejects.toMatchObject({ kind: 'invalidName' });
    const legacy = new ZfsMachine(new RecordingConnection(), { capabilities: { ...caps, bookmarks: false } });
    await expect(legacy.sendArgv({ snapshot: 'pool/ok@b', from: 'pool/ok#cursor' })).rejects.toMatchObject({ kind: 'unsupported' });
  });

  it('validated names are plain words on the command line (nothing for a shell to interpret)', async () => {
    const component = fc.stringMatching(/^[A-Za-z0-9_:][A-Za-z0-9_:.-]{0,12}$/).filter((c) => !c.includes('..') && !c.endsWith('.'));
    const dataset = fc.tuple(fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/), fc.array(component, { maxLength: 3 })).map(([p, cs]) => [p, ...cs].join('/'));
    await fc.assert(
      fc.asyncProperty(dataset, component, component, async (ds, snap, tag) => {
        fc.pre(nameProblem('dataset', ds) === undefined && nameProblem('snapshotShortName', snap) === undefined);
        const connection = new RecordingConnection();
        const zfs = new ZfsMachine(connection, { capabilities: caps });
        await zfs.snapshot([`${ds}@${snap}`]);
        await zfs.hold(tag, [`${ds}@${snap}`]);
        await zfs.destroySnapshots([`${ds}@${snap}`]);
        await zfs.rollback(`${ds}@${snap}`, { destroyNewer: true });
        const argvs = [...connection.commands, await zfs.sendArgv({ snapshot: `${ds}@${snap}`, from: `@${snap}` }), await zfs.receiveArgv(ds)];
        for (const argv of argvs) {
          expect(commandLine(argv)).toBe(argv.join(' '));
          for (const arg of argv.slice(1)) expect(arg.startsWith('-') ? /^-[A-Za-z]+$/.test(arg) : true).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
