import { assertName } from '../api/names.ts';
import type { ZfsCapabilities } from './capabilities.ts';
import { ZfsError } from './errors.ts';
import type { Inventory } from './inventory.ts';
import type { CommandOptions, ZfsMachine } from './machine.ts';
import { originInside, RECEIVED_MARK, replicaFix, replicaPolicy, type ReplicaPolicy } from './replica-policy.ts';
import { assertHoldTag } from './validate.ts';

/**
 * The operator's side of a replica's safety, over its own connection to the storage machine (never the
 * vector key): the properties that keep received file systems inert (zfs/replica-policy.ts; the reasons are in
 * nodes/guard.ts's header), and the quota that keeps one vector from filling a shared pool.
 */

export interface ReplicaPropertyFix {
  dataset: string;
  property: string;
  /** The effective value found, and where it came from (received, inherited, default…). */
  was: string;
  source: string;
  now: string;
}

/** A file system below a replica whose origin lies outside it: made by a clone stream naming a foreign snapshot. */
export interface ForeignClone {
  dataset: string;
  /** The snapshot it was cloned from (it pins that snapshot while it exists). */
  origin: string;
  destroyed: boolean;
  /** Why `zfs destroy -r` failed, when it did. */
  error?: string;
}

export interface ReplicaCheck {
  /** Every file system and volume at or below the dataset, in ZFS's order. */
  checked: string[];
  fixed: ReplicaPropertyFix[];
  foreignClones: ForeignClone[];
  /** File systems given RECEIVED_MARK (`receivedMark`). */
  marked: string[];
}

export interface EnforceOptions extends CommandOptions {
  /**
   * A receive that bypassed the guard (local pipe, Relay) marks what it made as the guard would: every file system
   * at or below `under` (at or below the checked dataset) without a local RECEIVED_MARK gets `tag`.
   */
  receivedMark?: { under: string; tag: string };
}

/** The forced set for the machine behind `capabilities` (its probed property table). */
export function replicaPolicyFor(capabilities: Pick<ZfsCapabilities, 'datasetProperties'>): ReplicaPolicy {
  return replicaPolicy(capabilities.datasetProperties);
}

/**
 * Makes every file system (and volume) at or below `dataset` inert as the guard does, over the operator's own
 * connection: the machine's forced properties as local values (local beats received, so no later stream can
 * change them), set where they are not; file systems cloned from a snapshot outside `dataset` destroyed
 * (`zfs destroy -r`, never `dataset` itself) and reported; with `receivedMark`, the ownership mark. Run after
 * every sync that sent a stream (a guard killed by SIGKILL, a receive that bypassed the guard, a hand edit) and
 * whenever a listing shows a value wrong (`replicaPropertiesSettled`). Costs one `zfs get -r` listing, plus
 * one `zfs set` per wrong value (zfs-fuse sets one property at a time). Throws a ZfsError naming what could not be
 * set once it has set everything else.
 */
