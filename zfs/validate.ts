import { assertName, nameProblem } from '../api/names.ts';
import { ZfsError } from './errors.ts';

/**
 * Checks for the strings that reach ZFS command lines besides dataset and snapshot names (those are
 * api/names.ts's job): hold tags, user property names and values.
 */

/** A hold tag: the same alphabet as a snapshot's short name (no leading "-", no spaces, no shell syntax). */
export function assertHoldTag(tag: string): string {
  const problem = nameProblem('snapshotShortName', tag);
  if (problem !== undefined) throw new ZfsError('invalidName', `invalid hold tag ${JSON.stringify(tag)}: ${problem}`, { retriable: false });
  return tag;
}

/** ZFS user properties are "module:property": lowercase letters, digits and : + . _ - with at least one colon. */
const USER_PROPERTY = /^[a-z0-9][a-z0-9+._-]*:[a-z0-9+.:_-]+$/;

export function assertUserProperty(name: string): string {
  if (name.length > 256 || !USER_PROPERTY.test(name)) {
    throw new ZfsError('invalidName', `invalid user property name ${JSON.stringify(name)}: must look like "dev.bdr:owner"`, { retriable: false });
  }
  return name;
}

/**
 * Values are single arguments (`key=value`), so they cannot inject anything; they only must not break
 * the tab- and newline-separated `zfs get -H` output that the inventory parses.
 */
export function assertUserPropertyValue(value: string): string {
  if (value.length > 1024 || [...value].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) {
    throw new ZfsError('invalidName', 'a property value must be at most 1024 characters without control characters', { retriable: false });
  }
  return value;
}

/** "pool/ds@snap" → "pool/ds", after validating the snapshot name. */
export function datasetOf(snapshot: string): string {
  assertName('snapshot', snapshot);
  return snapshot.slice(0, snapshot.indexOf('@'));
}

