import { conditions, datasetName, deletionPolicy, duration, localObjectRef, schedule, SIZE_OR_NONE_PATTERN, SIZE_PATTERN, snapshotRef, suspend } from '../schema-parts.ts';

export const vectorSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['source', 'target'],
  properties: {
    source: {
      type: 'object',
      additionalProperties: false,
      description: 'What to replicate: a Dataset, or the replica another Vector maintains (to mirror on). Set exactly one.',
      properties: {
        datasetRef: { ...localObjectRef, description: 'A Dataset in this namespace.' },
        vectorRef: { ...localObjectRef, description: 'A Vector in this namespace whose replica is replicated further.' },
      },
      oneOf: [{ required: ['datasetRef'] }, { required: ['vectorRef'] }],
    },
    target: {
      type: 'object',
      additionalProperties: false,
      description: 'Where the replica lands: a StorageTarget (bdr pairs a machine) or one Machine. Set exactly one.',
      properties: {
        storageTargetRef: { ...localObjectRef, description: 'A StorageTarget; bdr picks the machine by its pairing strategy.' },
        machineRef: { ...localObjectRef, description: 'A Machine that receives the replica directly.' },
        dataset: {
          ...datasetName,
          description: 'Replica dataset. Required with machineRef; with storageTargetRef it defaults to PARENT/NAMESPACE/VECTOR.',
        },
        quota: {
          type: 'string',
          pattern: SIZE_OR_NONE_PATTERN,
          maxLength: 19,
          description:
            "ZFS quota of the replica dataset, overriding the StorageTarget's replicaQuota: digits with an optional K, M, G, T or P suffix, 1024-based (e.g. 200G), or none for no quota. Omitted: the StorageTarget's replicaQuota, else no quota.",
        },
      },
      oneOf: [{ required: ['storageTargetRef'] }, { required: ['machineRef', 'dataset'] }],
    },
    schedule: {
      ...schedule,
      description: 'When to replicate. Omit to send after every new restore point of the source.',
    },
    retentionPolicyRef: {
      ...localObjectRef,
      description: "RetentionPolicy applied on the target; only the restore points it keeps are sent. Defaults to the source's.",
    },
    rpo: duration('Recovery point objective: the newest replica older than this sets InSync=False and fires an alert.'),
    transport: {
      type: 'object',
      additionalProperties: false,
      properties: {
        type: { type: 'string', enum: ['SSH'], default: 'SSH' },
        mode: {
          type: 'string',
          enum: ['Direct', 'Relay'],
          default: 'Direct',
          description:
            "Direct: the primary's own OpenSSH sends to the storage machine with the vector key (the stream never passes through bdr). Relay: through bdr's connections to both machines, for a primary that cannot reach the storage machine.",
        },
        compressed: { type: 'boolean', default: true, description: 'Send compressed blocks as stored (zfs send -c) where supported.' },
        raw: { type: 'boolean', default: false, description: 'Send encrypted datasets raw (zfs send -w): the target never sees the key.' },
        largeBlocks: { type: 'boolean', default: true, description: 'zfs send -L where supported.' },
        resumable: { type: 'boolean', default: true, description: 'Receive with -s where both machines support it (OpenZFS): an interrupted stream is continued with zfs send -t when its token brings exactly the next step; otherwise (and on zfs-fuse) the step is sent again from its held base.' },
        stallTimeout: {
          ...duration('A stream that moves no byte for this long is ended and the run retried with backoff (at least 10s).'),
          default: '5m',
        },
        syncTimeout: {
          ...duration(
            'The longest one sync run may take once it holds both transfer slots (listing, every stream, holds, prunes; at least 1m). A run past it is ended (reason SyncTimedOut) and retried with backoff; nothing partial is kept. Raise it for an initial copy expected to take longer.',
          ),
          default: '24h',
        },
        bandwidthLimit: {
          type: 'string',
          pattern: SIZE_PATTERN,
          maxLength: 19,
          description:
            'Most bytes per second the stream may use: digits with an optional K, M, G, T or P suffix, 1024-based (10M = 10 MiB/s). Applied on the sending machine with pv (Direct, and a local pipe: the Vector refuses to send unthrottled where pv is missing) or in bdr (Relay). Unlimited when omitted.',
        },
      },
    },
    keyRotation: {
      type: 'object',
      additionalProperties: false,
      properties: {
        interval: { ...duration('Replace the vector\'s SSH key this often.'), default: '720h' },
      },
    },
    suspend,
    deletionPolicy: deletionPolicy('the replica on the target'),
  },
} as const;

