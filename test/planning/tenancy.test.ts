import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  datasetPropertiesVerdict,
  datasetVerdict,
  machineSuspendedVerdict,
  mountpointProblem,
  namespaceAllowed,
  pathProblem,
  propertyProblem,
  selectorMatches,
  storageTargetMachineProblem,
  vectorTargetMachineProblem,
  type AllowedNamespaces,
  type MachineRules,
} from '../../planning/tenancy.ts';

const machine = (spec: MachineRules['spec'] = {}): MachineRules => ({ metadata: { name: 'nas01' }, spec });

describe('namespaceAllowed', () => {
  it('allows nobody when the Machine says nothing, and names the rule', () => {
    const v = namespaceAllowed(machine(), 'default');
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.reason).toBe('NamespaceNotAllowed');
    expect(v.message).toContain('Machine nas01 does not allow namespace default');
    expect(v.message).toContain('no spec.allowedNamespaces');
  });

  it('allows the listed names only', () => {
    const m = machine({ allowedNamespaces: { names: ['backups', 'team-a'] } });
    expect(namespaceAllowed(m, 'team-a').ok).toBe(true);
    const v = namespaceAllowed(m, 'team-b');
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.message).toContain('names [backups, team-a]');
  });

  it('allows namespaces whose labels match the selector, and the name label Kubernetes sets', () => {
    const m = machine({ allowedNamespaces: { selector: { matchLabels: { 'bdr.dev/tenant': 'nas01' } } } });
    expect(namespaceAllowed(m, 'x', { 'bdr.dev/tenant': 'nas01' }).ok).toBe(true);
    expect(namespaceAllowed(m, 'x', { 'bdr.dev/tenant': 'vault' }).ok).toBe(false);
    expect(namespaceAllowed(m, 'x', {}).ok).toBe(false);
    const byName = machine({ allowedNamespaces: { selector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['a', 'b'] }] } } });
    expect(namespaceAllowed(byName, 'b').ok).toBe(true);
    expect(namespaceAllowed(byName, 'c').ok).toBe(false);
    // A namespace cannot claim another's name through its own labels.
    expect(namespaceAllowed(byName, 'c', { 'kubernetes.io/metadata.name': 'a' }).ok).toBe(false);
  });

  it('treats selector: {} as every namespace', () => {
    expect(namespaceAllowed(machine({ allowedNamespaces: { selector: {} } }), 'anything').ok).toBe(true);
  });

  it('allows exactly the union of names and selector matches (property)', () => {
    const ns = fc.constantFrom('a', 'b', 'c', 'd');
    fc.assert(
      fc.property(fc.uniqueArray(ns), fc.option(fc.constantFrom('gold', 'silver')), ns, fc.option(fc.constantFrom('gold', 'silver')), (names, want, namespace, has) => {
        const rule: AllowedNamespaces = { names, ...(want !== null ? { selector: { matchLabels: { tier: want } } } : {}) };
        const labels: Record<string, string> = has !== null ? { tier: has } : {};
        const expected = names.includes(namespace) || (want !== null && has === want);
        expect(namespaceAllowed(machine({ allowedNamespaces: rule }), namespace, labels).ok).toBe(expected);
      }),
    );
  });
});

describe('selectorMatches', () => {
  const labels = { tier: 'gold', team: 'a' };
  it.each([
    [{}, true],
    [{ matchLabels: { tier: 'gold' } }, true],
    [{ matchLabels: { tier: 'gold', team: 'b' } }, false],
    [{ matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['silver', 'gold'] }] }, true],
    [{ matchExpressions: [{ key: 'tier', operator: 'NotIn' as const, values: ['gold'] }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'NotIn' as const, values: ['eu'] }] }, true],
    [{ matchExpressions: [{ key: 'team', operator: 'Exists' as const }] }, true],
    [{ matchExpressions: [{ key: 'zone', operator: 'Exists' as const }] }, false],
    [{ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' as const }] }, true],
    [{ matchLabels: { tier: 'gold' }, matchExpressions: [{ key: 'team', operator: 'DoesNotExist' as const }] }, false],
  ])('%j → %s', (selector, expected) => {
    expect(selectorMatches(selector, labels)).toBe(expected);
  });
});

