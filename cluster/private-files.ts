/**
 * The state directory holds the API token, the serving key and every Secret (SSH private keys): other local
 * users must not read any of it. Directories are 0700, files 0600, whatever the umask; trees written by older
 * versions (or by git, whose checkouts follow the umask) are tightened with restrictTree.
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Creates `dir` (and missing parents) and makes `dir` itself 0700. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/**
 * Removes group and other bits from `path` and, for a directory, from everything below it. Symbolic links are
 * neither followed nor changed (chmod would act on their target, which may lie outside). Missing paths are fine.
 */
export function restrictTree(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (st.isSymbolicLink()) return;
  const mode = st.mode & 0o7777;
  const wanted = st.isDirectory() ? (mode & 0o700) | 0o700 : mode & 0o700;
  if (mode !== wanted) chmodSync(path, wanted);
  if (st.isDirectory()) for (const entry of readdirSync(path)) restrictTree(join(path, entry));
}

/** Writes `text` to `path` (0600) through a temporary file and a rename, so readers never see half a file. */
export function writePrivateFileAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  // writeFileSync's mode applies only to a new file: a stale temporary file keeps its own.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
