import { conditions } from '../schema-parts.ts';

const count = (description: string) => ({ type: 'integer', minimum: 0, maximum: 100000, description }) as const;

export const retentionPolicySpec = {
  type: 'object',
  additionalProperties: false,
  properties: {
    keepLast: count('Keep the N newest restore points whatever their age.'),
    hourly: count('Keep the newest restore point of each of the N most recent hours that have one.'),
    daily: count('Keep the newest restore point of each of the N most recent days that have one.'),
    weekly: count('Keep the newest restore point of each of the N most recent ISO weeks (Monday first) that have one.'),
    monthly: count('Keep the newest restore point of each of the N most recent calendar months that have one.'),
    yearly: count('Keep the newest restore point of each of the N most recent calendar years that have one.'),
    timeZone: {
      type: 'string',
      maxLength: 64,
      default: 'UTC',
      description: 'IANA time zone whose calendar the hourly…yearly buckets follow (e.g. Europe/Berlin).',
    },
    maxRolling: {
      type: 'object',
      additionalProperties: false,
      required: ['capacityPercent'],
      description: 'Maximum rolling: when the pool fills up, thin out intermediate restore points, oldest and densest first, never the newest.',
      properties: {
        capacityPercent: { type: 'integer', minimum: 1, maximum: 100, description: 'Pool allocation (percent) from which thinning starts.' },
      },
    },
    maxSnapshots: {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      description: 'Hard cap on bdr restore points per dataset, so an outage cannot pile snapshots up.',
    },
  },
} as const;

export const retentionPolicyStatus = {
  type: 'object',
  additionalProperties: false,
  properties: {
    observedGeneration: { type: 'integer', minimum: 0 },
    conditions,
    usedBy: {
      type: 'object',
      additionalProperties: false,
      properties: {
        datasets: { type: 'array', maxItems: 10000, items: { type: 'string', maxLength: 253 } },
        vectors: { type: 'array', maxItems: 10000, items: { type: 'string', maxLength: 253 } },
      },
    },
  },
} as const;

export const retentionPolicyKind = {
  kind: 'RetentionPolicy',
  plural: 'retentionpolicies',
  singular: 'retentionpolicy',
  shortNames: ['brp'],
  scope: 'Namespaced',
  spec: retentionPolicySpec,
  status: retentionPolicyStatus,
  printerColumns: [
    { name: 'Last', type: 'integer', jsonPath: '.spec.keepLast' },
    { name: 'Hourly', type: 'integer', jsonPath: '.spec.hourly' },
    { name: 'Daily', type: 'integer', jsonPath: '.spec.daily' },
    { name: 'Weekly', type: 'integer', jsonPath: '.spec.weekly' },
    { name: 'Monthly', type: 'integer', jsonPath: '.spec.monthly' },
    { name: 'Yearly', type: 'integer', jsonPath: '.spec.yearly', priority: 1 },
  ],
} as const;
