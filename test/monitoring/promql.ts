/**
 * The metric names a PromQL expression reads, so that tests can refuse a rule or a panel that names a metric
 * bdr does not export. A small lexer rather than a parser: it drops strings, label matchers, ranges and
 * grouping clauses, and keeps identifiers that are neither functions, keywords nor numbers.
 */
const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);
const AGGREGATION_CLAUSE = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;

export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(AGGREGATION_CLAUSE, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const name = m[0];
    const after = stripped.slice((m.index ?? 0) + name.length);
    if (/^\s*\(/.test(after)) continue; // a function or an aggregation
    if (KEYWORDS.has(name.toLowerCase())) continue;
    const before = stripped.slice(0, m.index ?? 0);
    if (/[0-9.]$/.test(before)) continue; // the tail of a number or duration: 1e3, offset 5m
    names.add(name);
  }
  return [...names];
}
