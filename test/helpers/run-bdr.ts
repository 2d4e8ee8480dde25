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

/**
 * Runs the CLI in this process (the same `main` that bin/bdr.js runs), capturing its output and exit code:
 * for tests that check many cases and cannot afford a process start each.
 */
export async function runBdrInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../../cli/main.ts');
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  process.exitCode = undefined;
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
    process.exitCode = undefined;
  }
}
