import { datasetKind } from './dataset.ts';
import { machineKind } from './machine.ts';
import { retentionPolicyKind } from './retention-policy.ts';
import { storageTargetKind } from './storage-target.ts';
import { vectorKind } from './vector.ts';

export const GROUP = 'bdr.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** The five kinds, in dependency order: what a kind references is declared before it. */
export const KINDS = [machineKind, storageTargetKind, retentionPolicyKind, datasetKind, vectorKind] as const;

export type KindDefinition = (typeof KINDS)[number];
export type KindName = KindDefinition['kind'];

export function kindByName(kind: string): KindDefinition | undefined {
  return KINDS.find((k) => k.kind === kind);
}

export { datasetKind, machineKind, retentionPolicyKind, storageTargetKind, vectorKind };
