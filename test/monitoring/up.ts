/** A `bdr up` that can be stopped and started again, for the alerting tests' operator restarts. */
import { execa, type ResultPromise } from 'execa';
import { join } from 'node:path';
import { eventually } from '../gitops/harness.ts';
import { REPO_ROOT } from '../helpers/run-bdr.ts';

/** A `bdr up` on a fixed metrics port, so that Prometheus scrapes the same target across a restart. */
export class Up {
  private proc?: ResultPromise;
  private stdout = '';
  constructor(private readonly args: string[]) {}

  async start(): Promise<void> {
    this.stdout = '';
    const proc = execa('node', [join(REPO_ROOT, 'bin/bdr.js'), 'up', ...this.args], { cwd: REPO_ROOT, reject: false, buffer: false, env: { NO_COLOR: '1', BDR_LOG_FORMAT: 'json' } });
    let stderr = '';
    proc.stdout?.on('data', (c: Buffer) => (this.stdout += c.toString('utf8')));
    proc.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-4000)));
    this.proc = proc;
    await eventually(() => (this.stdout.includes('watching for changes') ? true : undefined), `bdr up to start\n${stderr}`, 150_000);
  }

  /** The end of what it printed, for failure messages. */
  output(): string {
    return this.stdout.slice(-3000);
  }

  async stop(): Promise<void> {
    this.proc?.kill('SIGTERM');
    await this.proc;
    this.proc = undefined;
  }
}
