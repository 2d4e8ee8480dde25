/**
 * Where a vector's pieces live on machines and how bdr recognises them: the owner tags of its authorized_keys
 * lines, the Machine's paths (spec.paths, with the schema's defaults), the key directory on the primary, and
 * the exact entry and files a live vector should have. Pure; shared by the Vector controller and the sweep.
 */
import type { Machine } from '../api/types.ts';
import { DEFAULT_AUTHORIZED_KEYS, renderEntry } from '../nodes/authorized-keys.ts';
import { DEFAULT_GUARD_PATH, vectorHoldTag, vectorKeyEntry } from '../nodes/guard.ts';
import type { VectorIdentityInput } from '../nodes/identity.ts';
import { ZfsError } from '../zfs/errors.ts';
import type { ZfsMachine } from '../zfs/machine.ts';

export const DEFAULT_VECTOR_KEYS_DIR = '/var/lib/bdr/vectors';

export interface MachinePaths {
  authorizedKeys: string;
  guard: string;
  vectorKeys: string;
}

export function machinePaths(machine: Machine): MachinePaths {
  const p = machine.spec.paths;
  return {
    authorizedKeys: p?.authorizedKeys ?? DEFAULT_AUTHORIZED_KEYS,
    guard: p?.guard ?? DEFAULT_GUARD_PATH,
    vectorKeys: p?.vectorKeys ?? DEFAULT_VECTOR_KEYS_DIR,
  };
}

/** The tag of the vector's authorized key, and of the incoming one while a rotation overlaps both. */
export function ownerTags(vectorKey: string): { current: string; next: string } {
  return { current: `bdr:vector=${vectorKey}`, next: `bdr:vector-next=${vectorKey}` };
}

/** The vector ("namespace/name") an owner tag belongs to, when it is one of the two vector tags. */
export function vectorOfOwner(owner: string): { vector: string; next: boolean } | undefined {
  const m = /^bdr:vector(-next)?=(.+)$/.exec(owner);
  return m ? { vector: m[2] ?? '', next: m[1] !== undefined } : undefined;
}

export function identityDir(primary: Machine, vectorKey: string): string {
  return `${machinePaths(primary).vectorKeys.replace(/\/+$/, '')}/${vectorKey}`;
}

/**
 * The line a vector's key has in its storage machine's authorized_keys. The incoming key of a rotation has
 * its own tag but the vector's one hold tag, so holds placed with the old key are released with the new.
 */
export function vectorEntry(storage: Machine, vectorKey: string, publicKey: string, replica: string, next = false) {
  const owners = ownerTags(vectorKey);
  return vectorKeyEntry({
    publicKey,
    owner: next ? owners.next : owners.current,
    prefix: replica,
    guardPath: machinePaths(storage).guard,
    holdTag: vectorHoldTag(owners.current),
  });
}

export function vectorLine(storage: Machine, vectorKey: string, publicKey: string, replica: string): string {
  return renderEntry(vectorEntry(storage, vectorKey, publicKey, replica));
}

export class StorageAddressError extends Error {}

/** What the primary needs to reach `storage` as this vector: its directory, key, and the pinned host. */
export function identityInput(primary: Machine, storage: Machine, vectorKey: string, privateKey: string): VectorIdentityInput {
  const conn = storage.spec.connection;
  if (conn.type !== 'ssh' || !conn.host || !conn.hostKey) {
    throw new StorageAddressError(`Machine ${storage.metadata.name} has no SSH host and pinned host key for the primary to reach it`);
  }
  return { dir: identityDir(primary, vectorKey), privateKey, host: conn.host, port: conn.port ?? 22, hostKey: conn.hostKey };
}

/**
 * Makes `dataset` and its missing ancestors below the pool, each with canmount=off (never mounted, so no
 * receive below it can mount anything either). One listing when it exists already.
 */
export async function ensureContainer(zfs: ZfsMachine, dataset: string): Promise<boolean> {
  const parts = dataset.split('/');
  const missing: string[] = [];
  for (let i = parts.length; i > 1; i--) {
    const name = parts.slice(0, i).join('/');
    const exists = await zfs.run(['zfs', 'list', '-H', '-o', 'name', name]).then(
      () => true,
      (err: unknown) => {
        if (err instanceof ZfsError && err.kind === 'notFound') return false;
        throw err;
      },
    );
    if (exists) break;
    missing.unshift(name);
  }
  for (const name of missing) await zfs.createDataset(name, { properties: { canmount: 'off' } });
  return missing.length > 0;
}
