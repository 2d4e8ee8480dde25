/**
 * `bdr status`: the fleet at a glance, read from the status the controllers wrote (it never connects to a
 * machine): machines and their pools with capacity bars, storage targets, datasets (restore points, newest,
 * next), vectors (pairing, last sync, lag against the RPO, a transfer in progress). Against a cluster
 * (--kubeconfig) or bdr up's state directory (--state). Exit code 1 when an object is Stalled or something is
 * past its RPO, so that a script can gate on it.
 *
 * Functional core: `fleetStatus` turns the objects and an instant into a report, `renderStatus` turns the
 * report into text; both are pure. The shell reads the objects, prints, and with -w repeats.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import type { Condition, Dataset, Machine, StorageTarget, Vector } from '../../api/types.ts';
import { scheduleIntervalSeconds } from '../../metrics/dataset-schedule.ts';
import { formatDuration, parseDuration } from '../../planning/duration.ts';
import { EXIT, UserError } from '../errors.ts';
import { isoSeconds, relative } from '../time-arg.ts';

export interface FleetObjects {
  machines: Machine[];
  storageTargets: StorageTarget[];
  datasets: Dataset[];
  vectors: Vector[];
}

/** Ready's status, or "-" before the controller has written any. */
type Readiness = 'True' | 'False' | 'Unknown' | '-';

interface Health {
  ready: Readiness;
  /** The deciding condition's reason (Stalled's when stalled). */
  reason?: string;
  message?: string;
  stalled: boolean;
}

export interface PoolReport {
  name: string;
  health?: string;
  sizeBytes?: number;
  allocatedBytes?: number;
  freeBytes?: number;
  /** allocated / size, 0..1. */
  usedRatio?: number;
}

export interface MachineReport extends Health {
  name: string;
  zfs?: string;
  lastProbe?: string;
  pools: PoolReport[];
}

export interface TargetMachineReport {
  name: string;
  sizeBytes?: number;
  usedBytes?: number;
  freeBytes?: number;
  usedRatio?: number;
  vectors?: number;
}

export interface StorageTargetReport extends Health {
  name: string;
  suspended: boolean;
  machines: TargetMachineReport[];
}

export interface DatasetReport extends Health {
  namespace: string;
  name: string;
  machine: string;
  dataset: string;
  suspended: boolean;
  restorePoints: number;
  newest?: string;
  next?: string;
  /** No new restore point for twice the schedule (the BdrDatasetRestorePointOverdue condition). */
  overdue: boolean;
}

export interface VectorReport extends Health {
  namespace: string;
  name: string;
  suspended: boolean;
  pairedWith?: string;
  lastSync?: string;
  /** Seconds since the newest replicated restore point was taken. */
  lagSeconds?: number;
  rpoSeconds?: number;
  pastRpo: boolean;
  nextSync?: string;
  transfer?: { snapshot?: string; startedAt?: string; bytes?: number; bytesPerSecond?: number };
}

export interface Problem {
  kind: string;
  name: string;
  problem: 'stalled' | 'past RPO' | 'overdue';
  message: string;
}

export interface FleetStatus {
  at: string;
  source: string;
  machines: MachineReport[];
  storageTargets: StorageTargetReport[];
  datasets: DatasetReport[];
  vectors: VectorReport[];
  problems: Problem[];
}

const condition = (conditions: readonly Condition[] | undefined, type: string) => conditions?.find((c) => c.type === type);

function health(conditions: readonly Condition[] | undefined): Health {
  const ready = condition(conditions, 'Ready');
  const stalled = condition(conditions, 'Stalled');
  const deciding = stalled?.status === 'True' ? stalled : ready;
  return {
    ready: (ready?.status as Readiness | undefined) ?? '-',
    ...(deciding?.reason ? { reason: deciding.reason } : {}),
    ...(deciding?.message ? { message: deciding.message } : {}),
    stalled: stalled?.status === 'True',
  };
}

