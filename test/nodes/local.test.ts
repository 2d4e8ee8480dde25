import { describe, expect, it } from 'vitest';
import { CommandAbortedError, CommandTimeoutError } from '../../nodes/errors.ts';
import { LocalConnection } from '../../nodes/local.ts';

describe('local connection', () => {
  const local = new LocalConnection();

  it('runs argument arrays without a shell', async () => {
    const r = await local.exec(['printf', '[%s]', '$(id)', '; ls', "it's"], { stdin: 'ignored' });
    expect(r).toEqual({ stdout: "[$(id)][; ls][it's]", stderr: '', code: 0 });
    expect(await local.exec(['sh', '-c', 'cat; exit 4'], { stdin: 'in' })).toEqual({ stdout: 'in', stderr: '', code: 4 });
  });

  it('reports a missing program as exit 127', async () => {
    const r = await local.exec(['/nonexistent/bdr-program']);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/bdr-program/);
  });

  it('times out and cancels', async () => {
    await expect(local.exec(['sleep', '10'], { timeoutMs: 100 })).rejects.toBeInstanceOf(CommandTimeoutError);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await expect(local.exec(['sleep', '10'], { signal: controller.signal })).rejects.toBeInstanceOf(CommandAbortedError);
  });

  it('streams through spawn', async () => {
    const cmd = local.spawn(['wc', '-c']);
    let out = '';
    cmd.stdout.on('data', (d: Buffer) => (out += d.toString()));
    cmd.stdin.end(Buffer.alloc(1_000_000));
    expect((await cmd.done).code).toBe(0);
    expect(out.trim()).toBe('1000000');
  });
});
