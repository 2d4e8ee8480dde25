/**
 * Reads the YAML manifests of a GitOps repository with their source positions, so that every finding can be
 * reported as file:line. Multi-document files are split; kustomization files and hidden directories are skipped.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml';
import type { FieldPath } from '../api/validation.ts';

export interface Manifest {
  file: string;
  /** 1-based line where the document starts. */
  line: number;
  /** The document as plain data. */
  object: unknown;
  /** The 1-based line of a field, or of its nearest written ancestor when the field is missing. */
  lineOf(path: FieldPath): number;
}

export interface ParseProblem {
  file: string;
  line: number;
  message: string;
}

export interface LoadResult {
  files: string[];
  manifests: Manifest[];
  problems: ParseProblem[];
}

const YAML_FILE = /\.ya?ml$/i;
const SKIPPED_FILE = /^kustomization\.ya?ml$/i;

async function collect(path: string, out: string[]): Promise<void> {
  const info = await stat(path);
  if (!info.isDirectory()) {
    out.push(path);
    return;
  }
  const entries = (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (e.name.startsWith('.') || e.name === 'node_modules') continue;
    const child = join(path, e.name);
    if (e.isDirectory()) await collect(child, out);
    else if (YAML_FILE.test(e.name) && !SKIPPED_FILE.test(e.name)) out.push(child);
  }
}

/** Every YAML file under the given paths (files are taken as given, directories walked), sorted, deduplicated. */
export async function findManifestFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) await collect(p, out);
  return [...new Set(out)];
}

function lineLocator(doc: Document, counter: LineCounter, docLine: number): (path: FieldPath) => number {
  const lineAt = (offset: number | undefined) => (offset === undefined ? docLine : counter.linePos(offset).line);
  return (path) => {
    let node: unknown = doc.contents;
    let line = lineAt((doc.contents as Node | null)?.range?.[0]);
    for (let i = 0; i < path.length; i++) {
      const step = path[i];
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(step));
        if (!pair) return line;
        line = lineAt((pair.key as Node).range?.[0]);
        if (i === path.length - 1) return line;
        node = pair.value;
      } else if (isSeq(node) && typeof step === 'number') {
        const item = node.items[step] as Node | undefined;
        if (!item) return line;
        line = lineAt(item.range?.[0]);
        node = item;
      } else {
        return line;
      }
    }
    return line;
  };
}

/** Parses one file's text; syntax errors become problems with their line, valid documents become manifests. */
export function parseManifests(file: string, text: string): { manifests: Manifest[]; problems: ParseProblem[] } {
  const counter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  const manifests: Manifest[] = [];
  const problems: ParseProblem[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    const startOffset = (doc.contents as Node | null)?.range?.[0] ?? doc.range?.[0] ?? 0;
    const line = counter.linePos(startOffset).line;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const at = e.linePos?.[0]?.line ?? counter.linePos(e.pos[0]).line;
        problems.push({ file, line: at, message: `YAML syntax: ${e.message.split('\n')[0]}` });
      }
      continue;
    }
    if (doc.contents === null) continue;
    manifests.push({ file, line, object: doc.toJS({ maxAliasCount: 100 }), lineOf: lineLocator(doc, counter, line) });
  }
  return { manifests, problems };
}

export async function loadManifests(paths: readonly string[]): Promise<LoadResult> {
  const files = await findManifestFiles(paths);
  const manifests: Manifest[] = [];
  const problems: ParseProblem[] = [];
  for (const file of files) {
    const parsed = parseManifests(file, await readFile(file, 'utf8'));
    manifests.push(...parsed.manifests);
    problems.push(...parsed.problems);
  }
  return { files, manifests, problems };
}
