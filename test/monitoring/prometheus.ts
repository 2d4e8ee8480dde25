/** A real Prometheus server (Debian's /usr/bin/prometheus) in a temporary directory, for end-to-end tests. */
import { execa, type ResultPromise } from 'execa';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { eventually } from '../helpers/eventually.ts';

export const PROMETHEUS = '/usr/bin/prometheus';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface Alert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

export interface QueryResult {
  metric: Record<string, string>;
  value: [number, string];
}

export class TestPrometheus {
  private constructor(
    readonly url: string,
    private readonly proc: ResultPromise,
    private readonly log: () => string,
  ) {}

  /**
   * Starts Prometheus scraping `targets` (host:port) every second, with `ruleFiles` loaded. The free port it is
   * given may be taken by another process before Prometheus binds it: then Prometheus exits, or (when that process
   * is another test's Prometheus) the port answers for someone else. Only a Prometheus that reports this
   * directory as its storage is ours; otherwise it starts again on another port.
   */
  static async start(dir: string, targets: string[], ruleFiles: string[] = []): Promise<TestPrometheus> {
    const config = join(dir, 'prometheus.yml');
    const data = join(dir, 'data');
    writeFileSync(
      config,
      JSON.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
        rule_files: ruleFiles,
        scrape_configs: [{ job_name: 'bdr', honor_labels: true, static_configs: [{ targets }] }],
      }),
    );
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const proc = execa(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${data}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
        reject: false,
        buffer: false,
      });
      let output = '';
      let exited = false;
      proc.stderr?.on('data', (c: Buffer) => (output = (output + c.toString('utf8')).slice(-5000)));
      void proc.then(() => (exited = true));
      const prom = new TestPrometheus(`http://127.0.0.1:${port}`, proc, () => output);
      const outcome = await eventually(
        async () => {
          if (exited) return 'exited';
          if (!(await fetch(`${prom.url}/-/ready`)).ok) return undefined;
          const flags = await prom.api<Record<string, string>>('status/flags');
          return flags['storage.tsdb.path'] === data ? 'ours' : 'theirs';
        },
        `Prometheus to be ready\n${output}`,
        60_000,
        200,
      );
      if (outcome === 'ours') return prom;
      if (outcome === 'theirs') await prom.stop();
      if (attempt >= 5) throw new Error(`Prometheus did not start on a free port after ${attempt} attempts:\n${output}`);
    }
  }

  /** An instant query; throws with Prometheus's own error text when it does not parse or fails. */
  async query(expr: string): Promise<QueryResult[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: QueryResult[] } };
    if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
    const data = body.data!;
    return data.resultType === 'scalar' ? [{ metric: {}, value: data.result as unknown as [number, string] }] : data.result;
  }

  async api<T>(path: string): Promise<T> {
    const body = (await (await fetch(`${this.url}/api/v1/${path}`)).json()) as { status: string; data: T };
    if (body.status !== 'success') throw new Error(`GET ${path}: ${JSON.stringify(body)}`);
    return body.data;
  }

  async alerts(): Promise<Alert[]> {
    return (await this.api<{ alerts: Alert[] }>('alerts')).alerts;
  }

  output(): string {
    return this.log();
  }

  async stop(): Promise<void> {
    this.proc.kill('SIGTERM');
    await this.proc;
  }
}
