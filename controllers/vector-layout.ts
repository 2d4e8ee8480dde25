/**
 * Where a vector's pieces live on machines and how bdr recognises them: the owner tags of its authorized_keys
 * lines, the Machine's paths (spec.paths, with the schema's defaults), the key directory on the primary, and
 * the exact entry and files a live vector should have. Pure; shared by the Vector controller and the sweep.
 */
import type { Dataset, Machine, Vector } from '../api/types.ts';
import { DEFAULT_AUTHORIZED_KEYS, renderEntry } from '../nodes/authorized-keys.ts';
import { DEFAULT_GUARD_PATH, vectorHoldTag, vectorKeyEntry } from '../nodes/guard.ts';
import type { VectorIdentityInput } from '../nodes/identity.ts';
import { containerVerdict, OWNER_MARK, ownerMarkValue, RECEIVED_MARK, type MarkValue, type OwnedFileSystem } from '../planning/replica-ownership.ts';
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

/** The sshd from= patterns a vector key held by `primary` is limited to: its spec.outboundAddresses. */
export function outboundOf(primary: Machine | undefined): readonly string[] {
  return primary?.spec.outboundAddresses ?? [];
}

/**
 * The line a vector's key has in its storage machine's authorized_keys. The incoming key of a rotation has
 * its own tag but the vector's one hold tag, so holds placed with the old key are released with the new.
 * `from` (the primary's outboundAddresses) adds sshd's from= option: the key is refused from elsewhere. `leaf`
 * is the one file system below the vector's dataset the key may receive into.
 */
export function vectorEntry(storage: Machine, vectorKey: string, publicKey: string, replica: string, leaf: string, next = false, from: readonly string[] = []) {
  const owners = ownerTags(vectorKey);
  return vectorKeyEntry({
    publicKey,
    owner: next ? owners.next : owners.current,
    prefix: replica,
    leaf,
    guardPath: machinePaths(storage).guard,
    holdTag: vectorHoldTag(owners.current),
    from,
  });
}

export function vectorLine(storage: Machine, vectorKey: string, publicKey: string, replica: string, leaf: string, from: readonly string[] = []): string {
  return renderEntry(vectorEntry(storage, vectorKey, publicKey, replica, leaf, false, from));
}

/** The dataset a vector sends from, and its last component (the replica is `<vector dataset>/<leaf>`). */
export type VectorSourcePath = { dataset: string; leaf: string; problem?: undefined } | { problem: string; dataset?: undefined; leaf?: undefined };

/**
 * Where a vector's stream comes from: its Dataset's name, or for a chained vector (source.vectorRef) the
 * replica its source vector keeps (`<its dataset>/<leaf>`, the leaf of the chain's first Dataset).
 */
export function vectorSourcePath(
  vector: Vector,
  datasets: (key: string) => Dataset | undefined,
  vectors: (key: string) => Vector | undefined,
  depth = 0,
): VectorSourcePath {
  const ns = vector.metadata.namespace ?? 'default';
  const src = vector.spec.source;
  if (src.datasetRef) {
    const ds = datasets(`${ns}/${src.datasetRef.name}`);
    if (!ds) return { problem: `Dataset ${ns}/${src.datasetRef.name} does not exist` };
    return { dataset: ds.spec.name, leaf: ds.spec.name.split('/').at(-1) ?? ds.spec.name };
  }
  if (!src.vectorRef || depth > 8) return { problem: 'spec.source names neither a Dataset nor a Vector (or the chain is too long)' };
  const upstream = vectors(`${ns}/${src.vectorRef.name}`);
  if (!upstream) return { problem: `Vector ${ns}/${src.vectorRef.name} does not exist` };
  const up = vectorSourcePath(upstream, datasets, vectors, depth + 1);
  if (up.problem !== undefined) return up;
  const replica = upstream.status?.pairing?.dataset;
  if (!replica) return { problem: `source Vector ${ns}/${src.vectorRef.name} is not paired yet` };
  return { dataset: `${replica}/${up.leaf}`, leaf: up.leaf };
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
 * receive below it can mount anything either). One listing when it exists already. `properties` go on
 * `dataset` itself (the ownership mark) when it is created.
 */
export async function ensureContainer(zfs: ZfsMachine, dataset: string, properties: Readonly<Record<string, string>> = {}): Promise<boolean> {
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
  for (const name of missing) await zfs.createDataset(name, { properties: { canmount: 'off', ...(name === dataset ? properties : {}) } });
  return missing.length > 0;
}

export class NotOwnedError extends Error {}

/** The owner mark of one dataset, or undefined when it does not exist. */
async function ownerMarkOf(zfs: ZfsMachine, dataset: string): Promise<MarkValue | undefined> {
  try {
    const r = await zfs.run(['zfs', 'get', '-H', '-o', 'value,source', OWNER_MARK, dataset]);
    const [value = '', source = ''] = (r.stdout.split('\n')[0] ?? '').split('\t');
    return { value, source };
  } catch (err) {
    if (err instanceof ZfsError && err.kind === 'notFound') return undefined;
    throw err;
  }
}

/**
 * Makes the vector's dataset, marked as the vector's (its uid), or checks that the one there is: bdr sets quotas
 * on, receives into and destroys only datasets it made. An unmarked one is taken only by adoption
 * (planning/replica-ownership.ts), and then marked. Throws NotOwnedError, naming the fix, otherwise.
 */
export async function ensureOwnedContainer(
  zfs: ZfsMachine,
  dataset: string,
  owner: { uid: string; adoptAnnotation: string | undefined; madeBefore: boolean },
): Promise<'created' | 'owned' | 'adopted'> {
  const mark = ownerMarkValue(owner.uid);
  const found = await ownerMarkOf(zfs, dataset);
  const verdict = containerVerdict({ dataset, uid: owner.uid, found: found && { name: dataset, owner: found }, adoptAnnotation: owner.adoptAnnotation, madeBefore: owner.madeBefore });
  switch (verdict.kind) {
    case 'create':
      await ensureContainer(zfs, dataset, { [OWNER_MARK]: mark });
      return 'created';
    case 'owned':
      return 'owned';
    case 'adopt':
      await zfs.run(['zfs', 'set', `${OWNER_MARK}=${mark}`, dataset]);
      return 'adopted';
    case 'refuse':
      throw new NotOwnedError(verdict.message);
  }
}

/** Every file system at or below `dataset` with its ownership and receive marks (one `zfs get -r`). */
export async function listOwnership(zfs: ZfsMachine, dataset: string, signal?: AbortSignal): Promise<OwnedFileSystem[]> {
  const r = await zfs.run(['zfs', 'get', '-H', '-r', '-o', 'name,property,value,source', `type,${OWNER_MARK},${RECEIVED_MARK}`, dataset], signal ? { signal } : {});
  const byName = new Map<string, { type?: string; owner?: MarkValue; received?: MarkValue }>();
  for (const line of r.stdout.split('\n')) {
    const [name = '', property = '', value = '', source = ''] = line.split('\t');
    if (name === '' || name.includes('@')) continue;
    const entry = byName.get(name) ?? {};
    if (property === 'type') entry.type = value;
    else if (property === OWNER_MARK) entry.owner = { value, source };
    else if (property === RECEIVED_MARK) entry.received = { value, source };
    byName.set(name, entry);
  }
  return [...byName].filter(([, e]) => e.type === 'filesystem' || e.type === 'volume').map(([name, e]) => ({ name, ...(e.owner ? { owner: e.owner } : {}), ...(e.received ? { received: e.received } : {}) }));
}
