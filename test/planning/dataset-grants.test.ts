import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { datasetAccess, datasetRootProblems, storageAreasOf, type DatasetRoot, type GrantRules, type StorageArea } from '../../planning/dataset-grants.ts';
import { inheritedMountpoint } from '../../planning/tenancy.ts';

const machine = (datasetRoots?: DatasetRoot[], pools?: string[]): GrantRules => ({
  metadata: { name: 'shared' },
  spec: { ...(datasetRoots ? { datasetRoots } : {}), ...(pools ? { pools } : {}) },
});
const granted = (m: GrantRules, ns: string, path: string, areas: StorageArea[] = [], area?: StorageArea) => datasetAccess(m, ns, path, areas, area).ok;
const why = (m: GrantRules, ns: string, path: string, areas: StorageArea[] = [], area?: StorageArea) => {
  const v = datasetAccess(m, ns, path, areas, area);
  return v.ok ? 'granted' : `${v.reason}: ${v.message}`;
};

describe('datasetAccess: the default root {pool}/{namespace}', () => {
  const m = machine();
  it('grants a namespace its own root and what lies below it, in any pool', () => {
    expect(granted(m, 'web', 'tank/web')).toBe(true);
    expect(granted(m, 'web', 'tank/web/db/2026')).toBe(true);
    expect(granted(m, 'web', 'backup/web/x')).toBe(true);
  });
  it("refuses another namespace's root, the pool itself, and names outside any root", () => {
    expect(why(m, 'web', 'tank/mail/db')).toBe('DatasetNotGranted: tank/mail/db on Machine shared: it is at or below tank/mail, the root {pool}/{namespace} grants to namespace mail');
    expect(why(m, 'web', 'tank')).toBe('DatasetNotGranted: tank on Machine shared: it holds the root of every namespace that {pool}/{namespace} grants');
    expect(granted(m, 'web', 'tank/webs')).toBe(false);
  });
  it('keeps to spec.pools when it is set', () => {
    const limited = machine(undefined, ['tank']);
    expect(granted(limited, 'web', 'tank/web/a')).toBe(true);
    expect(why(limited, 'web', 'rpool/web/a')).toBe("PoolNotManaged: rpool/web/a on Machine shared: pool rpool is not in the Machine's spec.pools (tank)");
  });
});

describe('datasetAccess: fixed roots', () => {
  const m = machine([{ root: 'tank/{namespace}' }, { root: 'tank/vms', namespace: 'home' }]);
  it('grants a fixed root to its one namespace, over the template', () => {
    expect(granted(m, 'home', 'tank/vms/web01')).toBe(true);
    expect(granted(m, 'home', 'tank/home/x')).toBe(true);
  });
  it('refuses everyone else at, above and below it, even the namespace whose template name it shares', () => {
    expect(granted(m, 'vms', 'tank/vms')).toBe(false);
    expect(granted(m, 'vms', 'tank/vms/x')).toBe(false);
    expect(why(m, 'web', 'tank/vms/x')).toBe('DatasetNotGranted: tank/vms/x on Machine shared: it overlaps tank/vms, the root Machine shared grants to namespace home');
  });
  it('fails closed where two namespaces were given nested roots', () => {
    const bad = machine([{ root: 'tank/data', namespace: 'a' }, { root: 'tank/data/b', namespace: 'b' }]);
    expect(granted(bad, 'a', 'tank/data/b/x')).toBe(false);
    expect(granted(bad, 'b', 'tank/data/b/x')).toBe(false);
    expect(granted(bad, 'a', 'tank/data')).toBe(false);
    expect(granted(bad, 'a', 'tank/data/other')).toBe(true);
    expect(datasetRootProblems(bad)).toEqual([{ index: 1, message: 'tank/data/b (namespace b) overlaps datasetRoots[0] tank/data (namespace a): neither namespace may use the overlap' }]);
  });
  it('takes {pool} as every pool the Machine uses', () => {
    const whole = machine([{ root: '{pool}', namespace: 'default' }], ['tank', 'backup']);
    expect(granted(whole, 'default', 'backup/x')).toBe(true);
    expect(granted(whole, 'other', 'backup/other')).toBe(false);
    expect(granted(whole, 'default', 'rpool/x')).toBe(false);
  });
});

describe('datasetAccess: StorageTarget areas', () => {
  const area: StorageArea = { storageTarget: 'offsite', parentDataset: 'vault/replicas' };
  const m = machine();
  it('gives each namespace PARENT/<namespace>/, strictly below, on the StorageTarget', () => {
    expect(granted(m, 'web', 'vault/replicas/web/v1', [area], area)).toBe(true);
    expect(granted(m, 'web', 'vault/replicas/web', [area], area)).toBe(false);
    expect(why(m, 'web', 'vault/replicas/mail/v1', [area], area)).toBe(
      "DatasetNotGranted: vault/replicas/mail/v1 on Machine shared: below StorageTarget offsite's parentDataset vault/replicas, namespace web may use only vault/replicas/web/",
    );
  });
  it("keeps every namespace out of the parent, also through a template whose name it matches (a namespace called 'replicas')", () => {
    expect(granted(m, 'replicas', 'vault/replicas', [area])).toBe(false);
    expect(granted(m, 'replicas', 'vault/replicas/web/v1', [area])).toBe(false);
    expect(granted(m, 'replicas', 'vault/replicas/replicas/x', [area])).toBe(true);
    expect(granted(m, 'web', 'vault', [area])).toBe(false);
  });
  it('finds the StorageTargets that list a machine', () => {
    const targets = [
      { metadata: { name: 'a' }, spec: { machines: [{ name: 'vault' }], parentDataset: 'vault/a' } },
      { metadata: { name: 'b' }, spec: { machines: [{ name: 'other' }], parentDataset: 'other/b' } },
    ];
    expect(storageAreasOf(targets, 'vault')).toEqual([{ storageTarget: 'a', parentDataset: 'vault/a' }]);
  });
});

