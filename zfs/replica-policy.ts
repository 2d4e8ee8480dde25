/**
 * What makes a replica inert on a storage machine: the properties forced on every file system (and volume)
 * at or below a vector's dataset, the values that count as safe, and the ownership mark of a receive. The
 * guard (nodes/guard.ts, whose header gives the reason for each property) and the operator's re-check
 * (zfs/replica.ts) both read this one table, so they cannot disagree. Pure data and pure functions: no
 * command runs here, and nothing here imports nodes/.
 */

/**
 * Forced as local values on every ZFS (local beats received, so no later stream can change them). Order
 * matters: canmount first (a `zfs set` of a mount-related property re-mounts a file system that can mount),
 * then mountpoint.
 */
export const REPLICA_PROPERTIES: Readonly<Record<string, string>> = Object.freeze({
  canmount: 'noauto',
  mountpoint: 'none',
  sharenfs: 'off',
  sharesmb: 'off',
  readonly: 'on',
  setuid: 'off',
  exec: 'off',
  devices: 'off',
  reservation: 'none',
  refreservation: 'none',
});

/**
 * Forced as local values where the machine's ZFS has them (its `zfs get` property table lists them; a
 * `zfs get` naming a property it lacks fails as a whole, so the list must be exact).
 */
export const REPLICA_PROPERTIES_WHERE_PRESENT: Readonly<Record<string, string>> = Object.freeze({
  zoned: 'off',
  jailed: 'off',
  overlay: 'off',
  context: 'none',
  fscontext: 'none',
  defcontext: 'none',
  rootcontext: 'none',
});

/**
 * Values that count as safe besides the forced one: an operator-made container is canmount=off; `zfs get -p`
 * (the operator's listings) prints a reservation of none as 0.
 */
export const REPLICA_ALSO_SAFE: Readonly<Record<string, readonly string[]>> = Object.freeze({
  canmount: ['off'],
  reservation: ['0'],
  refreservation: ['0'],
});

/**
 * keylocation is settable only on an encryption root, where it is always a local value: what matters is the
 * value. These values read nothing; any other (a file:// or http(s):// location) is replaced by KEY_LOCATION_FORCED.
 */
export const KEY_LOCATION_SAFE: readonly string[] = Object.freeze(['none', 'prompt', '-']);
export const KEY_LOCATION_FORCED = 'prompt';

/**
 * Forced only as receive options (OpenZFS): `volmode=none` is inherited by volumes inside a replication
 * stream, so they get no device nodes for the kernel and udev to probe. zfs-fuse has no such property.
 */
export const RECEIVE_ONLY_PROPERTIES: Readonly<Record<string, string>> = Object.freeze({ volmode: 'none' });

/**
 * The local user property the guard (and the operator, for receives that bypass the guard) sets on every file
 * system a key's receive made, to the key's hold tag: a received value never counts, so a stream cannot forge it.
 */
export const RECEIVED_MARK = 'dev.bdr:received';

/** The forced set for one machine. */
export interface ReplicaPolicy {
  /** Forced as local values, in the order they are set. */
  readonly local: Readonly<Record<string, string>>;
  /** Whether keylocation is checked (the machine has encryption). */
  readonly keylocation: boolean;
  /** The properties a listing asks for to judge a replica (besides type, origin and RECEIVED_MARK). */
  readonly properties: readonly string[];
}

/**
 * The policy for a machine whose `zfs get` lists `available` (`ZfsCapabilities.datasetProperties`). Without
 * the list (not probed) only what every ZFS has is forced.
 */
export function replicaPolicy(available?: readonly string[]): ReplicaPolicy {
  const has = new Set(available ?? []);
  const local: Record<string, string> = { ...REPLICA_PROPERTIES };
  for (const [property, value] of Object.entries(REPLICA_PROPERTIES_WHERE_PRESENT)) if (has.has(property)) local[property] = value;
  const keylocation = has.has('keylocation');
  return Object.freeze({
    local: Object.freeze(local),
    keylocation,
    properties: Object.freeze([...Object.keys(local), ...(keylocation ? ['keylocation'] : [])]),
  });
}

/**
 * The value to set so that `property` of one dataset is inert, or undefined when it already is. `source` is
 * ZFS's source column as printed ("local", "received", "default", …). A property that does not exist for the
 * dataset's type (canmount of a volume) is printed as "-" from "-": nothing to set. Judged line by line, so a
 * value carrying a forged listing line (a received string property may hold a newline) can add a line but
 * never hide a real one.
 */
export function replicaFix(policy: ReplicaPolicy, property: string, value: string, source: string): string | undefined {
  if (value === '-' && source === '-') return undefined;
  if (property === 'keylocation') return policy.keylocation && !KEY_LOCATION_SAFE.includes(value) ? KEY_LOCATION_FORCED : undefined;
  const wanted = policy.local[property];
  if (wanted === undefined) return undefined;
  if (source === 'local' && (value === wanted || (REPLICA_ALSO_SAFE[property] ?? []).includes(value))) return undefined;
  return wanted;
}

/** Whether `origin` (a clone's origin snapshot, "-" for none) lies at or below `prefix`. */
export function originInside(origin: string, prefix: string): boolean {
  return origin === '-' || origin === '' || origin.startsWith(`${prefix}@`) || origin.startsWith(`${prefix}/`);
}

/**
 * The native property table that `zfs get` without arguments prints (OpenZFS and zfs-fuse alike, to stderr):
 * "\t<name>  YES|NO  YES|NO  <values>" lines. Returns the property names; `userused@…`-style rows are left out.
 */
export function parsePropertyTable(text: string): string[] {
  const names: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\t([a-z][a-z0-9_]*)\s+(?:YES|NO)\s+(?:YES|NO)(?:\s|$)/.exec(line);
    if (m?.[1] !== undefined) names.push(m[1]);
  }
  return names;
}
