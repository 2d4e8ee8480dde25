import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DATASET_NAME_PATTERN,
  InvalidNameError,
  SNAPSHOT_NAME_PATTERN,
  assertName,
  nameProblem,
  type NameKind,
} from '../../api/names.ts';

/** What ZFS itself allows in a dataset name, per zfs(8) "Dataset naming": a superset of what bdr accepts. */
const ZFS_ALLOWED = /^[A-Za-z0-9_.:\- /@]*$/;
const SHELL_META = /[;&|`$(){}<>*?!~#'"\\\s[\]=^%,]/;

const kinds: NameKind[] = ['pool', 'dataset', 'snapshot', 'snapshotShortName'];
const alphabet = 'abcAZ09_.:-/@ ;&|`$(){}<>*?!~#\'"\\\n\t[]=%,+é';
const anyName = fc.string({ unit: fc.constantFrom(...alphabet.split('')), maxLength: 40 });
const component = fc.stringMatching(/^[A-Za-z0-9_:][A-Za-z0-9_:-]{0,8}$/);
const validDataset = fc
  .tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9_-]{0,8}$/), fc.array(component, { maxLength: 5 }))
  .map(([pool, parts]) => [pool, ...parts].join('/'))
  .filter((n) => !/^(mirror|raidz\d?|draid\d?|spare|log|cache|special|dedup)$|^c[0-9]/.test(n.split('/')[0] ?? ''));

describe('ZFS name rules', () => {
  it('accepts no string containing a character outside what ZFS allows, nor any shell metacharacter', () => {
    fc.assert(
      fc.property(anyName, fc.constantFrom(...kinds), (name, kind) => {
        if (nameProblem(kind, name) !== undefined) return;
        expect(ZFS_ALLOWED.test(name)).toBe(true);
        expect(SHELL_META.test(name)).toBe(false);
        expect(name.startsWith('-')).toBe(false);
        expect(name).not.toContain('..');
      }),
      { numRuns: 20_000 },
    );
  });

  it('agrees with the schema pattern that the CRDs carry', () => {
    const datasetRe = new RegExp(DATASET_NAME_PATTERN);
    fc.assert(
      fc.property(anyName, (name) => {
        if (nameProblem('dataset', name) === undefined) expect(datasetRe.test(name)).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });

  it('accepts ordinary dataset names and builds snapshot names from them', () => {
    fc.assert(
      fc.property(validDataset, component, (dataset, snap) => {
        expect(nameProblem('dataset', dataset)).toBeUndefined();
        expect(nameProblem('snapshot', `${dataset}@${snap}`)).toBeUndefined();
        expect(new RegExp(SNAPSHOT_NAME_PATTERN).test(`${dataset}@${snap}`)).toBe(true);
      }),
    );
  });

  it.each([
    ['dataset', 'tank/vms/web-01.img', undefined],
    ['dataset', 'zroot/ROOT/debian_12:a', undefined],
    ['snapshot', 'tank/a@bdr-20261126T063600Z', undefined],
    ['dataset', 'tank/a b', 'may contain only'],
    ['dataset', 'tank/$(id)', 'may contain only'],
    ['dataset', 'tank/../etc', '".."'],
    ['dataset', 'tank/a..b', '".."'],
    ['dataset', '-o/a', 'start with "-"'],
    ['dataset', 'tank/-R', 'start with "-"'],
    ['dataset', 'tank/.hidden', 'start with "."'],
    ['dataset', 'tank/', 'empty components'],
    ['dataset', 'tank//a', 'empty components'],
    ['dataset', 'tank/a@b', 'must not contain "@"'],
    ['snapshot', 'tank/a', 'DATASET@NAME'],
    ['snapshot', 'tank/a@b@c', 'DATASET@NAME'],
    ['pool', 'raidz2', 'reserved'],
    ['pool', 'c0t0d0', 'reserved'],
    ['pool', '1tank', 'begins with a letter'],
    ['dataset', 'x'.repeat(256), 'at most 255'],
    ['dataset', '', 'must not be empty'],
  ] as const)('%s %j → %s', (kind, value, problem) => {
    const got = nameProblem(kind, value);
    if (problem === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(problem);
  });

  it('assertName throws a typed error that names the value', () => {
    expect(() => assertName('dataset', 'tank/;reboot')).toThrow(InvalidNameError);
    expect(() => assertName('dataset', 'tank/;reboot')).toThrow(/tank\/;reboot/);
    expect(assertName('dataset', 'tank/ok')).toBe('tank/ok');
  });
});
