import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluateJsonPath, parseJsonPath } from '../../cluster/jsonpath.ts';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../cluster/patch.ts';
import { compareVersions } from '../../cluster/resources.ts';
import { compileSchema, normalize, validateAgainst } from '../../cluster/schema.ts';
import { parseFieldSelector, parseLabelSelector } from '../../cluster/selectors.ts';
import { humanDuration } from '../../cluster/table.ts';
import { jsonEqual, type Json, type JsonObject } from '../../cluster/types.ts';

const json: fc.Arbitrary<Json> = fc.jsonValue() as fc.Arbitrary<Json>;
const jsonObject: fc.Arbitrary<JsonObject> = fc.dictionary(fc.string({ maxLength: 4 }), json, { maxKeys: 5 });

describe('merge patch (RFC 7386)', () => {
  it('is idempotent: applying a patch twice equals applying it once', () => {
    fc.assert(fc.property(jsonObject, jsonObject, (doc, patch) => jsonEqual(mergePatch(mergePatch(doc, patch), patch), mergePatch(doc, patch))));
  });
  it('keeps every key the patch does not mention, and deletes those it sets to null', () => {
    fc.assert(
      fc.property(jsonObject, jsonObject, (doc, patch) => {
        const out = mergePatch(doc, patch) as JsonObject;
        for (const [k, v] of Object.entries(doc)) if (!Object.prototype.hasOwnProperty.call(patch, k)) expect(out[k]).toEqual(v);
        for (const [k, v] of Object.entries(patch)) if (v === null) expect(Object.prototype.hasOwnProperty.call(out, k)).toBe(false);
      }),
    );
  });
  it('replaces lists instead of merging them', () => {
    expect(mergePatch({ a: [1, 2], b: { c: 1, d: 2 } }, { a: [3], b: { d: null } })).toEqual({ a: [3], b: { c: 1 } });
  });
});

describe('strategic merge patch for built-ins', () => {
  it('honours $patch: replace and delete, and drops $setElementOrder', () => {
    expect(strategicMergePatch({ data: { a: '1', b: '2' }, x: 1 }, { data: { $patch: 'replace', c: '3' }, '$setElementOrder/list': [] })).toEqual({ data: { c: '3' }, x: 1 });
    expect(strategicMergePatch({ data: { a: '1' }, x: 1 }, { data: { $patch: 'delete' } })).toEqual({ x: 1 });
  });
});

describe('JSON patch (RFC 6902)', () => {
  it('applies add, remove, replace, move, copy and test', () => {
    const doc = { a: { b: [1, 2] }, c: 'x' };
    const out = jsonPatch(doc, [
      { op: 'add', path: '/a/b/-', value: 3 },
      { op: 'add', path: '/a/b/0', value: 0 },
      { op: 'remove', path: '/a/b/1' },
      { op: 'replace', path: '/c', value: 'y' },
      { op: 'copy', from: '/c', path: '/d' },
      { op: 'move', from: '/d', path: '/e~1f' },
      { op: 'test', path: '/e~1f', value: 'y' },
    ]);
    expect(out).toEqual({ a: { b: [0, 2, 3] }, c: 'y', 'e/f': 'y' });
    expect(doc).toEqual({ a: { b: [1, 2] }, c: 'x' });
  });
  it('fails as a whole when a test or a path fails', () => {
    expect(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }])).toThrow(/test operation does not apply/);
    expect(() => jsonPatch({ a: 1 }, [{ op: 'remove', path: '/b' }])).toThrow(/missing path/);
    expect(() => jsonPatch({ a: 1 }, [{ op: 'replace', path: '/b', value: 1 }])).toThrow();
  });
});

describe('selectors', () => {
  const labels = { app: 'bdr', tier: 'gold', 'bdr.dev/role': 'source' };
  it.each([
    ['app=bdr', true],
    ['app==bdr,tier=gold', true],
    ['app!=bdr', false],
    ['missing!=x', true],
    ['tier in (gold, silver)', true],
    ['tier notin (gold)', false],
    ['bdr.dev/role', true],
    ['!bdr.dev/role', false],
    ['app=bdr,tier in (silver)', false],
    ['', true],
  ])('label selector %j matches: %s', (text, expected) => {
    expect(parseLabelSelector(text)(labels)).toBe(expected);
  });
  it('rejects a malformed label selector with 400', () => {
    expect(() => parseLabelSelector('a in b')).toThrow(/unable to parse requirement/);
  });
  it('matches field selectors and refuses unsupported fields', () => {
    const supported = new Set(['metadata.name', 'metadata.namespace']);
    const get = (f: string): string | undefined => ({ 'metadata.name': 'x', 'metadata.namespace': 'ns' })[f];
    expect(parseFieldSelector('metadata.name=x,metadata.namespace!=other', supported)(get)).toBe(true);
    expect(parseFieldSelector('metadata.name==y', supported)(get)).toBe(false);
    expect(() => parseFieldSelector('spec.size=1', supported)).toThrow(/field label not supported: spec.size/);
  });
});

