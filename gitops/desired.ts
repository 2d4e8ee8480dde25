/**
 * From a repository's checked documents to the objects bdr-up applies, the findings it reports and what it
 * must protect from pruning. Pure: the cluster's answer to "is this kind namespaced?" is passed in.
 */
import { relative, sep } from 'node:path';
import type { Finding } from './check.ts';
import type { Manifest } from './manifests.ts';
import { desiredObject, isJsonObject, looseKey, type DesiredObject, type JsonObject, type ObjectRef, type Protection } from './plan.ts';

export type Scope = 'Namespaced' | 'Cluster';

export interface DesiredInput {
  /** Repository root; sources are recorded relative to it, with forward slashes. */
  root: string;
  /** Every document that parsed (checked and unchecked). */
  manifests: readonly Manifest[];
  /** Documents that passed `checkManifests` (bdr kinds) or that it passed through (other kinds). */
  accepted: ReadonlySet<Manifest>;
  /** Files with a YAML syntax error, as read from disk (absolute or as loaded). */
  brokenFiles: readonly string[];
  /** The cluster's scope of a kind, or undefined when the cluster does not serve it. */
  scopeOf: (apiVersion: string, kind: string) => Scope | undefined;
  defaultNamespace?: string;
}

export interface DesiredResult {
  desired: DesiredObject[];
  /** Problems found here (unknown kinds, missing names, duplicates), in `check.ts`'s format. */
  findings: Finding[];
  protection: Protection;
}

export const repoPath = (root: string, file: string): string => relative(root, file).split(sep).join('/');

function identity(object: unknown): { apiVersion: string; kind: string; name: string } | undefined {
  if (!isJsonObject(object)) return undefined;
  const meta = object.metadata;
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string' || !isJsonObject(meta) || typeof meta.name !== 'string') return undefined;
  if (meta.name === '') return undefined;
  return { apiVersion: object.apiVersion, kind: object.kind, name: meta.name };
}

export function desiredFromManifests(input: DesiredInput): DesiredResult {
  const ns = input.defaultNamespace ?? 'default';
  const keys = new Set<string>();
  const files = new Set<string>(input.brokenFiles.map((f) => repoPath(input.root, f)));
  const findings: Finding[] = [];
  const desired: DesiredObject[] = [];
  const seen = new Map<string, DesiredObject>();

  for (const m of input.manifests) {
    const file = repoPath(input.root, m.file);
    const id = identity(m.object);
    if (!id) {
      // Without a kind and a name we cannot tell which applied object this document was: protect its file.
      files.add(file);
      if (input.accepted.has(m)) {
        findings.push({ file: m.file, line: m.lineOf(['metadata', 'name']), object: '', field: 'metadata.name', message: 'a name is required' });
      }
      continue;
    }
    if (!input.accepted.has(m)) {
      keys.add(looseKey(id));
      continue;
    }
    const scope = input.scopeOf(id.apiVersion, id.kind);
    if (scope === undefined) {
      keys.add(looseKey(id));
      findings.push({
        file: m.file,
        line: m.lineOf(['kind']),
        object: `${id.kind}/${id.name}`,
        field: 'kind',
        message: `the cluster does not serve kind ${id.kind} in ${id.apiVersion}`,
      });
      continue;
    }
    const meta = (m.object as JsonObject).metadata as JsonObject;
    const ref: ObjectRef = { ...id };
    if (scope === 'Namespaced') ref.namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : ns;
    const d = desiredObject(m.object as JsonObject, ref, { file, line: m.line });
    const first = seen.get(d.key);
    if (first) {
      keys.add(looseKey(id));
      findings.push({
        file: m.file,
        line: m.line,
        object: `${id.kind}/${id.name}`,
        field: '',
        message: `declared twice (first at ${first.source.file}:${first.source.line}); this one is skipped`,
      });
      continue;
    }
    seen.set(d.key, d);
    desired.push(d);
  }
  return { desired, findings, protection: { keys, files } };
}
