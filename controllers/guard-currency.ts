/**
 * The guard on a storage machine must be this bdr's own version before a stream goes through it: an upgrade can
 * give the sync new words (the receive's `+hold`/`+release`), which an older guard refuses. Left to the sweep
 * alone, every vector's first run after an upgrade could fail once against the old guard. So the first stream into
 * a machine over a connection makes sure of it (one read), and the pairing and the sweep, which look anyway, record
 * what they found: in steady state the sync runs no command for this. The script is generated for the machine's
 * probed capabilities (receive options, `get -t`, and exactly the protective properties its ZFS has), so the
 * same bdr version can write different scripts to different machines.
 */
import { guardOptions, guardScript, installGuard } from '../nodes/guard.ts';
import { readRemoteFile } from '../nodes/remote-file.ts';
import type { MachineHandle } from './machine-connections.ts';

/** What this process knows each connection's machine holds at a guard path (the script last read or written there). */
const known = new WeakMap<MachineHandle, Map<string, string>>();

function knownOn(handle: MachineHandle): Map<string, string> {
  let paths = known.get(handle);
  if (!paths) known.set(handle, (paths = new Map()));
  return paths;
}

export interface EnsureGuardOptions {
  /** Read the machine even when this process already knows the guard there (the sweep's drift check). */
  recheck?: boolean;
}

/**
 * Makes the guard at `path` on the handle's machine this version (mode 755), reading it first. Resolves to whether
 * it was (re)written. Without `recheck`, a guard this process already read or wrote over this connection is
 * trusted: no command runs.
 */
export async function ensureGuard(handle: MachineHandle, path: string, options: EnsureGuardOptions = {}): Promise<boolean> {
  const forMachine = guardOptions(await handle.zfs.capabilities());
  const script = guardScript(forMachine);
  const paths = knownOn(handle);
  if (!options.recheck && paths.get(path) === script) return false;
  const found = await readRemoteFile(handle.connection, path);
  const current = found.exists && found.content === script && found.mode === '755';
  if (!current) await installGuard(handle.connection, { path, ...forMachine });
  paths.set(path, script);
  return !current;
}

/** Writes this version of the guard at `path` on the handle's machine and records it (the pairing's install). */
export async function installGuardOn(handle: MachineHandle, path: string): Promise<void> {
  const forMachine = guardOptions(await handle.zfs.capabilities());
  await installGuard(handle.connection, { path, ...forMachine });
  knownOn(handle).set(path, guardScript(forMachine));
}
