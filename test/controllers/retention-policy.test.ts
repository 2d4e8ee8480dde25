import { describe, expect, it } from 'vitest';
import type { Dataset, Vector } from '../../api/types.ts';
import { vectorRetentionPolicy } from '../../controllers/retention-policy-controller.ts';

const ds = (name: string, policy: string, namespace = 'default') =>
  ({ apiVersion: 'bdr.dev/v1alpha1', kind: 'Dataset', metadata: { name, namespace }, spec: { retentionPolicyRef: { name: policy } } }) as unknown as Dataset;
const vec = (name: string, source: { datasetRef?: { name: string }; vectorRef?: { name: string } }, policy?: string, namespace = 'default') =>
  ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Vector',
    metadata: { name, namespace },
    spec: { source, target: { machineRef: { name: 'vault' }, dataset: `vault/${name}` }, ...(policy ? { retentionPolicyRef: { name: policy } } : {}) },
  }) as unknown as Vector;

describe('vectorRetentionPolicy', () => {
  const datasets = [ds('vms', 'standard'), ds('vms', 'other-ns-policy', 'team-b')];

  it("is the Vector's own policy when it names one", () => {
    expect(vectorRetentionPolicy(vec('v', { datasetRef: { name: 'vms' } }, 'offsite'), [], datasets)).toBe('offsite');
  });

  it("is the source Dataset's policy otherwise, in the Vector's namespace", () => {
    expect(vectorRetentionPolicy(vec('v', { datasetRef: { name: 'vms' } }), [], datasets)).toBe('standard');
    expect(vectorRetentionPolicy(vec('v', { datasetRef: { name: 'vms' } }, undefined, 'team-b'), [], datasets)).toBe('other-ns-policy');
  });

  it('follows a chain of vectors to the first policy named', () => {
    const a = vec('a', { datasetRef: { name: 'vms' } });
    const b = vec('b', { vectorRef: { name: 'a' } });
    const c = vec('c', { vectorRef: { name: 'b' } });
    expect(vectorRetentionPolicy(c, [a, b, c], datasets)).toBe('standard');
    const b2 = vec('b', { vectorRef: { name: 'a' } }, 'mirror');
    expect(vectorRetentionPolicy(c, [a, b2, c], datasets)).toBe('mirror');
  });

  it('is undefined for a broken chain or a cycle', () => {
    expect(vectorRetentionPolicy(vec('v', { datasetRef: { name: 'missing' } }), [], datasets)).toBeUndefined();
    const x = vec('x', { vectorRef: { name: 'y' } });
    const y = vec('y', { vectorRef: { name: 'x' } });
    expect(vectorRetentionPolicy(x, [x, y], datasets)).toBeUndefined();
  });
});
