/**
 * Inventory of one machine: every dataset, snapshot (and bookmark, where they exist) with the numbers
 * planning needs, and every pool's capacity. Parsing is pure and separate from running the commands.
 */

export type DatasetType = 'filesystem' | 'volume' | 'snapshot' | 'bookmark';

export interface UserProperty {
  value: string;
  /** "local", "received", or "inherited" (from `inheritedFrom`). */
  source: 'local' | 'received' | 'inherited' | 'other';
  inheritedFrom?: string;
}

export interface DatasetEntry {
  name: string;
  type: DatasetType;
  /** Creation time, epoch seconds. */
  creation: number;
  /** 64-bit GUID as a decimal string (it does not fit a JS number). */
  guid: string;
  /** Bytes. */
  used: number;
  referenced: number;
  /** Transaction group of creation: orders snapshots created within the same second. */
  createtxg: number | undefined;
  /** Number of user holds (snapshots only; 0 elsewhere). */
  userrefs: number;
  /** The requested user properties that are set on (or inherited by) this dataset. */
  userProperties: Record<string, UserProperty>;
  /**
   * Native properties asked for besides INVENTORY_PROPERTIES (e.g. a replica's `readonly`), with ZFS's source
   * column as printed ("local", "received", "default", "inherited from …", "-"); absent when none were asked for.
   */
  properties?: Record<string, { value: string; source: string }>;
}

export interface PoolEntry {
  name: string;
  size: number;
  allocated: number;
  free: number;
  health: string;
  /** False when the machine only prints rounded sizes ("250M", zfs-fuse); the bytes are then approximate. */
  exact: boolean;
}

export interface Inventory {
  /** Filesystems and volumes, in ZFS's order (parents before children). */
  datasets: DatasetEntry[];
  /** Snapshots, ordered by dataset, then creation (createtxg when known). */
  snapshots: DatasetEntry[];
  bookmarks: DatasetEntry[];
  pools: PoolEntry[];
  /** When the listing was taken (epoch ms, operator clock). */
  takenAt: number;
}

/** Properties the inventory asks ZFS for, besides the user properties. */
export const INVENTORY_PROPERTIES = ['type', 'creation', 'guid', 'used', 'referenced', 'createtxg', 'userrefs'] as const;

/** bdr's own user properties, read by default. */
export const BDR_USER_PROPERTIES = ['dev.bdr:owner', 'dev.bdr:dataset', 'dev.bdr:vector'] as const;

export class InventoryParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InventoryParseError';
  }
}

/**
 * Parses `zfs get -H -p -o name,property,value,source <props> …` output: one line per dataset and property,
 * tab-separated. Lines of datasets that vanish mid-listing are simply absent; that is not an error.
 */
