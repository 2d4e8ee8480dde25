/**
 * A throw-away pool backed by a sparse file on the host bdr runs on, for trying bdr (the quickstart) without
 * touching a real pool. Created only when asked for by name, never over an existing pool; `cachefile=none`
 * keeps it out of the system's pool cache, so it does not come back after a reboot unless bdr creates it again.
 */
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { assertName } from '../api/names.ts';
import { LocalConnection } from '../nodes/local.ts';
import { zfsCommandError } from './errors.ts';

export interface SandboxPool {
  name: string;
  file: string;
  created: boolean;
}

export async function ensureSandboxPool(name: string, file: string, sizeBytes = 1024 ** 3): Promise<SandboxPool> {
  assertName('pool', name);
  // The backing file is created here with local file calls, so the pool can only be local too.
  const connection = new LocalConnection();
  const list = await connection.exec(['zpool', 'list', '-H', '-o', 'name', name]);
  if (list.code === 0) return { name, file, created: false };
  await mkdir(dirname(file), { recursive: true });
  const handle = await open(file, 'a');
  try {
    if ((await handle.stat()).size < sizeBytes) await handle.truncate(sizeBytes);
  } finally {
    await handle.close();
  }
  const argv = ['zpool', 'create', '-o', 'cachefile=none', '-m', 'none', name, file];
  const created = await connection.exec(argv);
  if (created.code !== 0) throw zfsCommandError(argv, created, connection.description);
  return { name, file, created: true };
}
