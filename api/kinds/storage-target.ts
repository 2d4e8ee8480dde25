import { conditions, datasetName, OBJECT_NAME_PATTERN, SIZE_PATTERN, suspend } from '../schema-parts.ts';

export const storageTargetSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['machines', 'parentDataset'],
  properties: {
    machines: {
      type: 'array',
      minItems: 1,
      maxItems: 256,
      description: 'Storage machines that may receive replicas.',
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: OBJECT_NAME_PATTERN, maxLength: 253, description: 'A Machine with role Storage.' },
          weight: { type: 'integer', minimum: 0, maximum: 1000, default: 100, description: 'Relative preference when pairing; 0 takes no new vectors. MostFree compares weight × free bytes / (vectors + 1); FewestVectors compares (vectors + 1) / weight; RoundRobin gives a machine round(weight / smallest weight) consecutive turns.' },
        },
      },
    },
    parentDataset: {
      ...datasetName,
      description: 'Dataset on each storage machine under which replicas land, as PARENT/NAMESPACE/VECTOR unless a vector names its own.',
    },
    replicaQuota: {
      type: 'string',
      pattern: SIZE_PATTERN,
      maxLength: 19,
      description:
        "ZFS quota of each vector's replica dataset (the vector's own dataset below parentDataset), so one vector cannot fill a pool shared with others: digits with an optional K, M, G, T or P suffix, 1024-based, e.g. 500G. A receive that reaches it fails (DestinationFull). A Vector's spec.target.quota overrides it. Omitted: no quota.",
    },
    capacity: {
      type: 'object',
      additionalProperties: false,
      description: 'Pool allocation watermarks, in percent.',
      properties: {
        warningPercent: { type: 'integer', minimum: 1, maximum: 100, default: 80, description: 'Warn (condition CapacityOK=False) from here.' },
        criticalPercent: { type: 'integer', minimum: 1, maximum: 100, default: 90, description: 'Pair no new vectors to a machine from here.' },
      },
    },
    pairing: {
      type: 'object',
      additionalProperties: false,
      properties: {
        strategy: {
          type: 'string',
          enum: ['MostFree', 'FewestVectors', 'RoundRobin'],
          default: 'MostFree',
          description: 'How a new vector picks its machine: most free bytes, fewest vectors, or in turn (spec order). A paired vector keeps its machine until the machine leaves spec.machines.',
        },
      },
    },
    accessMode: {
      type: 'string',
      enum: ['ReadWrite', 'ReadOnly'],
      default: 'ReadWrite',
      description: 'ReadOnly keeps existing replicas but accepts no new streams (for migrations).',
    },
    suspend,
  },
} as const;

export const storageTargetStatus = {
  type: 'object',
  additionalProperties: false,
  properties: {
    observedGeneration: { type: 'integer', minimum: 0 },
    conditions,
    machines: {
      type: 'array',
      maxItems: 256,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', maxLength: 253 },
          sizeBytes: { type: 'integer', minimum: 0 },
          usedBytes: { type: 'integer', minimum: 0 },
          freeBytes: { type: 'integer', minimum: 0 },
          vectorCount: { type: 'integer', minimum: 0 },
        },
      },
    },
    roundRobin: {
      type: 'object',
      additionalProperties: false,
      description: 'RoundRobin pairing state: the machine paired last and how many pairings its current turn has had.',
      properties: {
        lastMachine: { type: 'string', maxLength: 253 },
        streak: { type: 'integer', minimum: 1 },
      },
    },
  },
} as const;

export const storageTargetKind = {
  kind: 'StorageTarget',
  plural: 'storagetargets',
  singular: 'storagetarget',
  shortNames: ['bst'],
  scope: 'Cluster',
  spec: storageTargetSpec,
  status: storageTargetStatus,
  printerColumns: [
    { name: 'Parent', type: 'string', jsonPath: '.spec.parentDataset' },
    { name: 'Strategy', type: 'string', jsonPath: '.spec.pairing.strategy' },
    { name: 'Access', type: 'string', jsonPath: '.spec.accessMode', priority: 1 },
  ],
} as const;
