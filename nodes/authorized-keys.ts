import type { NodeConnection } from './connection.ts';
import { parseHostKey } from './host-key.ts';
import { readRemoteFile, RemoteFileError, writeRemoteFileAtomic } from './remote-file.ts';

/**
 * bdr's entries in an authorized_keys file. Each entry bdr writes ends with an owner tag comment,
 * "bdr:<kind>=<namespace>/<name>" (e.g. "bdr:vector=prod/db-offsite"); bdr only ever changes lines that
 * carry a tag, and keeps every other line byte for byte.
 */

export const DEFAULT_AUTHORIZED_KEYS = '/root/.ssh/authorized_keys';

const OWNER_TAG = /^bdr:[a-z]+(-[a-z]+)*=[a-z0-9]([a-z0-9.-]*[a-z0-9])?\/[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

export function assertOwnerTag(owner: string): string {
  if (!OWNER_TAG.test(owner) || owner.length > 300) {
    throw new RangeError(`invalid owner tag ${JSON.stringify(owner)}: expected bdr:<kind>=<namespace>/<name>`);
  }
  return owner;
}

/** Owner tag of a line, when the line is one of bdr's. */
export function ownerOf(line: string): string | undefined {
  const last = line.trimEnd().split(/\s+/).at(-1) ?? '';
  return OWNER_TAG.test(last) ? last : undefined;
}

export interface AuthorizedKeyEntry {
  /** "ssh-ed25519 AAAA…" (a trailing comment is dropped: the owner tag is the comment). */
  publicKey: string;
  owner: string;
  /** authorized_keys options, e.g. ['restrict', 'command="…"']; validated for quoting only. */
  options?: readonly string[];
}

/** Renders one authorized_keys line. */
export function renderEntry(entry: AuthorizedKeyEntry): string {
  assertOwnerTag(entry.owner);
  const key = parseHostKey(entry.publicKey);
  if (typeof key === 'string') throw new RangeError(`invalid public key: ${key}`);
  const [type, b64] = entry.publicKey.trim().split(/\s+/);
  for (const option of entry.options ?? []) {
    // An option is a word, or word="…" without embedded quotes, newlines or a comma outside the quotes.
    if (!/^[a-z-]+(="[^"\n\\]*")?$/.test(option)) throw new RangeError(`invalid authorized_keys option ${JSON.stringify(option)}`);
  }
  const options = entry.options && entry.options.length > 0 ? `${entry.options.join(',')} ` : '';
  return `${options}${type} ${b64} ${entry.owner}`;
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
  const out: string[] = [];
  let placed = false;
  for (const existing of splitLines(content)) {
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

export function revokeKey(connection: NodeConnection, owner: string, path?: string): Promise<boolean> {
  assertOwnerTag(owner);
  return editAuthorizedKeys(connection, (c) => removeEntries(c, owner), path);
}