describe('Dataset properties', () => {
  it('accepts the allowlist and user properties', () => {
    for (const [k, v] of [['compression', 'gzip'], ['recordsize', '1M'], ['quota', '10G'], ['atime', 'off'], ['com.example:backup', 'yes']]) {
      expect(propertyProblem(k as string, v as string), k).toBeUndefined();
    }
  });

  it('refuses what reaches beyond the dataset, saying why', () => {
    for (const k of ['sharenfs', 'sharesmb', 'setuid', 'devices', 'exec', 'zoned', 'keylocation', 'dedup']) {
      expect(propertyProblem(k, 'on'), k).toMatch(new RegExp(`^${k}: refused, it `));
    }
    expect(propertyProblem('nbmand', 'on')).toMatch(/^nbmand: not a property a Dataset may set/);
    expect(propertyProblem('dev.bdr:owner', 'bdr')).toMatch(/bdr's own marks/);
  });

  it('allows mountpoint only strictly below the Machine root, normalised', () => {
    expect(mountpointProblem('/srv/t/a', '/srv/t', 'm')).toBeUndefined();
    expect(mountpointProblem('none', undefined, 'm')).toBeUndefined();
    expect(mountpointProblem('legacy', undefined, 'm')).toBeUndefined();
    expect(mountpointProblem('/srv/t', '/srv/t', 'm')).toMatch(/not below/);
    expect(mountpointProblem('/srv/tx', '/srv/t', 'm')).toMatch(/not below/);
    expect(mountpointProblem('/etc', '/srv/t', 'm')).toMatch(/not below Machine m's spec.mountpointRoot \/srv\/t/);
    expect(mountpointProblem('/srv/t/../../etc', '/srv/t', 'm')).toMatch(/"\." or "\.\." components/);
    expect(mountpointProblem('srv/t/a', '/srv/t', 'm')).toMatch(/absolute/);
    expect(mountpointProblem('/srv/t//a', '/srv/t', 'm')).toMatch(/"\/\/"/);
    expect(mountpointProblem('/srv/t/a', undefined, 'm')).toMatch(/declares no spec.mountpointRoot/);
  });

  it('never accepts a mountpoint that resolves outside the root (property)', () => {
    const comp = fc.constantFrom('a', 'b', '.', '..', 'etc', '');
    fc.assert(
      fc.property(fc.array(comp, { minLength: 1, maxLength: 6 }), (parts) => {
        const path = `/srv/t/${parts.join('/')}`;
        if (mountpointProblem(path, '/srv/t', 'm') !== undefined) return;
        // Accepted: resolve it like the kernel would, and it must stay strictly below /srv/t.
        const stack: string[] = [];
        for (const p of path.split('/').filter((x) => x !== '' && x !== '.')) {
          if (p === '..') stack.pop();
          else stack.push(p);
        }
        expect(stack.slice(0, 2)).toEqual(['srv', 't']);
        expect(stack.length).toBeGreaterThan(2);
      }),
    );
  });

  it('gives one verdict with every problem and a reason a condition can carry', () => {
    const m = machine({ mountpointRoot: '/srv/t' });
    expect(datasetPropertiesVerdict({ compression: 'gzip', mountpoint: '/srv/t/x' }, m)).toEqual({ ok: true });
    const mp = datasetPropertiesVerdict({ mountpoint: '/etc' }, m);
    expect(mp.ok ? '' : mp.reason).toBe('MountpointNotAllowed');
    const both = datasetPropertiesVerdict({ mountpoint: '/etc', sharenfs: 'on' }, m);
    expect(both.ok ? '' : both.reason).toBe('PropertyNotAllowed');
    expect(both.ok ? '' : both.message).toMatch(/mountpoint "\/etc".*; sharenfs: refused|sharenfs: refused.*; mountpoint "\/etc"/);
  });

  it('judges a Dataset by its namespace first, then its properties (the order the controller and bdr plan show)', () => {
    const m = machine({ allowedNamespaces: { names: ['team-a'], selector: { matchLabels: { tier: 'gold' } } } });
    expect(datasetVerdict(m, { namespace: 'team-a', properties: { compression: 'lz4' } })).toEqual({ ok: true });
    expect(datasetVerdict(m, { namespace: 'team-b' }, { tier: 'gold' })).toEqual({ ok: true });
    // Both wrong: the namespace is what the user reads about.
    const both = datasetVerdict(m, { namespace: 'team-b', properties: { sharenfs: 'on' } }, { tier: 'silver' });
    expect(both.ok ? '' : both.reason).toBe('NamespaceNotAllowed');
    const props = datasetVerdict(m, { namespace: 'team-a', properties: { sharenfs: 'on' } });
    expect(props).toEqual({ ok: false, reason: 'PropertyNotAllowed', message: 'spec.properties: sharenfs: refused, it would export the dataset to the network' });
    expect(datasetVerdict(m, { namespace: 'team-a', properties: { mountpoint: '/srv/x' } })).toEqual({
      ok: false,
      reason: 'MountpointNotAllowed',
      message: 'spec.properties: mountpoint "/srv/x" is refused: Machine nas01 declares no spec.mountpointRoot, so a Dataset may only set mountpoint none or legacy',
    });
  });

  it('checks the shape of a root', () => {
    expect(pathProblem('/srv/tenants')).toBeUndefined();
    expect(pathProblem('/')).toMatch(/must not be \//);
    expect(pathProblem('/srv/')).toMatch(/end with/);
  });
});

describe('Machine suspension and roles', () => {
  it('suspends everything on a suspended Machine', () => {
    expect(machineSuspendedVerdict(machine())).toEqual({ ok: true });
    const v = machineSuspendedVerdict(machine({ suspend: true }));
    expect(v.ok ? '' : v.reason).toBe('MachineSuspended');
  });

  it('lets a StorageTarget list only Storage machines, and no Vector target a Source machine', () => {
    expect(storageTargetMachineProblem(machine({ role: 'Storage' }))).toBeUndefined();
    expect(storageTargetMachineProblem(machine({ role: 'Aggregator' }))).toMatch(/role Aggregator/);
    expect(storageTargetMachineProblem(machine())).toMatch(/role Source/);
    expect(vectorTargetMachineProblem(machine({ role: 'Aggregator' }))).toBeUndefined();
    expect(vectorTargetMachineProblem(machine({ role: 'Storage' }))).toBeUndefined();
    expect(vectorTargetMachineProblem(machine())).toMatch(/role Source/);
  });
});
