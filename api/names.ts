/**
 * Names that reach a ZFS command line. bdr accepts a strict subset of what ZFS allows, so that a name
 * validated here can never be read as an option (leading `-`), a path escape (`..`), or shell syntax,
 * on any machine, however the command is transported.
 *
 * The patterns are plain RE2-compatible regular expressions (no look-around), because the same strings go
 * into the CRDs' OpenAPI schemas and the Kubernetes API server evaluates them with Go's regexp.
 */

/** Characters a bdr-accepted ZFS name may contain: a subset of ZFS's own (which also allows spaces). */
export const ZFS_NAME_CHARS = /^[A-Za-z0-9_.:\-/@]*$/;

// A component starts with a letter, digit, `_` or `:`; a `.` must be followed by a non-dot, so neither
// `..` nor a trailing `.` can occur.
const COMPONENT = '[A-Za-z0-9_:](?:[A-Za-z0-9_:-]|\\.[A-Za-z0-9_:-])*';
const POOL = '[A-Za-z](?:[A-Za-z0-9_:-]|\\.[A-Za-z0-9_:-])*';

/** ZFS's limit on a full dataset or snapshot name (ZFS_MAX_DATASET_NAME_LEN - 1). */
export const MAX_ZFS_NAME_LENGTH = 255;

export const POOL_NAME_PATTERN = `^${POOL}$`;
export const DATASET_NAME_PATTERN = `^${POOL}(?:/${COMPONENT})*$`;
export const SNAPSHOT_SHORT_NAME_PATTERN = `^${COMPONENT}$`;
export const SNAPSHOT_NAME_PATTERN = `^${POOL}(?:/${COMPONENT})*@${COMPONENT}$`;
/**
 * A Machine's dataset root (spec.datasetRoots): a dataset name whose first component may be `{pool}` (any pool
 * the Machine uses) and whose last may be `{namespace}` (the namespace's own name).
 */
export const DATASET_ROOT_PATTERN = `^(?:\\{pool\\}|${POOL})(?:/${COMPONENT})*(?:/\\{namespace\\})?$`;

const poolRe = new RegExp(POOL_NAME_PATTERN);
const datasetRe = new RegExp(DATASET_NAME_PATTERN);
const snapshotShortRe = new RegExp(SNAPSHOT_SHORT_NAME_PATTERN);
const snapshotRe = new RegExp(SNAPSHOT_NAME_PATTERN);

/** Pool names zpool refuses because they collide with vdev keywords. */
const RESERVED_POOL = /^(mirror|raidz\d?|draid\d?|spare|log|cache|special|dedup)$|^c[0-9]/;

export type NameKind = 'pool' | 'dataset' | 'snapshot' | 'snapshotShortName';

export class InvalidNameError extends Error {
  constructor(
    readonly kind: NameKind,
    readonly value: string,
    readonly reason: string,
  ) {
    super(`invalid ZFS ${kind} name ${JSON.stringify(value)}: ${reason}`);
    this.name = 'InvalidNameError';
  }
}

/** Why `value` is not an acceptable name of the given kind, or undefined when it is. */
export function nameProblem(kind: NameKind, value: string): string | undefined {
  if (value.length === 0) return 'must not be empty';
  if (value.length > MAX_ZFS_NAME_LENGTH) return `must be at most ${MAX_ZFS_NAME_LENGTH} characters`;
  if (!ZFS_NAME_CHARS.test(value)) {
    return 'may contain only letters, digits and _ . : - (plus / between dataset components and @ before a snapshot name)';
  }
  const re = { pool: poolRe, dataset: datasetRe, snapshot: snapshotRe, snapshotShortName: snapshotShortRe }[kind];
  if (!re.test(value)) return componentProblem(kind, value);
  const pool = value.split(/[/@]/)[0] ?? '';
  if (kind !== 'snapshotShortName' && RESERVED_POOL.test(pool)) {
    return `pool name ${JSON.stringify(pool)} is reserved by zpool (mirror, raidz, spare, log, c0…)`;
  }
  return undefined;
}

function componentProblem(kind: NameKind, value: string): string {
  if (value.includes('..')) return 'must not contain ".."';
  if (/(^|[/@])-/.test(value)) return 'no component may start with "-"';
  if (/(^|[/@])\./.test(value)) return 'no component may start with "."';
  if (value.endsWith('.')) return 'must not end with "."';
  if (value.includes('//') || value.endsWith('/')) return 'must not contain empty components';
  if ((kind === 'pool' || kind === 'dataset' || kind === 'snapshot') && !/^[A-Za-z]/.test(value)) {
    return 'must start with the pool name, which begins with a letter';
  }
  if (kind === 'pool' && value.includes('/')) return 'a pool name has no "/"';
  if ((kind === 'snapshot') !== value.includes('@') || (value.match(/@/g)?.length ?? 0) > 1) {
    return kind === 'snapshot' ? 'must be DATASET@NAME' : 'must not contain "@"';
  }
  return 'is not a valid name';
}

/** Throws InvalidNameError unless `value` is acceptable; returns it for use in argument arrays. */
export function assertName(kind: NameKind, value: string): string {
  const problem = nameProblem(kind, value);
  if (problem !== undefined) throw new InvalidNameError(kind, value, problem);
  return value;
}

export const isDatasetName = (v: string): boolean => nameProblem('dataset', v) === undefined;
export const isSnapshotName = (v: string): boolean => nameProblem('snapshot', v) === undefined;