describe('datasetRootProblems', () => {
  it('names roots without a namespace, templates with one, and templates whose parents nest', () => {
    expect(datasetRootProblems(machine([{ root: 'tank/x' }]))).toEqual([{ index: 0, message: 'tank/x names no namespace: add namespace: NAME, or end the root in /{namespace} to give each namespace its own' }]);
    expect(datasetRootProblems(machine([{ root: 'tank/{namespace}', namespace: 'a' }]))[0]?.message).toContain('remove namespace a');
    expect(datasetRootProblems(machine([{ root: 'tank/{namespace}' }, { root: 'tank/x/{namespace}' }]))[0]?.message).toContain('nest');
    expect(datasetRootProblems(machine([{ root: 'tank/{namespace}' }, { root: 'backup/{namespace}' }]))).toEqual([]);
    expect(datasetRootProblems(machine([{ root: 'rpool/x', namespace: 'a' }], ['tank']))[0]?.message).toBe('pool rpool is not in spec.pools (tank)');
  });
});

describe('datasetAccess: no path is ever granted to two namespaces, nor one nested in the other', () => {
  // Small alphabets, so that collisions (a namespace named like a directory, nested fixed roots) are common.
  const comp = fc.constantFrom('tank', 'vault', 'a', 'b', 'web', 'replicas', 'x');
  const ns = fc.constantFrom('a', 'b', 'web', 'replicas');
  const path = fc.array(comp, { minLength: 1, maxLength: 5 }).map((p) => p.join('/'));
  const root = fc.oneof(
    fc.array(comp, { minLength: 0, maxLength: 2 }).map((p) => ({ root: ['{pool}', ...p, '{namespace}'].join('/') })),
    fc.array(comp, { minLength: 1, maxLength: 3 }).map((p) => ({ root: p.join('/') })),
    fc.tuple(fc.array(comp, { minLength: 1, maxLength: 3 }), ns).map(([p, n]) => ({ root: p.join('/'), namespace: n })),
    fc.tuple(fc.array(comp, { minLength: 0, maxLength: 2 }), ns).map(([p, n]) => ({ root: ['{pool}', ...p].join('/'), namespace: n })),
  );
  const areas = fc.array(fc.array(comp, { minLength: 1, maxLength: 3 }).map((p) => ({ storageTarget: 'st', parentDataset: p.join('/') })), { maxLength: 2 });
  const overlap = (p: string, q: string) => p === q || p.startsWith(`${q}/`) || q.startsWith(`${p}/`);

  it('holds for any roots, StorageTarget parents and names (5000 runs)', () => {
    fc.assert(
      fc.property(fc.array(root, { maxLength: 4 }), areas, ns, ns, path, path, (roots, st, n1, n2, p1, p2) => {
        fc.pre(n1 !== n2 && overlap(p1, p2));
        const m = machine(roots.length > 0 ? roots : undefined);
        expect(granted(m, n1, p1, st) && granted(m, n2, p2, st)).toBe(false);
        for (const a of st) expect(granted(m, n1, p1, st, a) && granted(m, n2, p2, st, a)).toBe(false);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('inheritedMountpoint', () => {
  const m = (mountpointRoot?: string) => ({ metadata: { name: 'nas01' }, spec: mountpointRoot ? { mountpointRoot } : {} });
  it('lets a created dataset inherit only a mountpoint below the Machine’s mountpointRoot', () => {
    expect(inheritedMountpoint(m('/srv'), { name: 'tank/a/b' }, { name: 'tank/a', mountpoint: '/srv/a' })).toEqual({ properties: {} });
    expect(inheritedMountpoint(m(), { name: 'tank/a/b' }, { name: 'tank', mountpoint: 'none' })).toEqual({ properties: {} });
    expect(inheritedMountpoint(m(), { name: 'tank/a', properties: { mountpoint: 'legacy' } }, { name: 'tank', mountpoint: '/tank' })).toEqual({ properties: {} });
  });
  it('creates it unmounted where it would land on the host (root-on-ZFS: /etc), and says why', () => {
    expect(inheritedMountpoint(m('/srv'), { name: 'rpool/ROOT/debian/etc' }, { name: 'rpool/ROOT/debian', mountpoint: '/' })).toEqual({
      properties: { mountpoint: 'none' },
      note: "not mounted: it would have inherited mountpoint /etc from rpool/ROOT/debian, outside Machine nas01's spec.mountpointRoot /srv; set spec.properties.mountpoint below it to mount it",
    });
    expect(inheritedMountpoint(m(), { name: 'tank/a' }, { name: 'tank', mountpoint: '/tank' }).properties).toEqual({ mountpoint: 'none' });
  });
});
