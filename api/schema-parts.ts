/**
 * Building blocks shared by the five kinds' schemas. Every schema in api/ is written once, `as const`, with
 * `additionalProperties: false` on every object: `bdr validate` uses it as is (unknown fields are errors),
 * the CRD generator strips the `additionalProperties: false` that Kubernetes forbids (structural pruning does
 * that job there), and TypeScript types are derived from it with json-schema-to-ts.
 */
import { DATASET_NAME_PATTERN, MAX_ZFS_NAME_LENGTH, POOL_NAME_PATTERN } from './names.ts';

/** Go-style durations as Kubernetes users write them, plus days and weeks: `90s`, `15m`, `1h30m`, `7d`. */
export const DURATION_PATTERN = '^([0-9]+(ms|s|m|h|d|w))+$';
/** DNS-1123 subdomain, the rule for Kubernetes object names referenced from specs. */
export const OBJECT_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** DNS-1123 label: a namespace name. */
export const NAMESPACE_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** An absolute path of plain components; `.` and `..` components are refused by planning/tenancy.ts. */
export const MOUNTPOINT_PATTERN = '^(/[A-Za-z0-9_.:+-]+)+$';
/**
 * A size in bytes as people write it: digits with an optional K, M, G, T or P suffix, 1024-based ("500G").
 * No leading zero and no fraction, so every accepted string is one exact byte figure (planning/quota.ts).
 */
export const SIZE_PATTERN = '^[1-9][0-9]{0,17}[KMGTP]?$';
/** A size, or "none" for no limit at all. */
export const SIZE_OR_NONE_PATTERN = '^([1-9][0-9]{0,17}[KMGTP]?|none)$';
/** metav1.Condition reason. */
const REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';

export const duration = (description: string) =>
  ({ type: 'string', pattern: DURATION_PATTERN, maxLength: 64, description }) as const;

export const datasetName = {
  type: 'string',
  pattern: DATASET_NAME_PATTERN,
  minLength: 1,
  maxLength: MAX_ZFS_NAME_LENGTH,
} as const;

export const poolName = { type: 'string', pattern: POOL_NAME_PATTERN, minLength: 1, maxLength: MAX_ZFS_NAME_LENGTH } as const;

export const localObjectRef = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: OBJECT_NAME_PATTERN, maxLength: 253, description: 'Name of the referenced object.' },
  },
} as const;

/** When something runs: a fixed interval aligned to the epoch, or a cron expression in a time zone. */
export const schedule = {
  type: 'object',
  additionalProperties: false,
  description: 'When to run: set exactly one of interval or cron.',
  properties: {
    interval: duration('Run every interval, aligned to the Unix epoch so that restarts do not drift (e.g. 15m, 1h, 1d).'),
    cron: {
      type: 'string',
      maxLength: 128,
      description: 'Five-field cron expression or @hourly, @daily, @weekly, @monthly, @yearly.',
    },
    timeZone: {
      type: 'string',
      maxLength: 64,
      description: 'IANA time zone in which cron is evaluated (e.g. Europe/Berlin); UTC when omitted. Not used with interval.',
    },
  },
  oneOf: [{ required: ['interval'] }, { required: ['cron'] }],
} as const;

export const conditions = {
  type: 'array',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  description: 'Standard conditions: Ready always; Reconciling and Stalled while true; kind-specific ones beside.',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
    properties: {
      type: { type: 'string', maxLength: 316 },
      status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
      observedGeneration: { type: 'integer', minimum: 0 },
      lastTransitionTime: { type: 'string', format: 'date-time' },
      reason: { type: 'string', pattern: REASON_PATTERN, maxLength: 1024, minLength: 1 },
      message: { type: 'string', maxLength: 32768 },
    },
  },
} as const;

export const snapshotRef = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: { type: 'string', maxLength: 255 },
    guid: { type: 'string', maxLength: 32, description: 'ZFS guid, as a decimal string (it exceeds 2^53).' },
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

export const suspend = {
  type: 'boolean',
  default: false,
  description: 'Stop scheduling new work for this object; running work finishes.',
} as const;

export const deletionPolicy = (what: string) =>
  ({
    type: 'string',
    enum: ['Retain', 'Delete'],
    default: 'Retain',
    description: `What happens to ${what} when this object is deleted. Retain (the default) never destroys data.`,
  }) as const;

/** metav1.LabelSelector: every matchLabels pair and every expression must hold; `{}` matches everything. */
export const labelSelector = {
  type: 'object',
  additionalProperties: false,
  properties: {
    matchLabels: { type: 'object', maxProperties: 64, additionalProperties: { type: 'string', maxLength: 63 } },
    matchExpressions: {
      type: 'array',
      maxItems: 64,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', maxLength: 317 },
          operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 63 } },
        },
      },
    },
  },
} as const;