describe('printer column JSONPath', () => {
  const obj = { status: { conditions: [{ type: 'Synced', status: 'False' }, { type: 'Ready', status: 'True' }] }, spec: { a: { b: 3 } } } as Json;
  it('evaluates fields, indexes, wildcards and filters', () => {
    expect(evaluateJsonPath(parseJsonPath('.status.conditions[?(@.type=="Ready")].status'), obj)).toEqual(['True']);
    expect(evaluateJsonPath(parseJsonPath('.status.conditions[0].type'), obj)).toEqual(['Synced']);
    expect(evaluateJsonPath(parseJsonPath('.status.conditions[*].type'), obj)).toEqual(['Synced', 'Ready']);
    expect(evaluateJsonPath(parseJsonPath("{.spec['a'].b}"), obj)).toEqual([3]);
    expect(evaluateJsonPath(parseJsonPath('.spec.missing'), obj)).toEqual([]);
  });
});

describe('humanDuration (kubectl AGE)', () => {
  it.each([
    [0, '0s'],
    [59_000, '59s'],
    [119_000, '119s'],
    [150_000, '2m30s'],
    [600_000, '10m'],
    [3 * 3600_000 + 5 * 60_000, '3h5m'],
    [30 * 3600_000, '30h'],
    [3 * 86400_000 + 4 * 3600_000, '3d4h'],
    [100 * 86400_000, '100d'],
    [3 * 365 * 86400_000 + 86400_000, '3y1d'],
  ])('%d ms → %s', (ms, text) => {
    expect(humanDuration(ms)).toBe(text);
  });
});

describe('Kubernetes version priority', () => {
  it('orders GA, beta, alpha, then others', () => {
    expect(['v1alpha1', 'v2', 'foo', 'v1beta2', 'v1', 'v1beta1', 'v2alpha1'].sort(compareVersions)).toEqual(['v2', 'v1', 'v1beta2', 'v1beta1', 'v2alpha1', 'v1alpha1', 'foo']);
  });
});

describe('structural schema handling', () => {
  const schema = compileSchema({
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          n: { type: 'integer', default: 3 },
          nested: { type: 'object', default: {}, properties: { mode: { type: 'string', default: 'fast' } } },
          free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          port: { 'x-kubernetes-int-or-string': true },
          map: { type: 'object', additionalProperties: { type: 'integer' } },
          opt: { type: 'string', nullable: true },
          plain: { type: 'string' },
        },
      },
    },
  });
  it('defaults nested objects, keeps preserved and additional fields, prunes and reports the rest', () => {
    const { object, unknownFields } = normalize(
      { apiVersion: 'x/v1', kind: 'X', metadata: { name: 'a', anything: 1 }, spec: { free: { z: [1] }, map: { a: 1 }, junk: 1, opt: null, plain: null }, extra: true },
      schema,
    );
    expect(object).toEqual({
      apiVersion: 'x/v1',
      kind: 'X',
      metadata: { name: 'a', anything: 1 },
      spec: { n: 3, nested: { mode: 'fast' }, free: { z: [1] }, map: { a: 1 }, opt: null },
    });
    expect(unknownFields.sort()).toEqual(['extra', 'spec.junk']);
  });
  it('validates int-or-string and additionalProperties with field paths', () => {
    expect(validateAgainst({ spec: { port: 'http' } }, schema)).toEqual([]);
    expect(validateAgainst({ spec: { port: 80 } }, schema)).toEqual([]);
    const causes = validateAgainst({ spec: { port: true, map: { a: 'x' } } }, schema);
    expect(causes.map((c) => c.field).sort()).toEqual(['spec.map.a', 'spec.port']);
  });
});

describe('keys that look like prototypes', () => {
  it('treats __proto__ in a merge patch as data, not as a prototype', () => {
    const patch = JSON.parse('{"spec":{"__proto__":{"polluted":true}}}') as Json;
    const out = mergePatch({ spec: { a: 1 } }, patch) as { spec: Record<string, unknown> };
    expect(Object.getPrototypeOf(out.spec)).toBe(Object.prototype);
    expect(Object.keys(out.spec).sort()).toEqual(['__proto__', 'a']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
