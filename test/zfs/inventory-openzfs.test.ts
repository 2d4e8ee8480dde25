/**
 * The inventory's `zfs get` as a real OpenZFS 2.2.2 printed it (Ubuntu 24.04, recorded in a VM, see
 * test/openzfs-vm): a file system with three snapshots and a bookmark of the first. The expected values were read
 * off the recorded lines by eye, not produced by the parser.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BDR_USER_PROPERTIES, parseZfsGet } from '../../zfs/inventory.ts';

const output = readFileSync(new URL('./fixtures/openzfs-2.2.2/inventory-with-bookmark.stdout', import.meta.url), 'utf8');

describe('inventory of a real OpenZFS 2.2.2 with a bookmark', () => {
  it('OpenZFS prints "-" for a bookmark\'s used and userrefs', () => {
    expect(output).toContain('bm/a#bk1\tused\t-\t-\n');
    expect(output).toContain('bm/a#bk1\tuserrefs\t-\t-\n');
  });

  it('lists the bookmark with its snapshot\'s guid and createtxg, and no space of its own', () => {
    const inventory = parseZfsGet(output, BDR_USER_PROPERTIES);
    expect(inventory.bookmarks).toEqual([
      { name: 'bm/a#bk1', type: 'bookmark', creation: 1796145314, guid: '18260397827851644438', used: 0, referenced: 4029440, createtxg: 11, userrefs: 0, userProperties: {} },
    ]);
    expect(inventory.snapshots.map((s) => [s.name, s.guid, s.createtxg])).toEqual([
      ['bm/a@m1', '18260397827851644438', 11],
      ['bm/a@m2', '9331899282307537593', 12],
      ['bm/a@m3', '1464991976802409093', 14],
    ]);
    expect(inventory.datasets.map((d) => [d.name, d.guid, d.referenced])).toEqual([['bm/a', '1389839950679676394', 5032448]]);
  });

  it('a "-" used on anything but a bookmark is still an error', () => {
    expect(() => parseZfsGet(output.replace('bm/a@m1\tused\t0\t-', 'bm/a@m1\tused\t-\t-'), BDR_USER_PROPERTIES)).toThrow(/bm\/a@m1: used "-" is not an integer/);
  });
});
