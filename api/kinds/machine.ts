import { DATASET_ROOT_PATTERN, MAX_ZFS_NAME_LENGTH } from '../names.ts';
import { conditions, duration, labelSelector, localObjectRef, MOUNTPOINT_PATTERN, NAMESPACE_PATTERN, OBJECT_NAME_PATTERN, poolName, SIZE_PATTERN, suspend } from '../schema-parts.ts';

/** OpenSSH public key types bdr accepts as a pinned host key. */
export const HOST_KEY_PATTERN =
  '^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}$';
/** A hostname or an IPv4/IPv6 literal: nothing an SSH client could read as an option. */
export const HOST_PATTERN = '^([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$|^[0-9A-Fa-f:.]+$';
export const USER_PATTERN = '^[a-z_][a-z0-9_-]{0,31}$';
/** An absolute path whose components are plain names (".ssh" is fine, "." and ".." are not): RE2-compatible. */
export const ABSOLUTE_PATH_PATTERN = '^(/([A-Za-z0-9_+~-][A-Za-z0-9_.+~-]*|\\.[A-Za-z0-9_+~-][A-Za-z0-9_.+~-]*|\\.\\.[A-Za-z0-9_.+~-]+))+$';
const absolutePath = (description: string, byDefault: string) =>
  ({ type: 'string', pattern: ABSOLUTE_PATH_PATTERN, maxLength: 1024, default: byDefault, description }) as const;

export const machineSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['connection'],
  properties: {
    connection: {
      type: 'object',
      additionalProperties: false,
      description: 'How bdr reaches this machine: on the host bdr runs on (local) or over SSH with a pinned host key.',
      required: ['type'],
      properties: {
        type: { type: 'string', enum: ['local', 'ssh'], description: 'local: run commands where bdr runs; ssh: over SSH.' },
        host: { type: 'string', pattern: HOST_PATTERN, maxLength: 253, description: 'Hostname or IP address (ssh).' },
        port: { type: 'integer', minimum: 1, maximum: 65535, default: 22, description: 'SSH port.' },
        user: { type: 'string', pattern: USER_PATTERN, default: 'root', description: 'SSH user.' },
        hostKey: {
          type: 'string',
          pattern: HOST_KEY_PATTERN,
          maxLength: 16384,
          description: 'The pinned host public key, "TYPE BASE64" (from `ssh-keyscan -t ed25519 HOST`). A mismatch stops bdr before any command runs.',
        },
        privateKeySecretRef: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          description: 'Secret holding the private key bdr logs in with.',
          properties: {
            name: { type: 'string', pattern: OBJECT_NAME_PATTERN, maxLength: 253 },
            namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63, default: 'bdr-system' },
            key: { type: 'string', pattern: '^[-._a-zA-Z0-9]+$', maxLength: 253, default: 'ssh-privatekey' },
          },
        },
        connectTimeout: { ...duration('Give up connecting after this long.'), default: '10s' },
      },
    },
    outboundAddresses: {
      type: 'array',
      maxItems: 32,
      items: { type: 'string', minLength: 1, maxLength: 255 },
      description:
        'Addresses this machine connects out from, as sshd from= patterns (an address, a CIDR block such as 10.0.0.0/24, or a host pattern; "!" negates). When set, every vector key it holds as a primary is authorized on the storage machine with from="…", so the key is refused from anywhere else. Omitted: no from= restriction.',
    },
    role: {
      type: 'string',
      enum: ['Source', 'Aggregator', 'Storage'],
      default: 'Source',
      description: 'Source: a protected server; Aggregator: collects backups on site; Storage: receives replicas off site.',
    },
    slots: {
      type: 'object',
      additionalProperties: false,
      description: 'How many tasks run at once on this machine, per kind of work.',
      properties: {
        zfs: { type: 'integer', minimum: 1, maximum: 64, default: 2, description: 'Concurrent ZFS operations (snapshot, destroy, hold).' },
        transfer: { type: 'integer', minimum: 1, maximum: 64, default: 1, description: 'Concurrent send/receive streams.' },
      },
    },
    pools: {
      type: 'array',
      maxItems: 64,
      items: poolName,
      description: 'Only these pools are reported and used; empty means all.',
    },
    probeInterval: { ...duration('How often bdr checks the machine and its pools.'), default: '5m' },
    paths: {
      type: 'object',
      additionalProperties: false,
      description: "Where bdr keeps vector files on this machine; the defaults suit SSH as root on Linux.",
      properties: {
        authorizedKeys: absolutePath(
          'Storage: the authorized_keys file sshd reads for spec.connection.user, where vector keys are authorized.',
          '/root/.ssh/authorized_keys',
        ),
        guard: absolutePath('Storage: where bdr installs the forced-command guard that vector keys run.', '/usr/local/libexec/bdr/zfs-guard'),
        vectorKeys: absolutePath(
          "Primary: directory of each vector's private key and known_hosts, as DIR/NAMESPACE/VECTOR/.",
          '/var/lib/bdr/vectors',
        ),
      },
    },
    allowedNamespaces: {
      type: 'object',
      additionalProperties: false,
      description:
        'Namespaces whose Datasets and Vectors may use this machine: those listed in names, plus those whose labels match selector. ' +
        'Omitted or empty: none may (bdr runs commands here as root, so access is granted, never assumed). `selector: {}` allows every namespace.',
      properties: {
        names: {
          type: 'array',
          maxItems: 1024,
          description: 'Namespace names.',
          items: { type: 'string', pattern: NAMESPACE_PATTERN, maxLength: 63 },
        },
        selector: { ...labelSelector, description: "A label selector on the Namespace object (also matches kubernetes.io/metadata.name, which Kubernetes sets to the namespace's name)." },
      },
    },
    datasetRoots: {
      type: 'array',
      maxItems: 256,
      description:
        'Where the allowed namespaces\' datasets may lie on this machine: Dataset names, Vector replicas (machineRef) and restores. ' +
        'A root ending in {namespace} gives each namespace its own (tank/{namespace} gives namespace web tank/web); a fixed root names its one namespace. ' +
        '{pool} as the first component stands for each pool in spec.pools (any pool when that is empty). Omitted: {pool}/{namespace}. ' +
        "A StorageTarget listing the machine also gives each namespace PARENT/<namespace>/ there. Paths that overlap another namespace's root are refused whatever grants them.",
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['root'],
        properties: {
          root: { type: 'string', pattern: DATASET_ROOT_PATTERN, maxLength: MAX_ZFS_NAME_LENGTH, description: 'A dataset name, or a template ending in /{namespace}; may start with {pool}.' },
          namespace: { type: 'string', pattern: NAMESPACE_PATTERN, maxLength: 63, description: 'The one namespace a fixed root (no {namespace}) belongs to.' },
        },
      },
    },
    replicaQuota: {
      type: 'string',
      pattern: SIZE_PATTERN,
      maxLength: 19,
      description:
        "Storage machines: the largest quota a Vector's replica dataset on this machine may have, when no StorageTarget sets one (a Vector targeting it with machineRef). Digits with an optional K, M, G, T or P suffix, 1024-based. A Vector may ask for less, never more or none.",
    },
    mountpointRoot: {
      type: 'string',
      pattern: MOUNTPOINT_PATTERN,
      maxLength: 1024,
      description:
        'Absolute directory under which a Dataset may set its mountpoint property (e.g. /srv/tenants). Omitted: no Dataset may set mountpoint.',
    },
    suspend: {
      ...suspend,
      description: 'Pause this machine: no probe, and no command for any Dataset or Vector on it (their condition Suspended=True). Running work finishes.',
    },
  },
} as const;