export const vectorStatus = {
  type: 'object',
  additionalProperties: false,
  properties: {
    observedGeneration: { type: 'integer', minimum: 0 },
    conditions,
    pairing: {
      type: 'object',
      additionalProperties: false,
      properties: {
        machine: { type: 'string', maxLength: 253 },
        dataset: { type: 'string', maxLength: 255 },
        keyFingerprint: { type: 'string', maxLength: 128 },
        authorizedAt: { type: 'string', format: 'date-time' },
        quotaBytes: { type: 'integer', minimum: 1, description: 'The quota set on the replica dataset, in bytes; absent when it has none.' },
        from: {
          type: 'string',
          maxLength: 8192,
          description: "The from= patterns the key is authorized with, comma-separated: the primary's spec.outboundAddresses, or else the address the primary reaches the storage machine from; empty when neither is known (the key is accepted from anywhere).",
        },
      },
    },
    lastSyncedSnapshot: snapshotRef,
    commonSnapshot: snapshotRef,
    lastSyncTime: { type: 'string', format: 'date-time' },
    nextSyncTime: { type: 'string', format: 'date-time' },
    lastSyncBytes: { type: 'integer', minimum: 0 },
    lastSyncDuration: { type: 'string', maxLength: 32, description: 'How long the last successful sync took, e.g. "12.3s".' },
    lastHandledSyncRequest: {
      type: 'string',
      maxLength: 256,
      description: 'The value of the bdr.dev/sync-requested annotation the last run answered (as Flux echoes reconcile.fluxcd.io/requestedAt).',
    },
    consecutiveFailures: { type: 'integer', minimum: 0 },
    transport: {
      type: 'object',
      additionalProperties: false,
      description:
        'How the last successful run sent: its path (Direct, Relay, or LocalPipe when both ends are one machine), the stream flags it used (those of spec.transport that both machines support), and each one asked for but not available, with why.',
      properties: {
        mode: { type: 'string', enum: ['Direct', 'Relay', 'LocalPipe'] },
        flags: { type: 'array', maxItems: 4, items: { type: 'string', enum: ['compressed', 'raw', 'largeBlocks', 'resumable'] } },
        unavailable: { type: 'array', maxItems: 4, items: { type: 'string', maxLength: 256 } },
      },
    },
    transfer: {
      type: 'object',
      additionalProperties: false,
      description: 'The transfer in progress, if any.',
      properties: {
        step: { type: 'string', maxLength: 600, description: 'Which stream of the run this is and what it sends, e.g. "2 of 3: -i bdr-20260101T000000Z → bdr-20260102T000000Z".' },
        snapshot: { type: 'string', maxLength: 255 },
        startedAt: { type: 'string', format: 'date-time' },
        bytes: { type: 'integer', minimum: 0 },
      },
    },
  },
} as const;

export const vectorKind = {
  kind: 'Vector',
  plural: 'vectors',
  singular: 'vector',
  shortNames: ['bv'],
  scope: 'Namespaced',
  spec: vectorSpec,
  status: vectorStatus,
  printerColumns: [
    { name: 'Source', type: 'string', jsonPath: '.spec.source.datasetRef.name' },
    { name: 'Target', type: 'string', jsonPath: '.status.pairing.machine' },
    { name: 'Last Sync', type: 'date', jsonPath: '.status.lastSyncTime' },
    { name: 'RPO', type: 'string', jsonPath: '.spec.rpo', priority: 1 },
  ],
} as const;
