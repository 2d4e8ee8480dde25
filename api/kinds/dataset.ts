import { conditions, datasetName, deletionPolicy, localObjectRef, schedule, snapshotRef, suspend } from '../schema-parts.ts';

export const datasetSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['machineRef', 'name', 'schedule', 'retentionPolicyRef'],
  properties: {
    machineRef: { ...localObjectRef, description: 'The Machine the dataset lives on.' },
    name: { ...datasetName, description: 'Full ZFS dataset name, POOL/PATH (e.g. tank/vms/web01).' },
    schedule: { ...schedule, description: 'When to take a restore point (snapshot). Set exactly one of interval or cron.' },
    retentionPolicyRef: { ...localObjectRef, description: 'RetentionPolicy in this namespace that prunes local restore points.' },
    priority: {
      type: 'integer',
      minimum: 0,
      maximum: 1000,
      default: 100,
      description: 'Higher runs first when the machine\'s task slots are busy.',
    },
    managementPolicy: {
      type: 'string',
      enum: ['Adopt', 'Create'],
      default: 'Adopt',
      description: 'Adopt: the dataset must exist (a typo is reported, not created). Create: create it when missing.',
    },
    properties: {
      type: 'object',
      maxProperties: 64,
      description:
        'ZFS properties set on creation (Create only), e.g. compression: lz4. Only properties that cannot reach beyond the dataset are accepted ' +
        '(compression, recordsize, quota, atime, user properties module:name, …; see api/README.md); mountpoint only below the Machine\'s spec.mountpointRoot.',
      additionalProperties: { type: 'string', maxLength: 1024, pattern: '^[A-Za-z0-9_.:=,/+-]*$' },
    },
    suspend,
    deletionPolicy: deletionPolicy("bdr's restore points of this dataset"),
  },
} as const;

export const datasetStatus = {
  type: 'object',
  additionalProperties: false,
  properties: {
    observedGeneration: { type: 'integer', minimum: 0 },
    conditions,
    restorePoints: {
      type: 'object',
      additionalProperties: false,
      properties: {
        count: { type: 'integer', minimum: 0 },
        newest: snapshotRef,
        oldest: snapshotRef,
      },
    },
    usedBytes: { type: 'integer', minimum: 0 },
    usedBySnapshotsBytes: { type: 'integer', minimum: 0 },
    lastSnapshotTime: { type: 'string', format: 'date-time' },
    nextSnapshotTime: { type: 'string', format: 'date-time' },
  },
} as const;

export const datasetKind = {
  kind: 'Dataset',
  plural: 'datasets',
  singular: 'dataset',
  shortNames: ['bds'],
  scope: 'Namespaced',
  spec: datasetSpec,
  status: datasetStatus,
  printerColumns: [
    { name: 'Machine', type: 'string', jsonPath: '.spec.machineRef.name' },
    { name: 'ZFS', type: 'string', jsonPath: '.spec.name' },
    { name: 'Points', type: 'integer', jsonPath: '.status.restorePoints.count' },
    { name: 'Newest', type: 'date', jsonPath: '.status.restorePoints.newest.createdAt' },
    { name: 'Next', type: 'date', jsonPath: '.status.nextSnapshotTime', priority: 1 },
  ],
} as const;
