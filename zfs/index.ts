export { ZfsMachine } from './machine.ts';
export type {
  CommandOptions,
  DestroyResult,
  ReceiveOptions,
  SendOptions,
  SnapshotResult,
  TransferResult,
  ZfsPrograms,
} from './machine.ts';
export {
  relay,
  directTransfer,
  directTransferArgv,
  assertSshOptions,
  SSH_OPTION_ALLOWLIST,
  type RelayOptions,
  type DirectRoute,
} from './transfer.ts';
export { probeCapabilities, capabilitiesFromUsage, type ZfsCapabilities } from './capabilities.ts';
export {
  BDR_USER_PROPERTIES,
  INVENTORY_PROPERTIES,
  parseZfsGet,
  parseZpoolList,
  parseSize,
  type DatasetEntry,
  type DatasetType,
  type Inventory,
  type PoolEntry,
  type UserProperty,
} from './inventory.ts';
export { ZfsError, DestinationFull, receiveError, classifyStderr, asZfsError, type ZfsErrorKind } from './errors.ts';
export { assertHoldTag, assertUserProperty, assertUserPropertyValue, datasetOf } from './validate.ts';
export {
  enforceReplicaProperties,
  ensureReplicaQuota,
  replicaPolicyFor,
  replicaPropertiesSettled,
  replicaSpace,
  type ForeignClone,
  type ReplicaCheck,
  type ReplicaPropertyFix,
  type ReplicaSpace,
} from './replica.ts';
export { RECEIVED_MARK, REPLICA_PROPERTIES, REPLICA_PROPERTIES_WHERE_PRESENT, replicaPolicy, type ReplicaPolicy } from './replica-policy.ts';
