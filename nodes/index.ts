export type { ExecOptions, ExecResult, NodeConnection, RunningCommand, SpawnOptions } from './connection.ts';
export { LocalConnection } from './local.ts';
export { SshConnection, type SshOptions, type SshTarget } from './ssh.ts';
export { ConnectionPool, createConnection, type ConnectionSpec } from './pool.ts';
export {
  NodeError,
  HostKeyMismatchError,
  AuthenticationError,
  ConnectError,
  ConnectionLostError,
  CommandTimeoutError,
  CommandAbortedError,
  InvalidConnectionConfigError,
  type NodeErrorKind,
} from './errors.ts';
export { commandLine, shellQuote } from './quote.ts';
export { parseHostKey, fingerprint, type PinnedHostKey } from './host-key.ts';
export { privateKeyFromSecret, SecretKeyError, DEFAULT_PRIVATE_KEY_FIELD, type SecretLike } from './secret.ts';
export {
  authorizeKey,
  revokeKey,
  editAuthorizedKeys,
  upsertEntry,
  removeEntries,
  listEntries,
  renderEntry,
  ownerOf,
  assertOwnerTag,
  assertFromPatterns,
  parseEntry,
  AuthorizedKeysConflictError,
  DEFAULT_AUTHORIZED_KEYS,
  type AuthorizedKeyEntry,
} from './authorized-keys.ts';
export {
  installGuard,
  guardScript,
  vectorKeyEntry,
  vectorKeyLine,
  vectorHoldTag,
  REPLICA_PROPERTIES,
  RECEIVE_ONLY_PROPERTIES,
  DEFAULT_GUARD_PATH,
  guardOptions,
  type GuardScriptOptions,
} from './guard.ts';
export { sourceAddressFor } from './source-address.ts';
export { installVectorIdentity, type VectorIdentityFiles } from './identity.ts';
export { readRemoteFile, writeRemoteFileAtomic, RemoteFileError, type RemoteFile, type WriteOptions } from './remote-file.ts';
