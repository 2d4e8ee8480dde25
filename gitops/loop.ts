/**
 * The sync loop of `bdr up`: one apply at a time; a change during an apply queues exactly one more; the
 * interval re-fetches a remote and re-applies either kind of source, which also repairs drift (an object edited
 * or deleted by hand is put back, at zero writes when nothing drifted).
 */
import type { Logger } from '../metrics/log.ts';
import { formatFinding } from './check.ts';
import type { SyncReport } from './apply.ts';
import type { Revision, Source } from './source.ts';

export interface SyncLoopOptions {
  source: Source;
  apply: (revision: Revision) => Promise<SyncReport>;
  /** Re-fetch (remote) and re-apply period; default one minute. */
  intervalMs?: number;
  log: Logger;
  /** Called after every apply, successful or not (tests and metrics hook in here). */
  onSync?: (result: { report?: SyncReport; error?: Error }) => void;
}

export class SyncLoop {
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastFindings = '';

  constructor(private readonly options: SyncLoopOptions) {}

  /** One apply now; throws when the source cannot be read or the cluster cannot be reached. */
  async syncOnce(): Promise<SyncReport> {
    const { source, log } = this.options;
    const started = Date.now();
    try {
      const revision = await source.prepare();
      const report = await this.options.apply(revision);
      this.logReport(report, Date.now() - started);
      this.options.onSync?.({ report });
      return report;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      log.error('sync failed', { repo: source.description, error });
      this.options.onSync?.({ error });
      throw error;
    }
  }

  /** Starts watching (directory) and the periodic re-sync. */
  async start(): Promise<void> {
    await this.options.source.watch(() => this.trigger());
    const interval = this.options.intervalMs ?? 60_000;
    this.timer = setInterval(() => this.trigger(), interval);
    this.timer.unref();
  }

  /** Requests a sync; coalesces with one already queued. */
  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.syncOnce().catch(() => undefined);
      } while (this.again && !this.stopped);
      this.running = undefined;
    })();
  }

  /** Resolves once no apply is running or queued (at once when idle). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops watching and waits for an apply in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.options.source.close();
    await this.running;
  }

  private logReport(r: SyncReport, ms: number): void {
    const { log } = this.options;
    // Findings are repeated only when they change, so a periodic re-sync does not flood the log.
    const findings = r.findings.map(formatFinding).join('\n');
    if (findings !== this.lastFindings) for (const f of r.findings) log.warn('invalid manifest skipped', { finding: formatFinding(f) });
    this.lastFindings = findings;
    for (const e of r.errors) log.warn('apply failed', { error: e });
    for (const k of r.kept) log.debug('not pruned', { object: k });
    const changed = r.writes > 0 || r.errors.length > 0;
    (changed ? log.info : log.debug)('synced', {
      repo: this.options.source.description,
      commit: r.commit,
      created: r.created.length,
      updated: r.updated.length,
      pruned: r.pruned.length,
      unchanged: r.unchanged,
      invalid: r.findings.length,
      errors: r.errors.length,
      writes: r.writes,
      ms,
    });
  }
}
