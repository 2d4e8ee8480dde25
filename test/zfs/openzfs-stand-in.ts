import type { ExecResult, NodeConnection, RunningCommand } from '../../nodes/connection.ts';
import { capabilitiesFromUsage, type ZfsCapabilities } from '../../zfs/index.ts';

/**
 * A connection that answers some zfs commands as OpenZFS would (its words recorded in test/openzfs-vm/), for the
 * batch paths zfs-fuse lacks; each test's subclass says how `exec` answers. Every command is recorded.
 */
export abstract class OpenZfsStandIn implements NodeConnection {
  readonly description = 'openzfs-stand-in';
  readonly commands: string[] = [];
  async exec(argv: readonly string[]): Promise<ExecResult> {
    this.commands.push(argv.join(' '));
    return this.answer(argv);
  }
  protected abstract answer(argv: readonly string[]): ExecResult;
  spawn(): RunningCommand {
    throw new Error('not used');
  }
  async close(): Promise<void> {}
}

/** OpenZFS 2.2.2's batch capabilities (the rest as an empty probe leaves them). */
export const OPENZFS_BATCHES: ZfsCapabilities = {
  ...capabilitiesFromUsage({ zfsUsage: '', zpoolUsage: '', version: 'zfs-2.2.2', receiveNoMountAccepted: true }),
  batchDestroy: true,
  multiSnapshot: true,
};
