import { assertName } from '../api/names.ts';
import { REPLICA_ALSO_SAFE as ALSO_SAFE, REPLICA_PROPERTIES } from '../nodes/guard.ts';
import { ZfsError } from './errors.ts';
import type { Inventory } from './inventory.ts';
import type { CommandOptions, ZfsMachine } from './machine.ts';

/**
 * The operator's side of a replica's safety, over its own connection to the storage machine (never the
 * vector key): the properties that keep received file systems inert, and the quota that keeps one vector
 * from filling a shared pool.
 */

export interface ReplicaPropertyFix {
  dataset: string;
  property: string;
  /** The effective value found, and where it came from (received, inherited, default…). */
  was: string;
  source: string;
  now: string;
}

/**
 * Checks every file system at or below `dataset` for REPLICA_PROPERTIES as local values (local beats
 * received, so no later stream can change them) and sets those that are not. Run by a sync whose listing
 * shows a value wrong (`replicaPropertiesSettled`) or that received without the guard or a full stream: the guard
 * does the same after each receive, but a receive interrupted between its end and the guard's settings, a
 * hand edit, or a guard that could not finish is caught here. One listing plus one `zfs get` per file
 * system when nothing is wrong; one `zfs set` per wrong value (zfs-fuse sets one property at a time).
 */
export async function enforceReplicaProperties(
  zfs: ZfsMachine,
  dataset: string,
  options: CommandOptions = {},
): Promise<{ checked: string[]; fixed: ReplicaPropertyFix[] }> {
  assertName('dataset', dataset);
  const properties = Object.keys(REPLICA_PROPERTIES);
  const listing = await zfs.run(['zfs', 'list', '-H', '-r', '-t', 'filesystem', '-o', 'name', dataset], options);
  const checked = listing.stdout.split('\n').filter((l) => l !== '');
  const fixed: ReplicaPropertyFix[] = [];
  for (const name of checked) {
    // Names come from ZFS itself, below a validated dataset; argv arrays never reach a shell here.
    const got = await zfs.run(['zfs', 'get', '-H', '-o', 'property,value,source', properties.join(','), name], options);
    const current = new Map(got.stdout.split('\n').filter(Boolean).map((l) => {
      const [property = '', value = '', source = ''] = l.split('\t');
      return [property, { value, source }] as const;
    }));
    for (const property of properties) {
      const wanted = REPLICA_PROPERTIES[property] ?? '';
      const { value = '', source = '' } = current.get(property) ?? {};
      if (source === 'local' && (value === wanted || (ALSO_SAFE[property] ?? []).includes(value))) continue;
      await zfs.run(['zfs', 'set', `${property}=${wanted}`, name], options);
      fixed.push({ dataset: name, property, was: value, source, now: wanted });
    }
  }
  return { checked, fixed };
}

/**
 * Whether a listing (`ZfsMachine.inventory` with `properties: Object.keys(REPLICA_PROPERTIES)`) shows every
 * file system at or below `dataset` already inert: each of REPLICA_PROPERTIES a local value that is the wanted
 * one or also safe, exactly the test `enforceReplicaProperties` applies. False when the dataset is not in the
 * listing, or the listing lacks the properties: then only the re-check can tell.
 */
export function replicaPropertiesSettled(inventory: Inventory, dataset: string): boolean {
  const below = inventory.datasets.filter((d) => d.type === 'filesystem' && (d.name === dataset || d.name.startsWith(`${dataset}/`)));
  if (!below.some((d) => d.name === dataset)) return false;
  return below.every((d) =>
    Object.entries(REPLICA_PROPERTIES).every(([property, wanted]) => {
      const got = d.properties?.[property];
      return got?.source === 'local' && (got.value === wanted || (ALSO_SAFE[property] ?? []).includes(got.value));
    }),
  );
}

export interface ReplicaSpace {
  /** The dataset's quota in bytes; undefined when it has none. */
  quota: number | undefined;
  used: number;
  available: number;
}

/** Quota, used and available bytes of a dataset (`zfs get -Hp`, exact on both ZFS implementations). */
export async function replicaSpace(zfs: ZfsMachine, dataset: string, options: CommandOptions = {}): Promise<ReplicaSpace> {
  assertName('dataset', dataset);
  const r = await zfs.run(['zfs', 'get', '-H', '-p', '-o', 'property,value', 'quota,used,available', dataset], options);
  const values = new Map(r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t') as [string, string]));
  const number = (property: string): number => {
    const v = values.get(property);
    if (v === undefined || !/^\d+$/.test(v)) throw new ZfsError('failed', `${dataset}: unexpected ${property} ${JSON.stringify(v)}`);
    return Number(v);
  };
  const quota = number('quota');
  return { quota: quota === 0 ? undefined : quota, used: number('used'), available: number('available') };
}

/**
 * Sets the quota of the vector's dataset (the guard's prefix: receives go below it, never into it, so
 * no stream can change it) to `bytes`, or removes it with `undefined`. Only writes when it differs.
 * Returns whether it changed. A receive that reaches it fails with DestinationFull.
 */
export async function ensureReplicaQuota(
  zfs: ZfsMachine,
  dataset: string,
  bytes: number | undefined,
  options: CommandOptions = {},
): Promise<boolean> {
  if (bytes !== undefined && (!Number.isSafeInteger(bytes) || bytes <= 0)) throw new RangeError(`invalid quota ${bytes}: a positive number of bytes`);
  const { quota } = await replicaSpace(zfs, dataset, options);
  if (quota === bytes) return false;
  await zfs.run(['zfs', 'set', `quota=${bytes ?? 'none'}`, dataset], options);
  return true;
}
