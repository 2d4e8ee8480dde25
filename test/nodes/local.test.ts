import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandAbortedError, CommandTimeoutError } from '../../nodes/errors.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { eventually } from '../helpers/eventually.ts';
import { REPO_ROOT } from '../helpers/run-bdr.ts';

/** Gone, or a zombie waiting for init to reap it (it has ended either way). */
async function processEnded(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function pidFrom(file: string): Promise<number> {
  return eventually(async () => {
    const text = await readFile(file, 'utf8').catch(() => '');
    return /^\d+\n$/.test(text) ? Number(text) : undefined;
  }, `a pid in ${file}`);
}

async function expectEnded(pid: number): Promise<void> {
  await eventually(async () => ((await processEnded(pid)) ? true : undefined), `process ${pid} to end`);
}

describe('local connection', () => {
  const local = new LocalConnection();
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bdr-local-'));
  });
  afterAll(async () => {
    await local.close();
    await rm(dir, { recursive: true, force: true });
  });

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
    const before = new AbortController();
    before.abort();
    await expect(local.exec(['sleep', '10'], { signal: before.signal })).rejects.toBeInstanceOf(CommandAbortedError);
  });

  it('streams through spawn', async () => {
    const cmd = local.spawn(['wc', '-c']);
    let out = '';
    cmd.stdout.on('data', (d: Buffer) => (out += d.toString()));
    cmd.stdin.end(Buffer.alloc(1_000_000));
    expect((await cmd.done).code).toBe(0);
    expect(out.trim()).toBe('1000000');
  });

  describe('ends the whole process group, not just the program it started', () => {
    const background = (pidfile: string) => ['sh', '-c', 'sleep 600 & echo $! > "$1"; wait', 'sh', pidfile];

    it('on abort', async () => {
      const pidfile = join(dir, 'abort.pid');
      const controller = new AbortController();
      const running = local.exec(background(pidfile), { signal: controller.signal });
      const sleeper = await pidFrom(pidfile);
      expect(await processEnded(sleeper)).toBe(false);
      controller.abort();
      await expect(running).rejects.toBeInstanceOf(CommandAbortedError);
      await expectEnded(sleeper);
    });

    it('on timeout', async () => {
      const pidfile = join(dir, 'timeout.pid');
      // The timeout must leave the shell time to start its child: the pid file shows it did.
      const running = local.exec(background(pidfile), { timeoutMs: 1_500 });
      const sleeper = await pidFrom(pidfile);
      await expect(running).rejects.toBeInstanceOf(CommandTimeoutError);
      await expectEnded(sleeper);
    });

    it('with KILL for a child that ignores TERM', async () => {
      const pidfile = join(dir, 'ignores-term.pid');
      const controller = new AbortController();
      // An ignored signal stays ignored across exec, so the sleep ignores TERM too.
      const running = local.exec(['sh', '-c', 'trap "" TERM; sleep 600 & echo $! > "$1"; wait', 'sh', pidfile], { signal: controller.signal });
      const sleeper = await pidFrom(pidfile);
      controller.abort();
      await expect(running).rejects.toBeInstanceOf(CommandAbortedError);
      await expectEnded(sleeper);
    });

    it('of a pipeline shaped like directTransfer on a local Machine', async () => {
      const pidfile = join(dir, 'pipeline.pid');
      const controller = new AbortController();
      // `{ zfs send … || echo … >&2; } | ssh …`, with a sleep (recording its pid) for zfs send and cat for ssh.
      const script = '{ sh -c \'echo $$ > "$1"; exec sleep 600\' sh "$1" || echo "send failed" >&2; } | cat';
      const running = local.exec(['sh', '-c', script, 'sh', pidfile], { signal: controller.signal });
      const sender = await pidFrom(pidfile);
      controller.abort();
      await expect(running).rejects.toBeInstanceOf(CommandAbortedError);
      await expectEnded(sender);
    });

    it('of a stream aborted mid-stream', async () => {
      const pidfile = join(dir, 'stream.pid');
      const controller = new AbortController();
      // `yes | cat`: the pipeline's first program is a grandchild, as `zfs send` is under `sh -c 'zfs send | ssh …'`.
      const cmd = local.spawn(['sh', '-c', 'yes & echo $! > "$1"; wait', 'sh', pidfile], { signal: controller.signal });
      let bytes = 0;
      cmd.stdout.on('data', (d: Buffer) => (bytes += d.length));
      const writer = await pidFrom(pidfile);
      await eventually(() => (bytes > 100_000 ? true : undefined), 'the stream to flow');
      controller.abort();
      await expect(cmd.done).rejects.toBeInstanceOf(CommandAbortedError);
      await expectEnded(writer);
    });

    it('of a stream ended with kill()', async () => {
      const pidfile = join(dir, 'kill.pid');
      const cmd = local.spawn(background(pidfile));
      cmd.stdout.resume();
      const sleeper = await pidFrom(pidfile);
      cmd.kill();
      const result = await cmd.done;
      expect(result.code).toBeNull();
      expect(result.signal).toBe('SIGTERM');
      await expectEnded(sleeper);
    });

    it('on close()', async () => {
      const pidfile = join(dir, 'close.pid');
      const own = new LocalConnection();
      const running = own.exec(background(pidfile));
      const sleeper = await pidFrom(pidfile);
      await own.close();
      await expect(running).rejects.toBeInstanceOf(CommandAbortedError);
      await expectEnded(sleeper);
    });

    /** A separate node process that starts a background sleep through LocalConnection, then ends as `how` says. */
    async function starterEnding(name: string, how: string) {
      const pidfile = join(dir, `${name}.pid`);
      const script = join(dir, `${name}.mts`);
      await writeFile(
        script,
        `import { readFileSync } from 'node:fs';\n` +
          `import { LocalConnection } from ${JSON.stringify(join(REPO_ROOT, 'nodes/local.ts'))};\n` +
          `void new LocalConnection().exec(['sh', '-c', 'sleep 600 & echo $! > "$1"; wait', 'sh', ${JSON.stringify(pidfile)}]).catch(() => undefined);\n` +
          `for (;;) { try { if (readFileSync(${JSON.stringify(pidfile)}, 'utf8').endsWith('\\n')) break; } catch {} await new Promise((r) => setTimeout(r, 50)); }\n` +
          `${how}\n`,
      );
      const r = await execa('node', ['--import', 'tsx', script], { cwd: REPO_ROOT, reject: false, timeout: 60_000 });
      return { r, sleeper: await pidFrom(pidfile) };
    }

    it('when the process that started it exits', async () => {
      const { r, sleeper } = await starterEnding('exit', 'process.exit(0);');
      expect(r.exitCode, String(r.stderr)).toBe(0);
      await expectEnded(sleeper);
    });

    it('when the process that started it gets a SIGTERM it does not handle (and still dies of it)', async () => {
      const { r, sleeper } = await starterEnding('sigterm', "process.kill(process.pid, 'SIGTERM'); await new Promise((r) => setTimeout(r, 30_000));");
      expect(r.signal, String(r.stderr)).toBe('SIGTERM');
      await expectEnded(sleeper);
    });
  });
});
