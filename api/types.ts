/**
 * TypeScript types derived from the schemas, never written by hand. `…Spec` is what the API server returns
 * (defaults applied, so defaulted fields are present); `…SpecInput` is what a user may write.
 */
import type { FromSchema } from 'json-schema-to-ts';
import type { datasetSpec, datasetStatus } from './kinds/dataset.ts';
import type { machineSpec, machineStatus } from './kinds/machine.ts';
import type { retentionPolicySpec, retentionPolicyStatus } from './kinds/retention-policy.ts';
import type { storageTargetSpec, storageTargetStatus } from './kinds/storage-target.ts';
import type { vectorSpec, vectorStatus } from './kinds/vector.ts';
import type { conditions, schedule } from './schema-parts.ts';

type Input<S> = FromSchema<S & object, { keepDefaultedPropertiesOptional: true }>;

export type MachineSpec = FromSchema<typeof machineSpec>;
export type MachineSpecInput = Input<typeof machineSpec>;
export type MachineStatus = FromSchema<typeof machineStatus>;
export type StorageTargetSpec = FromSchema<typeof storageTargetSpec>;
export type StorageTargetStatus = FromSchema<typeof storageTargetStatus>;
export type RetentionPolicySpec = FromSchema<typeof retentionPolicySpec>;
export type RetentionPolicySpecInput = Input<typeof retentionPolicySpec>;
export type RetentionPolicyStatus = FromSchema<typeof retentionPolicyStatus>;
export type DatasetSpec = FromSchema<typeof datasetSpec>;
export type DatasetSpecInput = Input<typeof datasetSpec>;
export type DatasetStatus = FromSchema<typeof datasetStatus>;
export type VectorSpec = FromSchema<typeof vectorSpec>;
export type VectorSpecInput = Input<typeof vectorSpec>;
export type VectorStatus = FromSchema<typeof vectorStatus>;
export type Schedule = FromSchema<typeof schedule>;
export type Condition = FromSchema<typeof conditions>[number];

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: Array<{ apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }>;
}

export interface Resource<K extends string, Spec, Status> {
  apiVersion: 'bdr.dev/v1alpha1';
  kind: K;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

export type Machine = Resource<'Machine', MachineSpec, MachineStatus>;
export type StorageTarget = Resource<'StorageTarget', StorageTargetSpec, StorageTargetStatus>;
export type RetentionPolicy = Resource<'RetentionPolicy', RetentionPolicySpec, RetentionPolicyStatus>;
export type Dataset = Resource<'Dataset', DatasetSpec, DatasetStatus>;
export type Vector = Resource<'Vector', VectorSpec, VectorStatus>;
export type BdrResource = Machine | StorageTarget | RetentionPolicy | Dataset | Vector;