const ratio = (used: number | undefined, size: number | undefined) => (used !== undefined && size ? used / size : undefined);
const seconds = (iso: string | undefined) => (iso ? Date.parse(iso) / 1000 : undefined);
const key = (o: { metadata: { namespace?: string; name: string } }) => `${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;
const byKey = <T extends { metadata: { namespace?: string; name: string } }>(a: T, b: T) => key(a).localeCompare(key(b));

function datasetReport(d: Dataset, now: number): DatasetReport {
  const newest = d.status?.restorePoints?.newest?.createdAt;
  const interval = scheduleIntervalSeconds(d, now);
  // Like the alert: measured from the newest restore point, or from creation for a dataset that has none.
  const since = seconds(newest) ?? seconds(d.metadata.creationTimestamp);
  const overdue = !d.spec.suspend && interval !== undefined && since !== undefined && now / 1000 - since > 2 * interval;
  return {
    namespace: d.metadata.namespace ?? 'default',
    name: d.metadata.name,
    machine: d.spec.machineRef.name,
    dataset: d.spec.name,
    suspended: d.spec.suspend === true,
    restorePoints: d.status?.restorePoints?.count ?? 0,
    ...(newest ? { newest } : {}),
    ...(d.status?.nextSnapshotTime ? { next: d.status.nextSnapshotTime } : {}),
    overdue,
    ...health(d.status?.conditions),
  };
}

function vectorReport(v: Vector, now: number): VectorReport {
  const s = v.status;
  const rpo = v.spec.rpo ? parseDuration(v.spec.rpo) : undefined;
  const rpoSeconds = rpo?.ok ? rpo.value / 1000 : undefined;
  // Freshness is the age of the newest replicated restore point, not of the last transfer.
  const fresh = seconds(s?.lastSyncedSnapshot?.createdAt) ?? seconds(s?.lastSyncTime);
  const lagSeconds = fresh !== undefined ? Math.max(0, now / 1000 - fresh) : undefined;
  const since = fresh ?? seconds(v.metadata.creationTimestamp);
  const pastRpo = !v.spec.suspend && rpoSeconds !== undefined && since !== undefined && now / 1000 - since > rpoSeconds;
  const t = s?.transfer;
  const started = seconds(t?.startedAt);
  const elapsed = started !== undefined ? now / 1000 - started : undefined;
  return {
    namespace: v.metadata.namespace ?? 'default',
    name: v.metadata.name,
    suspended: v.spec.suspend === true,
    ...(s?.pairing?.machine ? { pairedWith: s.pairing.machine } : {}),
    ...(s?.lastSyncTime ? { lastSync: s.lastSyncTime } : {}),
    ...(lagSeconds !== undefined ? { lagSeconds: Math.round(lagSeconds) } : {}),
    ...(rpoSeconds !== undefined ? { rpoSeconds } : {}),
    pastRpo,
    ...(s?.nextSyncTime ? { nextSync: s.nextSyncTime } : {}),
    ...(t
      ? {
          transfer: {
            ...(t.snapshot ? { snapshot: t.snapshot } : {}),
            ...(t.startedAt ? { startedAt: t.startedAt } : {}),
            ...(t.bytes !== undefined ? { bytes: t.bytes } : {}),
            ...(t.bytes !== undefined && elapsed !== undefined && elapsed > 0 ? { bytesPerSecond: Math.round(t.bytes / elapsed) } : {}),
          },
        }
      : {}),
    ...health(s?.conditions),
  };
}

/** The report for the objects at `now` (epoch ms). Pure. */
export function fleetStatus(objects: FleetObjects, now: number, source: string): FleetStatus {
  const machines: MachineReport[] = [...objects.machines].sort(byKey).map((m) => ({
    name: m.metadata.name,
    ...(m.status?.zfs ? { zfs: [m.status.zfs.implementation, m.status.zfs.version].filter(Boolean).join(' ') } : {}),
    ...(m.status?.lastProbeTime ? { lastProbe: m.status.lastProbeTime } : {}),
    pools: (m.status?.pools ?? []).map((p) => {
      const used = ratio(p.allocatedBytes, p.sizeBytes);
      return {
        name: p.name,
        ...(p.health ? { health: p.health } : {}),
        ...(p.sizeBytes !== undefined ? { sizeBytes: p.sizeBytes } : {}),
        ...(p.allocatedBytes !== undefined ? { allocatedBytes: p.allocatedBytes } : {}),
        ...(p.freeBytes !== undefined ? { freeBytes: p.freeBytes } : {}),
        ...(used !== undefined ? { usedRatio: used } : {}),
      };
    }),
    ...health(m.status?.conditions),
  }));
  const storageTargets: StorageTargetReport[] = [...objects.storageTargets].sort(byKey).map((t) => ({
    name: t.metadata.name,
    suspended: t.spec.suspend === true,
    machines: (t.status?.machines ?? []).map((m) => {
      const used = ratio(m.usedBytes, m.sizeBytes);
      return {
        name: m.name,
        ...(m.sizeBytes !== undefined ? { sizeBytes: m.sizeBytes } : {}),
        ...(m.usedBytes !== undefined ? { usedBytes: m.usedBytes } : {}),
        ...(m.freeBytes !== undefined ? { freeBytes: m.freeBytes } : {}),
        ...(used !== undefined ? { usedRatio: used } : {}),
        ...(m.vectorCount !== undefined ? { vectors: m.vectorCount } : {}),
      };
    }),
    ...health(t.status?.conditions),
  }));
  const datasets = [...objects.datasets].sort(byKey).map((d) => datasetReport(d, now));
  const vectors = [...objects.vectors].sort(byKey).map((v) => vectorReport(v, now));

  const problems: Problem[] = [];
  const stalled = (kind: string, name: string, h: Health) => {
    if (h.stalled) problems.push({ kind, name, problem: 'stalled', message: [h.reason, h.message].filter(Boolean).join(': ') });
  };
  for (const m of machines) stalled('Machine', m.name, m);
  for (const t of storageTargets) stalled('StorageTarget', t.name, t);
  for (const d of datasets) {
    stalled('Dataset', `${d.namespace}/${d.name}`, d);
    if (d.overdue) {
      problems.push({
        kind: 'Dataset',
        name: `${d.namespace}/${d.name}`,
        problem: 'overdue',
        message: d.newest ? `newest restore point ${relative(Date.parse(d.newest), now)}, more than twice the schedule` : 'no restore point for more than twice the schedule',
      });
    }
  }
  for (const v of vectors) {
    stalled('Vector', `${v.namespace}/${v.name}`, v);
    if (v.pastRpo) {
      problems.push({
        kind: 'Vector',
        name: `${v.namespace}/${v.name}`,
        problem: 'past RPO',
        message: `${v.lagSeconds !== undefined ? `lag ${formatDuration(v.lagSeconds * 1000)}` : 'never synced'}, RPO ${formatDuration((v.rpoSeconds ?? 0) * 1000)}`,
      });
    }
  }
  return { at: isoSeconds(now), source, machines, storageTargets, datasets, vectors, problems };
}

/** 0 when all is well, 1 when something is stalled, overdue or past its RPO. */
export function statusExitCode(report: FleetStatus): number {
  return report.problems.length > 0 ? EXIT.invalid : EXIT.ok;
}

// ---------------------------------------------------------------------------------------------------------
// Text

export interface RenderOptions {
  color: boolean;
  now: number;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function formatBytes(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${UNITS[u]}`;
}

