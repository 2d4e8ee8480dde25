import { isJsonObject, jsonEqual, type Json } from './types.ts';

type Step =
  | { kind: 'field'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'all' }
  | { kind: 'filter'; path: string[]; op: '==' | '!=' | 'exists'; value?: Json };

function parseLiteral(text: string): Json {
  const t = text.trim();
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'"))) return t.slice(1, -1);
  if (t === 'true' || t === 'false') return t === 'true';
  if (t !== '' && !Number.isNaN(Number(t))) return Number(t);
  return t;
}

/**
 * Parses the JSONPath subset that CRD printer columns use: `.a.b`, `['a']`, `[0]`, `[*]` and
 * `[?(@.type=="Ready")]`. Braces (`{.a}`) are accepted and ignored, as kubectl accepts both forms.
 */
export function parseJsonPath(expression: string): Step[] {
  let text = expression.trim();
  if (text.startsWith('{') && text.endsWith('}')) text = text.slice(1, -1);
  if (text.startsWith('$')) text = text.slice(1);
  const steps: Step[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '.') {
      i++;
      let name = '';
      while (i < text.length && text[i] !== '.' && text[i] !== '[') name += text[i++];
      if (name === '*') steps.push({ kind: 'all' });
      else if (name) steps.push({ kind: 'field', name });
    } else if (ch === '[') {
      const end = findClosingBracket(text, i);
      const inner = text.slice(i + 1, end).trim();
      i = end + 1;
      if (inner === '*') steps.push({ kind: 'all' });
      else if (/^-?\d+$/.test(inner)) steps.push({ kind: 'index', index: Number(inner) });
      else if (inner.startsWith('?(') && inner.endsWith(')')) steps.push(parseFilter(inner.slice(2, -1)));
      else steps.push({ kind: 'field', name: String(parseLiteral(inner)) });
    } else {
      let name = '';
      while (i < text.length && text[i] !== '.' && text[i] !== '[') name += text[i++];
      steps.push({ kind: 'field', name });
    }
  }
  return steps;
}

function findClosingBracket(text: string, open: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '[') depth++;
    else if (ch === ']' && --depth === 0) return i;
  }
  return text.length;
}

function parseFilter(text: string): Step {
  const m = /^@((?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*(.+)$/.exec(text.trim());
  if (m) return { kind: 'filter', path: m[1]!.slice(1).split('.'), op: m[2] as '==' | '!=', value: parseLiteral(m[3]!) };
  const exists = /^@((?:\.[A-Za-z0-9_-]+)+)$/.exec(text.trim());
  if (exists) return { kind: 'filter', path: exists[1]!.slice(1).split('.'), op: 'exists' };
  return { kind: 'filter', path: [], op: 'exists' };
}

function descend(value: Json | undefined, path: string[]): Json | undefined {
  let node = value;
  for (const key of path) node = isJsonObject(node) ? node[key] : undefined;
  return node;
}

/** Every value the path selects, in document order. */
export function evaluateJsonPath(steps: Step[], root: Json): Json[] {
  let current: Json[] = [root];
  for (const step of steps) {
    const next: Json[] = [];
    for (const node of current) {
      if (step.kind === 'field') {
        if (isJsonObject(node) && node[step.name] !== undefined) next.push(node[step.name]!);
      } else if (step.kind === 'index') {
        if (Array.isArray(node)) {
          const item = node[step.index < 0 ? node.length + step.index : step.index];
          if (item !== undefined) next.push(item);
        }
      } else if (step.kind === 'all') {
        if (Array.isArray(node)) next.push(...node);
        else if (isJsonObject(node)) next.push(...Object.values(node));
      } else if (Array.isArray(node)) {
        for (const item of node) {
          const actual = descend(item, step.path);
          if (step.op === 'exists' ? actual !== undefined : step.op === '==' ? jsonEqual(actual, step.value) : !jsonEqual(actual, step.value)) {
            next.push(item);
          }
        }
      }
    }
    current = next;
  }
  return current;
}
