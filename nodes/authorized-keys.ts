import type { NodeConnection } from './connection.ts';
import { parseHostKey } from './host-key.ts';
import { readRemoteFile, RemoteFileError, writeRemoteFileAtomic } from './remote-file.ts';

/**
 * bdr's entries in an authorized_keys file. A line is bdr's only when it is exactly what `renderEntry`
 * writes: "[<options> ]<type> <base64> <owner tag>", single spaces, the whole comment field equal to an
 * owner tag "bdr:<kind>=<namespace>/<name>" (e.g. "bdr:vector=prod/db-offsite"), and only the restrictive
 * options bdr itself uses (restrict, command="…", from="…", no-*). Anything else is foreign and kept byte
 * for byte: a line whose comment merely ends with a tag ("… evil bdr:vector=ns/x"), carries other options
 * (permitopen, environment, port-forwarding…), extra spaces, a CR, or a key bdr could not have written.
 * So no foreign line can be crafted that bdr would rewrite or remove, except one that bdr could have
 * written itself, in bdr's own tag namespace.
 */

export const DEFAULT_AUTHORIZED_KEYS = '/root/.ssh/authorized_keys';

const OWNER_TAG = /^bdr:[a-z]+(-[a-z]+)*=[a-z0-9]([a-z0-9.-]*[a-z0-9])?\/[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

export function assertOwnerTag(owner: string): string {
  if (!OWNER_TAG.test(owner) || owner.length > 300) {
    throw new RangeError(`invalid owner tag ${JSON.stringify(owner)}: expected bdr:<kind>=<namespace>/<name>`);
  }
  return owner;
}

/** Options bdr may write: restrictions only; nothing that grants (permitopen, environment, tunnel, pty…). */
const FLAG_OPTIONS = new Set(['restrict', 'no-pty', 'no-port-forwarding', 'no-agent-forwarding', 'no-X11-forwarding', 'no-user-rc']);

// sshd `from=` patterns: a host or address pattern with * and ? wildcards, or an address/CIDR, optionally
// negated with "!". Commas and quotes would change the option itself, so they never get this far.
const FROM_PATTERN = /^!?(?:[A-Za-z0-9*?](?:[A-Za-z0-9*?.-]*[A-Za-z0-9*?])?|[0-9.]+\/\d{1,2}|[0-9A-Fa-f:.]+(?:\/\d{1,3})?)$/;

/** Validates sshd `from=` patterns; at least one must be positive (only negations would match nobody). */
export function assertFromPatterns(patterns: readonly string[]): readonly string[] {
  for (const p of patterns) {
    if (p.length > 255 || !FROM_PATTERN.test(p)) {
      throw new RangeError(`invalid from pattern ${JSON.stringify(p)}: expected an address, a CIDR block or a host pattern, optionally with "!"`);
    }
    const cidr = /\/(\d+)$/.exec(p);
    if (cidr && Number(cidr[1]) > (p.includes(':') ? 128 : 32)) throw new RangeError(`invalid from pattern ${JSON.stringify(p)}: prefix length too long`);
  }
  if (patterns.length > 0 && patterns.every((p) => p.startsWith('!'))) {
    throw new RangeError('from patterns must include at least one positive pattern; only negations match no address');
  }
  return patterns;
}

function assertOption(option: string, seen: Set<string>): void {
  const m = /^([A-Za-z0-9-]+)(?:="([^"]*)")?$/.exec(option);
  const name = m?.[1] ?? '';
  const value = m?.[2];
  const ok =
    m !== null &&
    !seen.has(name) &&
    (value === undefined
      ? FLAG_OPTIONS.has(name)
      : // Printable ASCII without quote or backslash: nothing sshd would unescape or end early.
        (name === 'command' && /^[\x20-\x7e]+$/.test(value) && !/["\\]/.test(value)) ||
        (name === 'from' && value.split(',').every((p) => FROM_PATTERN.test(p))));
  if (!ok) throw new RangeError(`invalid authorized_keys option ${JSON.stringify(option)}: bdr writes only restrict, no-*, command="…" and from="…", each once`);
  seen.add(name);
}

/** The entry a line holds, when the line is exactly one bdr could have written. */
export function parseEntry(line: string): AuthorizedKeyEntry | undefined {
  const parts = line.split(' ');
  if (parts.length < 3) return undefined;
  const [type = '', b64 = '', owner = ''] = parts.slice(-3);
  const optionText = parts.slice(0, -3).join(' ');
  if (!OWNER_TAG.test(owner)) return undefined;
  // Options are separated by commas outside quotes; bdr's never contain a comma inside quotes except from=.
  const options = optionText === '' ? [] : (optionText.match(/[A-Za-z0-9-]+(?:="[^"]*")?(?=,|$)/g) ?? []);
  if (options.join(',') !== optionText) return undefined;
  const entry: AuthorizedKeyEntry = { publicKey: `${type} ${b64}`, owner, ...(options.length > 0 ? { options } : {}) };
  try {
    return renderEntry(entry) === line ? entry : undefined;
  } catch {
    return undefined;
  }
}

/** Owner tag of a line, when the line is one of bdr's (see parseEntry). */
export function ownerOf(line: string): string | undefined {
  return parseEntry(line)?.owner;
}

export interface AuthorizedKeyEntry {
  /** "ssh-ed25519 AAAA…" (a trailing comment is dropped: the owner tag is the comment). */
  publicKey: string;
  owner: string;
  /** Restrictive authorized_keys options only: restrict, no-*, command="…", from="…" (each once). */
  options?: readonly string[];
}

/** Renders one authorized_keys line. */
export function renderEntry(entry: AuthorizedKeyEntry): string {
  assertOwnerTag(entry.owner);
  const key = parseHostKey(entry.publicKey);
  if (typeof key === 'string') throw new RangeError(`invalid public key: ${key}`);
  const [type, b64] = entry.publicKey.trim().split(/\s+/);
  const seen = new Set<string>();
  for (const option of entry.options ?? []) assertOption(option, seen);
  const options = entry.options && entry.options.length > 0 ? `${entry.options.join(',')} ` : '';
  return `${options}${type} ${b64} ${entry.owner}`;
}

/**
 * A line bdr does not own authorizes the same key as one of bdr's entries. bdr never edits foreign lines,
 * and sshd would honour that line's options (possibly looser ones), so the key is not authorized (or not
 * revoked) until someone removes it by hand.
 */
export class AuthorizedKeysConflictError extends Error {
  constructor(
    readonly owner: string,
    /** 1-based line numbers of the foreign lines. */
    readonly lines: readonly number[],
    action: 'authorize' | 'revoke',
  ) {
    super(
      action === 'authorize'
        ? `cannot authorize ${owner}: line ${lines.join(', ')} of authorized_keys, not bdr's, holds the same key; remove it by hand`
        : `revoked ${owner}, but line ${lines.join(', ')} of authorized_keys, not bdr's, still authorizes its key; remove it by hand`,
    );
    this.name = 'AuthorizedKeysConflictError';
  }
}

/** 1-based numbers of foreign lines that mention the key blob `b64` as a word. */
function foreignLinesWithKey(lines: readonly string[], b64: string): number[] {
  const found: number[] = [];
  lines.forEach((line, i) => {
    if (ownerOf(line) === undefined && line.split(/[\s,"]+/).includes(b64)) found.push(i + 1);
  });
  return found;
}

function keyBlob(publicKey: string): string {
  return publicKey.trim().split(/\s+/)[1] ?? '';
}

function splitLines(content: string): string[] {
  if (content === '') return [];
  const lines = content.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

function joinLines(lines: readonly string[]): string {
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/**
 * Sets the one entry of `entry.owner`: replaces its line in place (or appends it), and drops any further
 * lines with the same owner. Returns the content unchanged when it already matches.
 */
export function upsertEntry(content: string, entry: AuthorizedKeyEntry): string {
  const line = renderEntry(entry);
  const lines = splitLines(content);
  const conflicts = foreignLinesWithKey(lines, keyBlob(entry.publicKey));
  if (conflicts.length > 0) throw new AuthorizedKeysConflictError(entry.owner, conflicts, 'authorize');
  const out: string[] = [];
  let placed = false;
  for (const existing of lines) {
    if (ownerOf(existing) !== entry.owner) {
      out.push(existing);
    } else if (!placed) {
      out.push(line);
      placed = true;
    }
  }
  if (!placed) out.push(line);
  const next = joinLines(out);
  return next === content || (content !== '' && !content.endsWith('\n') && next === `${content}\n`) ? content : next;
}

/** Removes every line of `owner`; foreign lines stay as they are. */
export function removeEntries(content: string, owner: string): string {
  assertOwnerTag(owner);
  const lines = splitLines(content);
  const kept = lines.filter((l) => ownerOf(l) !== owner);
  return kept.length === lines.length ? content : joinLines(kept);
}

/** Owner tags present in a file, with their lines. */
export function listEntries(content: string): { owner: string; line: string }[] {
  return splitLines(content).flatMap((line) => {
    const owner = ownerOf(line);
    return owner ? [{ owner, line }] : [];
  });
}

/**
 * Applies an edit to a machine's authorized_keys: read, edit, and (only if something changed) write back
 * atomically with the file's own mode and owner. A concurrent change between read and write is detected
 * and the edit is redone on the new content. Returns whether the file changed.
 */
export function editAuthorizedKeys(
  connection: NodeConnection,
  edit: (content: string) => string,
  path: string = DEFAULT_AUTHORIZED_KEYS,
): Promise<boolean> {
  // Edits from this process queue up per file; the on-machine lock covers other processes.
  let queues = editQueues.get(connection);
  if (!queues) editQueues.set(connection, (queues = new Map()));
  const previous = queues.get(path) ?? Promise.resolve();
  const next = previous.then(() => editOnce(connection, edit, path));
  const settled = next.then(
    () => undefined,
    () => undefined,
  );
  queues.set(path, settled);
  void settled.then(() => {
    if (queues.get(path) === settled) queues.delete(path);
  });
  return next;
}

const editQueues = new WeakMap<NodeConnection, Map<string, Promise<void>>>();

async function editOnce(connection: NodeConnection, edit: (content: string) => string, path: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const file = await readRemoteFile(connection, path);
    const next = edit(file.content);
    if (next === file.content) return false; // unchanged, or still absent
    try {
      await writeRemoteFileAtomic(connection, path, next, {
        mode: file.mode ?? '600',
        ...(file.uid !== undefined && file.gid !== undefined ? { owner: `${file.uid}:${file.gid}` } : {}),
        expectVersion: file.version,
        createParentMode: '700',
      });
      return true;
    } catch (error) {
      if (error instanceof RemoteFileError && error.conflict && attempt < 10) continue;
      throw error;
    }
  }
}

export function authorizeKey(connection: NodeConnection, entry: AuthorizedKeyEntry, path?: string): Promise<boolean> {
  return editAuthorizedKeys(connection, (c) => upsertEntry(c, entry), path);
}

/**
 * Removes the owner's entries. Throws AuthorizedKeysConflictError (after removing them) when a foreign
 * line still authorizes one of the removed keys: the revocation is then not effective.
 */
export async function revokeKey(connection: NodeConnection, owner: string, path?: string): Promise<boolean> {
  assertOwnerTag(owner);
  let leftover: number[] = [];
  const changed = await editAuthorizedKeys(
    connection,
    (content) => {
      const lines = splitLines(content);
      const removedKeys = lines.filter((l) => ownerOf(l) === owner).map((l) => keyBlob(parseEntry(l)?.publicKey ?? ''));
      const edited = removeEntries(content, owner);
      const kept = splitLines(edited);
      leftover = [...new Set(removedKeys.flatMap((k) => foreignLinesWithKey(kept, k)))].sort((a, b) => a - b);
      return edited;
    },
    path,
  );
  if (leftover.length > 0) throw new AuthorizedKeysConflictError(owner, leftover, 'revoke');
  return changed;
}