/** `[######----]  62%`, ten cells. */
export function bar(usedRatio: number, width = 10): string {
  const clamped = Math.min(1, Math.max(0, usedRatio));
  const filled = Math.round(clamped * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(clamped * 100)).padStart(3)}%`;
}

type Paint = (text: string, tone: 'good' | 'warn' | 'bad' | 'dim') => string;
const CODES = { good: 32, warn: 33, bad: 31, dim: 2 } as const;

function table(rows: string[][], paint: Paint, tones: Array<Array<'good' | 'warn' | 'bad' | 'dim' | undefined>>): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r, ri) =>
    `  ${r
      .map((c, i) => {
        const padded = i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0);
        const tone = tones[ri]?.[i];
        return tone ? paint(padded, tone) : padded;
      })
      .join('  ')}`.trimEnd(),
  );
}

const readyTone = (h: Health): 'good' | 'warn' | 'bad' => (h.stalled || h.ready === 'False' ? 'bad' : h.ready === 'True' ? 'good' : 'warn');
const readyText = (h: Health, suspended = false) => (suspended ? 'Suspended' : h.stalled ? 'Stalled' : h.ready);
const capacityTone = (r: number | undefined) => (r === undefined ? undefined : r > 0.9 ? 'bad' : r > 0.8 ? 'warn' : 'good');

export function renderStatus(report: FleetStatus, options: RenderOptions): string {
  const paint: Paint = options.color ? (t, tone) => `\x1b[${CODES[tone]}m${t}\x1b[0m` : (t) => t;
  const when = (iso: string | undefined) => (iso ? relative(Date.parse(iso), options.now) : '-');
  const out: string[] = [`bdr status of the ${report.source} at ${report.at}`];

  out.push('', `MACHINES (${report.machines.length})`);
  if (report.machines.length > 0) {
    const rows: string[][] = [['NAME', 'READY', 'REASON', 'ZFS']];
    const tones: Array<Array<'good' | 'warn' | 'bad' | 'dim' | undefined>> = [[]];
    for (const m of report.machines) {
      rows.push([m.name, readyText(m), m.reason ?? '-', m.zfs ?? '-']);
      tones.push([undefined, readyTone(m)]);
    }
    out.push(...table(rows, paint, tones));
    for (const m of report.machines) {
      for (const p of m.pools) {
        const capacity = p.usedRatio !== undefined ? paint(bar(p.usedRatio), capacityTone(p.usedRatio) ?? 'dim') : '[?]';
        const free = p.freeBytes !== undefined && p.sizeBytes !== undefined ? `${formatBytes(p.freeBytes)} free of ${formatBytes(p.sizeBytes)}` : '';
        const healthText = p.health ? paint(p.health, p.health === 'ONLINE' ? 'good' : 'bad') : '';
        out.push(`    ${m.name}/${p.name}  ${capacity}  ${free}  ${healthText}`.trimEnd());
      }
    }
  }

  if (report.storageTargets.length > 0) {
    out.push('', `STORAGE TARGETS (${report.storageTargets.length})`);
    const rows: string[][] = [['NAME', 'READY', 'REASON']];
    const tones: Array<Array<'good' | 'warn' | 'bad' | 'dim' | undefined>> = [[]];
    for (const t of report.storageTargets) {
      rows.push([t.name, readyText(t, t.suspended), t.reason ?? '-']);
      tones.push([undefined, readyTone(t)]);
    }
    out.push(...table(rows, paint, tones));
    for (const t of report.storageTargets) {
      for (const m of t.machines) {
        const capacity = m.usedRatio !== undefined ? paint(bar(m.usedRatio), capacityTone(m.usedRatio) ?? 'dim') : '[?]';
        const free = m.freeBytes !== undefined && m.sizeBytes !== undefined ? `${formatBytes(m.freeBytes)} free of ${formatBytes(m.sizeBytes)}` : '';
        out.push(`    ${t.name}/${m.name}  ${capacity}  ${free}${m.vectors !== undefined ? `  ${m.vectors} vector(s)` : ''}`.trimEnd());
      }
    }
  }

  out.push('', `DATASETS (${report.datasets.length})`);
  if (report.datasets.length > 0) {
    const rows: string[][] = [['NAME', 'MACHINE', 'READY', 'POINTS', 'NEWEST', 'NEXT', 'REASON']];
    const tones: Array<Array<'good' | 'warn' | 'bad' | 'dim' | undefined>> = [[]];
    for (const d of report.datasets) {
      rows.push([`${d.namespace}/${d.name}`, d.machine, readyText(d, d.suspended), String(d.restorePoints), when(d.newest), d.suspended ? '-' : when(d.next), d.reason ?? '-']);
      tones.push([undefined, undefined, d.suspended ? 'dim' : readyTone(d), undefined, d.overdue ? 'bad' : undefined]);
    }
    out.push(...table(rows, paint, tones));
  }

  if (report.vectors.length > 0) {
    out.push('', `VECTORS (${report.vectors.length})`);
    const rows: string[][] = [['NAME', 'READY', 'PAIRED', 'LAST SYNC', 'LAG / RPO', 'NEXT', 'REASON']];
    const tones: Array<Array<'good' | 'warn' | 'bad' | 'dim' | undefined>> = [[]];
    for (const v of report.vectors) {
      const lag = `${v.lagSeconds !== undefined ? formatDuration(v.lagSeconds * 1000) : '-'} / ${v.rpoSeconds !== undefined ? formatDuration(v.rpoSeconds * 1000) : '-'}`;
      rows.push([`${v.namespace}/${v.name}`, readyText(v, v.suspended), v.pairedWith ?? '-', when(v.lastSync), lag, v.suspended ? '-' : when(v.nextSync), v.reason ?? '-']);
      tones.push([undefined, v.suspended ? 'dim' : readyTone(v), undefined, undefined, v.pastRpo ? 'bad' : undefined]);
    }
    out.push(...table(rows, paint, tones));
    for (const v of report.vectors) {
      const t = v.transfer;
      if (!t) continue;
      const rate = t.bytesPerSecond !== undefined ? `, ${formatBytes(t.bytesPerSecond)}/s` : '';
      out.push(`    ${v.namespace}/${v.name}  sending ${t.snapshot ?? '?'}: ${t.bytes !== undefined ? formatBytes(t.bytes) : '?'}${rate}, started ${when(t.startedAt)}`);
    }
  }

  out.push('');
  const counts = `${report.machines.length} machine(s), ${report.storageTargets.length} storage target(s), ${report.datasets.length} dataset(s), ${report.vectors.length} vector(s)`;
  if (report.problems.length === 0) out.push(`${counts}: nothing stalled, overdue or past its RPO`);
  else {
    out.push(paint(`${counts}: ${report.problems.length} problem(s)`, 'bad'));
    for (const p of report.problems) out.push(`  ${p.kind} ${p.name} ${paint(p.problem, 'bad')}: ${p.message}`);
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// Shell

interface StatusOptions {
  kubeconfig?: string;
  state?: string;
  namespace?: string;
  output: 'text' | 'json' | 'yaml';
  watch?: boolean;
  interval: number;
}

/** The kubeconfig to read: --kubeconfig, else bdr up's STATE/kubeconfig, else KUBECONFIG / ~/.kube/config / in-cluster. */
function kubeconfigPath(opts: StatusOptions): string | undefined {
  if (opts.kubeconfig !== undefined && opts.state !== undefined) throw new UserError('pass either --kubeconfig FILE or --state DIR, not both', EXIT.usage);
  if (opts.state === undefined) return opts.kubeconfig;
  const file = join(resolve(opts.state), 'kubeconfig');
  if (!existsSync(file)) throw new UserError(`no kubeconfig in ${opts.state}: is \`bdr up --state ${opts.state}\` running?`, EXIT.runtime);
  return file;
}

