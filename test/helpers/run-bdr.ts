import { execa } from 'execa';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/bdr.js', import.meta.url));

export interface BdrRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `bdr` command as a user would, from the repository root. */
export async function runBdr(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<BdrRun> {
  const r = await execa('node', [BIN, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
    env: { NO_COLOR: '1' },
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
