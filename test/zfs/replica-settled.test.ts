import { describe, expect, it } from 'vitest';
import { parseZfsGet } from '../../zfs/inventory.ts';
import { replicaPropertiesSettled } from '../../zfs/replica.ts';

const PROPS = ['canmount', 'mountpoint', 'sharenfs', 'sharesmb', 'readonly', 'setuid', 'exec', 'devices', 'reservation', 'refreservation'];
/** `zfs get -H -p -o name,property,value,source` lines of one file system with every property local and inert. */
const inert = (name: string, overrides: Record<string, [string, string]> = {}) =>
  [
    `${name}\ttype\tfilesystem\t-`,
    ...Object.entries({
      canmount: ['noauto', 'local'], mountpoint: ['none', 'local'], sharenfs: ['off', 'local'], sharesmb: ['off', 'local'],
      readonly: ['on', 'local'], setuid: ['off', 'local'], exec: ['off', 'local'], devices: ['off', 'local'],
      // `zfs get -p` prints a reservation of none as 0.
      reservation: ['0', 'local'], refreservation: ['0', 'local'], ...overrides,
    }).map(([p, [v, s]]) => `${name}\t${p}\t${v}\t${s}`),
  ].join('\n');
const listing = (...parts: string[]) => ({ ...parseZfsGet(parts.join('\n'), [], PROPS), pools: [], takenAt: 0 });
// A snapshot's lines, as zfs-fuse prints them without `get -t`.
const snapshot = (name: string) => [`${name}\ttype\tsnapshot\t-`, ...PROPS.map((p) => `${name}\t${p}\t-\t-`)].join('\n');

describe('replicaPropertiesSettled', () => {
  it('true when every file system at or below the replica has each property local and inert (snapshots do not count)', () => {
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data'), snapshot('p/r/v/data@a'), inert('p/r/v/data/child', { canmount: ['off', 'local'] })), 'p/r/v/data')).toBe(true);
  });
  it('false when a value is received, inherited or default rather than local, even if it is the wanted one', () => {
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data', { readonly: ['on', 'received'] })), 'p/r/v/data')).toBe(false);
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data', { exec: ['off', 'inherited from p/r'] })), 'p/r/v/data')).toBe(false);
  });
  it('false when a local value is not safe, or a child is not inert', () => {
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data', { mountpoint: ['/mnt', 'local'] })), 'p/r/v/data')).toBe(false);
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data'), inert('p/r/v/data/c', { setuid: ['on', 'default'] })), 'p/r/v/data')).toBe(false);
  });
  it('false when a reservation is received, or an optional property of the listing is not local', () => {
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data', { reservation: ['1048576', 'received'] })), 'p/r/v/data')).toBe(false);
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data', { refreservation: ['0', 'default'] })), 'p/r/v/data')).toBe(false);
    // A listing taken with the machine's zoned (zfs-fuse, OpenZFS) judges it too; the capabilities may say so instead.
    const withZoned = (source: string) => ({ ...parseZfsGet(`${inert('p/r/v/data')}\np/r/v/data\tzoned\toff\t${source}`, [], [...PROPS, 'zoned']), pools: [], takenAt: 0 });
    expect(replicaPropertiesSettled(withZoned('local'), 'p/r/v/data')).toBe(true);
    expect(replicaPropertiesSettled(withZoned('default'), 'p/r/v/data')).toBe(false);
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data')), 'p/r/v/data', { datasetProperties: ['zoned'] })).toBe(false);
  });
  it('ignores file systems outside the replica, and is false when the replica is not listed or the properties were not asked for', () => {
    expect(replicaPropertiesSettled(listing(inert('p/r/v/data'), inert('p/r/v/data2', { readonly: ['off', 'local'] })), 'p/r/v/data')).toBe(true);
    expect(replicaPropertiesSettled(listing(inert('p/r/v/other')), 'p/r/v/data')).toBe(false);
    const withoutProperties = { ...parseZfsGet(`p/r/v/data\ttype\tfilesystem\t-\np/r/v/data\treadonly\ton\tlocal`, []), pools: [], takenAt: 0 };
    expect(replicaPropertiesSettled(withoutProperties, 'p/r/v/data')).toBe(false);
  });
});
