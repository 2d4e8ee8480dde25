/**
 * manifests/argocd/argocd-cm-patch.yaml is generated from health.lua, the one script for all five kinds:
 * `npx tsx test/argocd/health.ts --write` regenerates it; health.test.ts fails while they differ.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const ARGOCD = fileURLToPath(new URL('../../manifests/argocd/', import.meta.url));
export const HEALTH_LUA = join(ARGOCD, 'health.lua');
export const PATCH_FILE = join(ARGOCD, 'argocd-cm-patch.yaml');
export const KINDS = ['Machine', 'StorageTarget', 'RetentionPolicy', 'Dataset', 'Vector'] as const;
export const healthKey = (kind: string) => `resource.customizations.health.bdr.dev_${kind}`;

export function patchText(script: string = readFileSync(HEALTH_LUA, 'utf8')): string {
  const data = Object.fromEntries(KINDS.map((k) => [healthKey(k), script]));
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'argocd-cm', namespace: 'argocd' }, data };
  return `# Generated from health.lua by \`npx tsx test/argocd/health.ts --write\`: edit that file, not this one.\n# kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm-patch.yaml\n${stringify(cm, { lineWidth: 0 })}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv.includes('--write')) {
  writeFileSync(PATCH_FILE, patchText());
  process.stdout.write(`wrote ${PATCH_FILE}\n`);
}