async function openReader(opts: StatusOptions): Promise<{ source: string; read: () => Promise<FleetObjects> }> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { KubeClient, resourceOf, statusCode } = await import('../../controllers/runtime/kube.ts');
  const { datasetKind, machineKind, storageTargetKind, vectorKind } = await import('../../api/kinds/index.ts');
  const file = kubeconfigPath(opts);
  const kc = new KubeConfig();
  try {
    if (file !== undefined) kc.loadFromFile(file);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UserError(`cannot load the kubeconfig${file ? ` ${file}` : ''}: ${(err as Error).message}`, EXIT.runtime);
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new UserError('no cluster configured: pass --kubeconfig FILE or --state DIR (bdr up), or set KUBECONFIG', EXIT.runtime);
  const client = new KubeClient(kc);
  const source = `cluster ${server}`;
  const list = async <T extends { metadata: { namespace?: string } }>(kind: Parameters<typeof resourceOf>[0], what: string, namespaced: boolean): Promise<T[]> => {
    try {
      const items = (await client.list<T & { metadata: { name: string } }>(resourceOf(kind))).items;
      return namespaced && opts.namespace !== undefined ? items.filter((o) => o.metadata.namespace === opts.namespace) : items;
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) throw new UserError(`the ${source} does not serve bdr.dev ${what}: install the CRDs (bdr crds | kubectl apply -f -)`, EXIT.runtime);
      if (code === 401 || code === 403) throw new UserError(`the ${source} refused to let you list ${what} (HTTP ${code}); check your credentials and RBAC`, EXIT.runtime);
      throw new UserError(`cannot read ${what} from the ${source}: ${err instanceof Error ? err.message : String(err)}`, EXIT.runtime);
    }
  };
  return {
    source,
    read: async () => {
      const [machines, storageTargets, datasets, vectors] = await Promise.all([
        list<Machine>(machineKind, 'Machines', false),
        list<StorageTarget>(storageTargetKind, 'StorageTargets', false),
        list<Dataset>(datasetKind, 'Datasets', true),
        list<Vector>(vectorKind, 'Vectors', true),
      ]);
      return { machines, storageTargets, datasets, vectors };
    },
  };
}

