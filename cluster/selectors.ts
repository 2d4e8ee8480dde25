import { badRequest } from './errors.ts';

type LabelRequirement =
  | { op: 'exists' | 'notexists'; key: string }
  | { op: 'in' | 'notin'; key: string; values: Set<string> }
  | { op: '=' | '!='; key: string; value: string };

export type LabelSelector = (labels: Record<string, string> | undefined) => boolean;

const everything: LabelSelector = () => true;

/** Splits on commas that are not inside `in (…)` value lists. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

function parseLabelRequirement(text: string): LabelRequirement {
  const setMatch = /^([^\s!=()]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(text);
  if (setMatch) {
    const values = setMatch[3]!.split(',').map((v) => v.trim());
    return { op: setMatch[2] as 'in' | 'notin', key: setMatch[1]!, values: new Set(values) };
  }
  const eqMatch = /^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(text);
  if (eqMatch) {
    return { op: eqMatch[2] === '!=' ? '!=' : '=', key: eqMatch[1]!, value: eqMatch[3]! };
  }
  const existsMatch = /^(!?)\s*([^\s!=()]+)$/.exec(text);
  if (existsMatch) return { op: existsMatch[1] ? 'notexists' : 'exists', key: existsMatch[2]! };
  throw badRequest(`unable to parse requirement: found '${text}', expected: identifier or operator`);
}

function matchesRequirement(req: LabelRequirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, req.key);
  const value = labels[req.key];
  switch (req.op) {
    case 'exists':
      return has;
    case 'notexists':
      return !has;
    case '=':
      return has && value === req.value;
    case '!=':
      return !has || value !== req.value;
    case 'in':
      return has && req.values.has(value!);
    case 'notin':
      return !has || !req.values.has(value!);
  }
}

export function parseLabelSelector(text: string | null | undefined): LabelSelector {
  if (!text || !text.trim()) return everything;
  const requirements = splitTopLevel(text).map(parseLabelRequirement);
  return (labels) => requirements.every((r) => matchesRequirement(r, labels ?? {}));
}

export interface FieldRequirement {
  field: string;
  value: string;
  negate: boolean;
}

/** Reads one selectable field of an object; undefined means the field label is not supported. */
export type FieldGetter = (field: string) => string | undefined;
export type FieldSelector = (get: FieldGetter) => boolean;

function unescapeFieldValue(value: string): string {
  return value.replace(/\\(.)/g, '$1');
}

function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + text[i + 1];
      i++;
    } else if (ch === separator) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

export function parseFieldRequirements(text: string | null | undefined): FieldRequirement[] {
  if (!text || !text.trim()) return [];
  return splitUnescaped(text, ',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0)
    .map((part) => {
      const m = /^([^=!]+?)\s*(!=|==|=)\s*(.*)$/.exec(part);
      if (!m) throw badRequest(`invalid selector: '${text}'; can't understand '${part}'`);
      return { field: m[1]!.trim(), value: unescapeFieldValue(m[3]!.trim()), negate: m[2] === '!=' };
    });
}

/**
 * Builds a field selector after checking every field against the ones the resource supports, so that an
 * unsupported label fails the request (400) rather than silently matching nothing.
 */
export function parseFieldSelector(text: string | null | undefined, supported: ReadonlySet<string>): FieldSelector {
  const requirements = parseFieldRequirements(text);
  for (const r of requirements) {
    if (!supported.has(r.field)) throw badRequest(`field label not supported: ${r.field}`);
  }
  if (requirements.length === 0) return () => true;
  return (get) =>
    requirements.every((r) => {
      const actual = get(r.field) ?? '';
      return r.negate ? actual !== r.value : actual === r.value;
    });
}