export async function enforceReplicaProperties(zfs: ZfsMachine, dataset: string, options: EnforceOptions = {}): Promise<ReplicaCheck> {
  assertName('dataset', dataset);
  const { receivedMark, ...command } = options;
  if (receivedMark) {
    assertName('dataset', receivedMark.under);
    if (!atOrBelow(receivedMark.under, dataset)) throw new RangeError(`${receivedMark.under} is not at or below ${dataset}`);
    assertHoldTag(receivedMark.tag);
  }
  const caps = await zfs.capabilities();
  const policy = replicaPolicyFor(caps);
  const types = caps.getTypeFilter ? ['-t', 'filesystem,volume'] : [];
  const listed = ['origin', ...policy.properties, RECEIVED_MARK].join(',');
  const listing = await zfs.run(['zfs', 'get', '-H', '-r', ...types, '-o', 'name,property,value,source', listed, dataset], command);

  // The listing is read as untrusted text: a received string property may carry a newline and so forge a line.
  // Each line is judged on its own (a forged line can add work, never hide a real line), only names at or below
  // the validated dataset are acted on (they reach argv arrays, never a shell), and a destroy is preceded by a
  // query of that one dataset's origin, which no stream can forge.
  const lines: { name: string; property: string; value: string; source: string }[] = [];
  const checked: string[] = [];
  for (const line of listing.stdout.split('\n')) {
    const [name = '', property = '', value = '', ...rest] = line.split('\t');
    if (!atOrBelow(name, dataset) || /[@#]/.test(name)) continue;
    lines.push({ name, property, value, source: rest.join('\t') });
    if (!checked.includes(name)) checked.push(name);
  }

  // canmount everywhere first: a `zfs set` of a mount-related property (mountpoint, sharenfs, zoned…) on a
  // file system, or on a parent it inherits from, mounts it when it may mount (canmount=on) and is shared.
  const wrong = new Map<string, ReplicaPropertyFix>();
  for (const phase of ['canmount', 'rest'] as const) {
    for (const { name, property, value, source } of lines) {
      if ((property === 'canmount') !== (phase === 'canmount')) continue;
      const now = replicaFix(policy, property, value, source);
      const key = `${name}\t${property}`;
      if (now !== undefined && !wrong.has(key)) wrong.set(key, { dataset: name, property, was: value, source, now });
    }
  }
  // A set that fails (a forged line names a dataset that does not exist) stops none of the others; the failures
  // are thrown once everything else is done.
  const failures: string[] = [];
  const set = async (assignment: string, name: string): Promise<boolean> => {
    try {
      await zfs.run(['zfs', 'set', assignment, name], command);
      return true;
    } catch (error) {
      if (!(error instanceof ZfsError)) throw error;
      failures.push(error.message);
      return false;
    }
  };
  const fixed: ReplicaPropertyFix[] = [];
  for (const fix of wrong.values()) if (await set(`${fix.property}=${fix.now}`, fix.dataset)) fixed.push(fix);

  const marked: string[] = [];
  if (receivedMark) {
    for (const { name, property, source } of lines) {
      if (property !== RECEIVED_MARK || source === 'local' || !atOrBelow(name, receivedMark.under) || marked.includes(name)) continue;
      if (await set(`${RECEIVED_MARK}=${receivedMark.tag}`, name)) marked.push(name);
    }
  }

  // Deepest first, so a clone inside another is gone before its parent's `destroy -r` would name it.
  const suspects = [...new Set(lines.filter((l) => l.property === 'origin' && !originInside(l.value, dataset)).map((l) => l.name))].reverse();
  const foreignClones: ForeignClone[] = [];
  for (const name of suspects) {
    if (foreignClones.some((c) => c.destroyed && atOrBelow(name, c.dataset))) continue;
    const got = await zfs.run(['zfs', 'get', '-H', '-o', 'value', 'origin', name], command).catch((error: unknown) => {
      if (error instanceof ZfsError && error.kind === 'notFound') return undefined;
      throw error;
    });
    const origin = got?.stdout.trim() ?? '-';
    if (originInside(origin, dataset)) continue;
    if (name === dataset) {
      foreignClones.push({ dataset: name, origin, destroyed: false, error: 'the checked dataset itself is never destroyed' });
      continue;
    }
    try {
      await zfs.run(['zfs', 'destroy', '-r', name], command);
      foreignClones.push({ dataset: name, origin, destroyed: true });
    } catch (error) {
      if (!(error instanceof ZfsError)) throw error;
      foreignClones.push({ dataset: name, origin, destroyed: false, error: error.message });
    }
  }
  if (failures.length > 0) {
    throw new ZfsError('failed', `${dataset}: could not make everything inert (fixed ${fixed.length} value(s)): ${failures.join('; ')}`);
  }
  return { checked, fixed, foreignClones: foreignClones.reverse(), marked };
}

/**
 * Whether a listing (`ZfsMachine.inventory` with `properties: replicaPolicyFor(capabilities).properties`) shows
 * every file system and volume at or below `dataset` already inert by the same test `enforceReplicaProperties`
 * applies. The policy is the one for `capabilities`; omitted, the one of the optional properties the listing
 * carries (a listing taken as above carries exactly the machine's), the properties every ZFS has being required
 * in any case. False when the dataset is not in the listing, or the listing lacks a property: then only the
 * re-check can tell. Foreign clones are not judged here (a run without a stream cannot have made one).
 */
export function replicaPropertiesSettled(inventory: Inventory, dataset: string, capabilities?: Pick<ZfsCapabilities, 'datasetProperties'>): boolean {
  const below = inventory.datasets.filter((d) => (d.type === 'filesystem' || d.type === 'volume') && atOrBelow(d.name, dataset));
  if (!below.some((d) => d.name === dataset)) return false;
  const policy = capabilities ? replicaPolicyFor(capabilities) : replicaPolicy([...new Set(below.flatMap((d) => Object.keys(d.properties ?? {})))]);
  return below.every((d) =>
    policy.properties.every((property) => {
      const got = d.properties?.[property];
      return replicaFix(policy, property, got?.value ?? '', got?.source ?? '') === undefined;
    }),
  );
}

function atOrBelow(name: string, dataset: string): boolean {
  return name === dataset || name.startsWith(`${dataset}/`);
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