export const machineStatus = {
  type: 'object',
  additionalProperties: false,
  properties: {
    observedGeneration: { type: 'integer', minimum: 0 },
    conditions,
    hostKeyFingerprint: { type: 'string', maxLength: 128, description: 'SHA256 fingerprint of the verified host key.' },
    zfs: {
      type: 'object',
      additionalProperties: false,
      properties: {
        implementation: {
          type: 'string',
          enum: ['OpenZFS', 'Legacy'],
          description: 'OpenZFS (answers `zfs version`), or Legacy: zfs-fuse or ZFS on Linux before 0.8.',
        },
        version: { type: 'string', maxLength: 64 },
        capabilities: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } },
      },
    },
    pools: {
      type: 'array',
      maxItems: 256,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', maxLength: 255 },
          health: { type: 'string', maxLength: 32 },
          sizeBytes: { type: 'integer', minimum: 0 },
          allocatedBytes: { type: 'integer', minimum: 0 },
          freeBytes: { type: 'integer', minimum: 0 },
        },
      },
    },
    lastProbeTime: {
      type: 'string',
      format: 'date-time',
      description: 'When bdr last probed the machine; refreshed with every status change and at least every tenth probe, so an idle machine costs one write per ten probes.',
    },
  },
} as const;

export const machineKind = {
  kind: 'Machine',
  plural: 'machines',
  singular: 'machine',
  shortNames: ['bm', 'bdrmachine'],
  scope: 'Cluster',
  spec: machineSpec,
  status: machineStatus,
  printerColumns: [
    { name: 'Role', type: 'string', jsonPath: '.spec.role' },
    { name: 'Host', type: 'string', jsonPath: '.spec.connection.host' },
    { name: 'ZFS', type: 'string', jsonPath: '.status.zfs.version', priority: 1 },
  ],
} as const;

export { localObjectRef };
