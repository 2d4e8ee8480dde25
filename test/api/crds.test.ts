import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { allCrdFiles } from '../../api/crd.ts';
import { KINDS } from '../../api/kinds/index.ts';
import { REPO_ROOT, runBdr } from '../helpers/run-bdr.ts';

const CRDS_DIR = join(REPO_ROOT, 'crds');
type Node = Record<string, unknown>;

/** Walks a schema and reports every rule of a structural schema (apiextensions v1) that a node breaks. */
function structuralProblems(node: Node, path: string, inJunctor = false): string[] {
  const out: string[] = [];
  if ('$ref' in node) out.push(`${path}: $ref is not allowed`);
  if (node.additionalProperties === false) out.push(`${path}: additionalProperties: false is not allowed`);
  if (node.additionalProperties !== undefined && node.properties !== undefined) {
    out.push(`${path}: properties and additionalProperties are mutually exclusive`);
  }
  if (inJunctor) {
    for (const k of ['type', 'default', 'description', 'nullable']) if (k in node) out.push(`${path}: ${k} inside oneOf/anyOf/allOf/not`);
  } else if (typeof node.type !== 'string' && node['x-kubernetes-int-or-string'] !== true) {
    out.push(`${path}: every node needs a type`);
  }
  for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, Node>)) out.push(...structuralProblems(v, `${path}.${k}`));
  if (node.items && typeof node.items === 'object') out.push(...structuralProblems(node.items as Node, `${path}[]`));
  if (node.additionalProperties && typeof node.additionalProperties === 'object') {
    out.push(...structuralProblems(node.additionalProperties as Node, `${path}{}`));
  }
  for (const j of ['oneOf', 'anyOf', 'allOf']) {
    for (const [i, b] of ((node[j] ?? []) as Node[]).entries()) out.push(...structuralProblems(b, `${path}.${j}[${i}]`, true));
  }
  if (node.default !== undefined && (node.type === 'object' || node.type === 'array')) out.push(`${path}: object defaults are not used`);
  return out;
}

describe('crds/', () => {
  it('is exactly what the generator produces (run `npm run gen:crds` after changing api/)', () => {
    const generated = allCrdFiles();
    const onDisk = readdirSync(CRDS_DIR).filter((f) => f.endsWith('.yaml')).sort();
    expect(onDisk).toEqual([...generated.keys()].sort());
    for (const [name, text] of generated) expect(readFileSync(join(CRDS_DIR, name), 'utf8'), name).toBe(text);
  });

  it('`bdr crds` prints the same documents', async () => {
    const r = await runBdr(['crds']);
    expect(r.exitCode).toBe(0);
    for (const text of allCrdFiles().values()) expect(r.stdout).toContain(text.trim());
  });

  for (const kind of KINDS) {
    it(`${kind.kind}: structural schema, status subresource, names, printer columns`, () => {
      const crd = parse([...allCrdFiles().entries()].find(([f]) => f.includes(kind.plural))?.[1] ?? '') as Node;
      const spec = crd.spec as Node;
      expect(spec.group).toBe('bdr.dev');
      expect(spec.scope).toBe(kind.scope);
      const names = spec.names as Node;
      expect(names.categories).toEqual(['bdr']);
      expect((names.shortNames as string[]).length).toBeGreaterThan(0);
      const [version] = spec.versions as Node[];
      expect(version?.name).toBe('v1alpha1');
      expect(version?.subresources).toEqual({ status: {} });
      const columns = (version?.additionalPrinterColumns as Node[]).map((c) => c.name);
      expect(columns.slice(-3)).toEqual(['Ready', 'Status', 'Age']);
      const schema = (version?.schema as Node).openAPIV3Schema as Node;
      expect(structuralProblems(schema, kind.kind)).toEqual([]);
      const status = (schema.properties as Record<string, Node>).status as Node;
      const statusProps = status.properties as Record<string, Node>;
      expect(statusProps.observedGeneration?.type).toBe('integer');
      expect(statusProps.conditions?.['x-kubernetes-list-type']).toBe('map');
      expect(statusProps.conditions?.['x-kubernetes-list-map-keys']).toEqual(['type']);
    });
  }

  it('cluster-scopes Machine and StorageTarget and namespaces the rest', () => {
    const scope = Object.fromEntries(KINDS.map((k) => [k.kind, k.scope]));
    expect(scope).toEqual({
      Machine: 'Cluster',
      StorageTarget: 'Cluster',
      RetentionPolicy: 'Namespaced',
      Dataset: 'Namespaced',
      Vector: 'Namespaced',
    });
  });

  it('defaults deletionPolicy to Retain wherever deletion could destroy data', () => {
    const vector = KINDS.find((k) => k.kind === 'Vector');
    const dataset = KINDS.find((k) => k.kind === 'Dataset');
    expect((vector?.spec.properties as unknown as Record<string, Node>).deletionPolicy?.default).toBe('Retain');
    expect((dataset?.spec.properties as unknown as Record<string, Node>).deletionPolicy?.default).toBe('Retain');
  });
});
