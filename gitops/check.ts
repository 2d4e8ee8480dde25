/**
 * The whole check of a set of manifests: YAML syntax, each bdr object against its schema and per-object rules,
 * then the rules across objects. Every finding is one line, `file:line: Kind/name: field: message`.
 */
import { checkConsistency } from '../api/consistency.ts';
import { validateObjectSemantics } from '../api/semantics.ts';
import { formatPath, isBdrObject, validateObjectSchema, type FieldPath } from '../api/validation.ts';
import { loadManifests, type Manifest } from './manifests.ts';

export interface Finding {
  file: string;
  line: number;
  /** Kind/name, or empty when the document has no identity yet. */
  object: string;
  field: string;
  message: string;
}

export interface CheckResult {
  files: string[];
  /** bdr objects that passed every per-object check. */
  valid: Manifest[];
  /** Documents of other kinds (Secret, Namespace, …), passed through unchecked. */
  foreign: Manifest[];
  findings: Finding[];
}

export const formatFinding = (f: Finding): string =>
  `${f.file}:${f.line}: ${f.object ? `${f.object}: ` : ''}${f.field ? `${f.field}: ` : ''}${f.message}`;

/** Kind/name, as findings name an object (the file already says which namespace it declares). */
function identity(obj: unknown): string {
  const o = (obj ?? {}) as Record<string, unknown>;
  if (typeof o.kind !== 'string') return '';
  const name = (o.metadata as Record<string, unknown> | undefined)?.name;
  return `${o.kind}/${typeof name === 'string' ? name : '(unnamed)'}`;
}

const hasName = (obj: unknown): boolean =>
  typeof ((obj as Record<string, unknown>).metadata as Record<string, unknown> | undefined)?.name === 'string';

export function checkManifests(manifests: readonly Manifest[], defaultNamespace = 'default'): Omit<CheckResult, 'files'> {
  const findings: Finding[] = [];
  const valid: Manifest[] = [];
  const foreign: Manifest[] = [];
  const named: Manifest[] = [];
  const at = (m: Manifest, path: FieldPath, message: string): Finding => ({
    file: m.file,
    line: m.lineOf(path),
    object: identity(m.object),
    field: path.length === 0 ? '' : formatPath(path),
    message,
  });

  for (const m of manifests) {
    if (!isBdrObject(m.object)) {
      const o = m.object as Record<string, unknown> | null;
      if (o === null || typeof o !== 'object' || typeof o.kind !== 'string' || typeof o.apiVersion !== 'string') {
        findings.push({ file: m.file, line: m.line, object: '', field: '', message: 'not a Kubernetes object: apiVersion and kind are required' });
      } else foreign.push(m);
      continue;
    }
    // Both passes run, so that one round of fixes clears every problem of the object.
    const issues = [...validateObjectSchema(m.object), ...validateObjectSemantics(m.object as Record<string, unknown>)];
    const fields = new Set<string>();
    for (const i of issues) {
      const field = formatPath(i.path);
      if (fields.has(field)) continue;
      fields.add(field);
      findings.push(at(m, i.path, i.message));
    }
    if (issues.length === 0) valid.push(m);
    if (hasName(m.object)) named.push(m);
  }

  // An object with a bad field still exists for the rules across objects, so a typo in one Dataset does not
  // also surface as "not declared" in every Vector that references it.
  const cross = checkConsistency(
    named.map((m) => ({ obj: m.object as Record<string, unknown>, ref: m })),
    (m) => `${m.file}:${m.line}`,
    defaultNamespace,
  );
  for (const c of cross) findings.push(at(c.ref, c.path, c.message));
  findings.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  return { valid: valid.filter((m) => !cross.some((c) => c.ref === m)), foreign, findings };
}

export async function checkPaths(paths: readonly string[], defaultNamespace = 'default'): Promise<CheckResult> {
  const loaded = await loadManifests(paths);
  const result = checkManifests(loaded.manifests, defaultNamespace);
  const parseFindings = loaded.problems.map((p) => ({ file: p.file, line: p.line, object: '', field: '', message: p.message }));
  return { ...result, files: loaded.files, findings: [...parseFindings, ...result.findings] };
}