export function parseZfsGet(output: string, userProperties: readonly string[], nativeProperties: readonly string[] = []): Omit<Inventory, 'pools' | 'takenAt'> {
  const byName = new Map<string, Partial<DatasetEntry> & { name: string; userProperties: Record<string, UserProperty> }>();
  const order: string[] = [];
  const wanted = new Set(userProperties);
  const native = new Set(nativeProperties);
  for (const line of output.split('\n')) {
    if (line === '') continue;
    const parts = line.split('\t');
    if (parts.length < 4) throw new InventoryParseError(`unexpected zfs get line: ${JSON.stringify(line.slice(0, 200))}`);
    const [name = '', property = '', value = '', ...sourceParts] = parts;
    const source = sourceParts.join('\t');
    let entry = byName.get(name);
    if (!entry) {
      entry = { name, userProperties: {} };
      byName.set(name, entry);
      order.push(name);
    }
    switch (property) {
      case 'type':
        entry.type = value as DatasetType;
        break;
      case 'creation':
        entry.creation = integer(value, name, property);
        break;
      case 'guid':
        if (!/^\d+$/.test(value)) throw new InventoryParseError(`${name}: guid ${JSON.stringify(value)} is not a number`);
        entry.guid = value;
        break;
      // OpenZFS prints "-" for a bookmark's used (it holds no blocks of its own; 2.2.2 seen), so it counts as 0.
      case 'used':
        entry.used = value === '-' && name.includes('#') ? 0 : integer(value, name, property);
        break;
      case 'referenced':
        entry.referenced = value === '-' && name.includes('#') ? 0 : integer(value, name, property);
        break;
      case 'createtxg':
        entry.createtxg = value === '-' ? undefined : integer(value, name, property);
        break;
      case 'userrefs':
        entry.userrefs = value === '-' ? 0 : integer(value, name, property);
        break;
      default:
        if (native.has(property)) {
          entry.properties = { ...entry.properties, [property]: { value, source } };
        } else if (wanted.has(property) && !(value === '-' && source === '-')) {
          entry.userProperties[property] = userProperty(value, source);
        }
    }
  }
  const datasets: DatasetEntry[] = [];
  const snapshots: DatasetEntry[] = [];
  const bookmarks: DatasetEntry[] = [];
  for (const name of order) {
    const e = byName.get(name);
    if (!e) continue;
    const type = e.type ?? (name.includes('@') ? 'snapshot' : name.includes('#') ? 'bookmark' : 'filesystem');
    const entry: DatasetEntry = {
      name,
      type,
      creation: e.creation ?? 0,
      guid: e.guid ?? '',
      used: e.used ?? 0,
      referenced: e.referenced ?? 0,
      createtxg: e.createtxg,
      userrefs: e.userrefs ?? 0,
      userProperties: e.userProperties,
      ...(native.size > 0 ? { properties: e.properties ?? {} } : {}),
    };
    if (type === 'snapshot') snapshots.push(entry);
    else if (type === 'bookmark') bookmarks.push(entry);
    else datasets.push(entry);
  }
  snapshots.sort(compareSnapshots);
  return { datasets, snapshots, bookmarks };
}

function compareSnapshots(a: DatasetEntry, b: DatasetEntry): number {
  const da = a.name.slice(0, a.name.indexOf('@'));
  const db = b.name.slice(0, b.name.indexOf('@'));
  if (da !== db) return da < db ? -1 : 1;
  if (a.createtxg !== undefined && b.createtxg !== undefined && a.createtxg !== b.createtxg) return a.createtxg - b.createtxg;
  return a.creation - b.creation;
}

function userProperty(value: string, source: string): UserProperty {
  if (source === 'local') return { value, source: 'local' };
  if (source === 'received') return { value, source: 'received' };
  const inherited = /^inherited from (.+)$/.exec(source);
  if (inherited?.[1] !== undefined) return { value, source: 'inherited', inheritedFrom: inherited[1] };
  return { value, source: 'other' };
}

function integer(value: string, name: string, property: string): number {
  if (!/^\d+$/.test(value)) throw new InventoryParseError(`${name}: ${property} ${JSON.stringify(value)} is not an integer`);
  return Number(value);
}

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50, E: 2 ** 60, Z: 2 ** 70 };

/** "250M" → bytes (powers of 1024, as zpool prints them); exact integers pass through. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([BKMGTPEZ]?)$/.exec(text.trim());
  if (!m) throw new InventoryParseError(`unexpected size ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? ''] ?? 1));
}

/** Parses `zpool list -H [-p] -o name,size,allocated,free,health`. */
export function parseZpoolList(output: string, exact: boolean): PoolEntry[] {
  const pools: PoolEntry[] = [];
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    const [name = '', size = '', allocated = '', free = '', health = ''] = line.split('\t');
    const sizeOf = (v: string): number => (v === '-' ? 0 : parseSize(v));
    pools.push({ name, size: sizeOf(size), allocated: sizeOf(allocated), free: sizeOf(free), health, exact });
  }
  return pools;
}
