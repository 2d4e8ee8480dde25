/**
 * manifests/monitoring/prometheus-rule.yaml is generated from bdr.rules.yaml, the single source of the alerts:
 * `npx tsx test/monitoring/rules.ts --write` regenerates it; rules.test.ts fails while the two differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const MONITORING = fileURLToPath(new URL('../../manifests/monitoring/', import.meta.url));
export const RULES_FILE = join(MONITORING, 'bdr.rules.yaml');
export const PROMETHEUS_RULE_FILE = join(MONITORING, 'prometheus-rule.yaml');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export function ruleGroups(): RuleGroup[] {
  return (parse(readFileSync(RULES_FILE, 'utf8')) as { groups: RuleGroup[] }).groups;
}

/**
 * Writes bdr.rules.yaml to `path` with the `for` of the named alerts replaced: end-to-end tests cannot wait the
 * production 5 or 10 minutes, and the expressions they prove stay the production ones.
 */
export function writeRulesWithFor(path: string, forOf: Record<string, string>): string {
  const groups = ruleGroups();
  for (const g of groups) for (const r of g.rules) if (forOf[r.alert] !== undefined) r.for = forOf[r.alert];
  writeFileSync(path, stringify({ groups }));
  return path;
}

export function prometheusRuleText(groups: RuleGroup[] = ruleGroups()): string {
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'bdr',
      namespace: 'bdr-system',
      labels: { 'app.kubernetes.io/name': 'bdr', 'app.kubernetes.io/component': 'monitoring' },
    },
    spec: { groups },
  };
  return `# Generated from bdr.rules.yaml by \`npx tsx test/monitoring/rules.ts --write\`: edit that file, not this one.\n${stringify(rule, { lineWidth: 0 })}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--write')) {
  writeFileSync(PROMETHEUS_RULE_FILE, prometheusRuleText());
  process.stdout.write(`wrote ${PROMETHEUS_RULE_FILE}\n`);
}