function print(report: FleetStatus, opts: StatusOptions, color: boolean, now: number): void {
  if (opts.output === 'json') process.stdout.write(`${JSON.stringify(report, null, opts.watch ? undefined : 2)}\n`);
  else if (opts.output === 'yaml') process.stdout.write(`${opts.watch ? '---\n' : ''}${stringify(report)}`);
  else process.stdout.write(renderStatus(report, { color, now }));
}

function parseInterval(text: string): number {
  const d = parseDuration(text);
  if (!d.ok || d.value < 1000) throw new UserError(`--interval ${JSON.stringify(text)}: give a duration of at least 1s, such as 2s or 1m`, EXIT.usage);
  return d.value;
}

export function statusCommand(): Command {
  return new Command('status')
    .description('the fleet at a glance: machines and pools, storage targets, datasets, vectors; exit 1 when something is stalled or past its RPO')
    .option('--kubeconfig <file>', 'read the cluster of this kubeconfig (default: KUBECONFIG, ~/.kube/config, in-cluster)')
    .option('--state <dir>', "read the cluster of a running `bdr up` (its --state directory's kubeconfig)")
    .option('-n, --namespace <ns>', 'only Datasets and Vectors in this namespace (Machines and StorageTargets are cluster-wide)')
    .addOption(new Option('-o, --output <format>', 'text for people, json or yaml for scripts').choices(['text', 'json', 'yaml']).default('text'))
    .option('-w, --watch', 'refresh until interrupted (json: one line per refresh; yaml: one document per refresh)')
    .option('--interval <duration>', 'how often -w refreshes', parseInterval, 2_000)
    .addHelpText(
      'after',
      `
bdr status reads what the controllers wrote into each object's status; it never connects to a machine.
Colour only when stdout is a terminal (and NO_COLOR is unset).

Problems (exit code 1):
  stalled    an object with condition Stalled=True: it needs a human (its reason says why)
  overdue    a Dataset, not suspended, whose newest restore point is older than twice its schedule
  past RPO   a Vector, not suspended, whose newest replicated restore point is older than spec.rpo

Exit codes: 0 nothing stalled, overdue or past its RPO · 1 problems were found · 3 the cluster could not
be read · 130 interrupted (-w)

Examples:
  bdr status --state .bdr-state                 # the fleet of a running bdr up
  bdr status --kubeconfig ~/.kube/config -n prod
  bdr status -o json | jq '.problems'
  bdr status -w --interval 5s`,
    )
    .action(async (opts: StatusOptions) => {
      const reader = await openReader(opts);
      const color = opts.output === 'text' && process.stdout.isTTY === true && !process.env.NO_COLOR;
      const once = async () => {
        const objects = await reader.read();
        const now = Date.now();
        const report = fleetStatus(objects, now, reader.source);
        if (opts.watch && color) process.stdout.write('\x1b[H\x1b[2J');
        else if (opts.watch && opts.output === 'text') process.stdout.write('\n');
        print(report, opts, color, now);
        return statusExitCode(report);
      };
      if (!opts.watch) {
        process.exitCode = await once();
        return;
      }
      let stop: (() => void) | undefined;
      const stopped = new Promise<void>((r) => (stop = r));
      const onSignal = () => stop?.();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        for (;;) {
          await once();
          let timeout: NodeJS.Timeout | undefined;
          const timer = new Promise<'tick'>((r) => (timeout = setTimeout(() => r('tick'), opts.interval)));
          const next = await Promise.race([timer, stopped.then(() => 'stop' as const)]);
          clearTimeout(timeout);
          if (next === 'stop') break;
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      process.exitCode = EXIT.interrupted;
    });
}
