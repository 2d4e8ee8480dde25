import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type { Cluster } from '../../cluster/index.ts';
import { makePrivateDir, restrictTree } from '../../cluster/private-files.ts';
import type { Operator, OperatorOptions } from '../../controllers/operator-options.ts';
import type { SyncReport } from '../../gitops/apply.ts';
import type { SyncLoop } from '../../gitops/loop.ts';
import type { Source } from '../../gitops/source.ts';
import { createLogger, type Logger } from '../../metrics/log.ts';
import { parseDuration } from '../../planning/duration.ts';
import { EXIT, UserError } from '../errors.ts';

export function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('expected a TCP port, 0 to 65535');
  return n;
}

function parseInterval(value: string): number {
  const d = parseDuration(value);
  if (!d.ok) throw new InvalidArgumentError(d.problem);
  if (d.value < 1000) throw new InvalidArgumentError('must be at least 1s');
  return d.value;
}

const OPERATOR_NAMESPACE = 'bdr-system';

type StartOperator = (options: OperatorOptions) => Promise<Operator>;

/** The controllers are loaded when they are needed, so that `bdr validate` and `bdr crds` do not pay for them. */
export async function loadStartOperator(): Promise<StartOperator> {
  return (await import('../../controllers/operator.ts')).startOperator;
}

export function hintFor(err: unknown): string {
  return (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? ' (choose another --metrics-port, or --no-metrics)' : '';
}

/** Resolves with the first SIGINT or SIGTERM; a second one ends the process at once. */
export function waitForSignal(log: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolveSignal) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const force = (again: NodeJS.Signals) => {
        log.warn('second signal: exiting without a graceful shutdown', { signal: again });
        process.exit(EXIT.interrupted);
      };
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolveSignal(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** Exits anyway if a graceful shutdown outlives its deadline (a stuck watch or socket must not hang the process). */
export function shutdownDeadline(ms: number, log: Logger): NodeJS.Timeout {
  const t = setTimeout(() => {
    log.error('shutdown deadline passed; exiting', { deadlineMs: ms });
    process.exit(EXIT.runtime);
  }, ms);
  t.unref();
  return t;
}

/**
 * One `bdr up` per state directory: two API servers over one store would corrupt it. A lock left by a killed
 * process (its pid is gone) is taken over.
 */
function lockStateDir(stateDir: string): () => void {
  const lock = join(stateDir, 'bdr-up.pid');
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    let alive = false;
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      try {
        process.kill(pid, 0);
        alive = true;
      } catch (err) {
        alive = (err as NodeJS.ErrnoException).code === 'EPERM';
      }
    }
    if (alive) throw new UserError(`${stateDir} is in use by another bdr up (pid ${pid}); stop it or choose another --state`, EXIT.runtime);
  }
  writeFileSync(lock, `${process.pid}\n`, { mode: 0o600 });
  chmodSync(lock, 0o600);
  return () => rmSync(lock, { force: true });
}

/** What bdr up keeps in its state directory (the cluster tightens its own `cluster/`). */
const PRIVATE_ENTRIES = ['bdr-up.pid', 'kubeconfig', 'repo', 'sandbox'];

interface UpOptions {
  repo: string;
  branch?: string;
  state: string;
  once?: boolean;
  port: number;
  metricsPort: number;
  metrics: boolean;
  interval: number;
  sandboxPool?: string;
  /** A second sandbox pool, for the quickstart's replica. */
  sandboxReplicaPool?: string;
  /** False with --no-install. */
  install: boolean;
}

/**
 * The quickstart's pool: a sparse file in the state directory, created when missing. ZFS must answer first: on
 * Debian or Ubuntu as root bdr installs and starts zfs-fuse (unless --no-install), saying so; anywhere else it
 * stops with one line naming what to install, rather than start a Dataset that can never become Ready.
 */
async function prepareSandbox(pools: readonly string[], stateDir: string, install: boolean, log: Logger): Promise<void> {
  const [{ ensureSandboxPool, ensureZfs }, { ZfsSetupError }] = await Promise.all([import('../../zfs/sandbox.ts'), import('../../zfs/zfs-fuse-daemon.ts')]);
  try {
    await ensureZfs({ install, say: (line) => log.info(line, { pool: pools[0] }) });
  } catch (err) {
    if (err instanceof ZfsSetupError) throw new UserError(err.message, EXIT.runtime);
    throw err;
  }
  for (const pool of pools) {
    const file = join(stateDir, 'sandbox', `${pool}.img`);
    try {
      const sandbox = await ensureSandboxPool(pool, file);
      process.stdout.write(`sandbox:     pool ${pool} ${sandbox.created ? 'created' : 'found'} (backed by ${file})\n`);
    } catch (err) {
      throw new UserError(`cannot create the sandbox pool ${pool}: ${(err as Error).message}`, EXIT.runtime);
    }
  }
}

async function up(opts: UpOptions): Promise<number> {
  // Loaded here rather than at the top: every other bdr command would otherwise pay for the API client,
  // the API server and the watcher (seconds on a busy machine).
  const [{ KubeConfig }, { startCluster }, { applyRepository, ensureNamespace, installCrds, isCleanReport }, { formatFinding }, { SyncLoop }, { isRemoteUrl, sourceFor }] =
    await Promise.all([
      import('@kubernetes/client-node'),
      import('../../cluster/index.ts'),
      import('../../gitops/apply.ts'),
      import('../../gitops/check.ts'),
      import('../../gitops/loop.ts'),
      import('../../gitops/source.ts'),
    ]);
  if (opts.sandboxReplicaPool !== undefined && !opts.sandboxPool) {
    throw new UserError('--sandbox-replica-pool needs --sandbox-pool', EXIT.usage);
  }
  if (opts.sandboxReplicaPool !== undefined && opts.sandboxReplicaPool === opts.sandboxPool) {
    throw new UserError('--sandbox-replica-pool must name a pool other than --sandbox-pool', EXIT.usage);
  }
  const log = createLogger({}, { component: 'bdr-up' });
  const stateDir = resolve(opts.state);
  if (!isRemoteUrl(opts.repo) && !existsSync(opts.repo)) {
    throw new UserError(`cannot read ${opts.repo}: no such directory (give a directory or a git URL)`, EXIT.runtime);
  }
  let source: Source;
  try {
    source = sourceFor(opts.repo, { branch: opts.branch, stateDir, log });
  } catch (err) {
    throw new UserError((err as Error).message, EXIT.usage);
  }
  // The state directory holds the API token and every Secret: 0700, its files 0600. Entries an older bdr up
  // left readable are tightened; only bdr's own entries, in case --state names a directory with other files.
  makePrivateDir(stateDir);
  for (const entry of PRIVATE_ENTRIES) restrictTree(join(stateDir, entry));
  if (opts.sandboxPool) {
    const pools = [opts.sandboxPool, ...(opts.sandboxReplicaPool !== undefined ? [opts.sandboxReplicaPool] : [])];
    await prepareSandbox(pools, stateDir, opts.install, log);
    restrictTree(join(stateDir, 'sandbox'));
  }
  const unlock = lockStateDir(stateDir);

  let cluster: Cluster | undefined;
  let operator: Operator | undefined;
  let loop: SyncLoop | undefined;
  const stopAll = async () => {
    await loop?.stop();
    await operator?.stop(10_000);
    await cluster?.stop();
    unlock();
  };
  try {
    const kubeconfigPath = join(stateDir, 'kubeconfig');
    try {
      cluster = await startCluster({ port: opts.port, dataDir: join(stateDir, 'cluster'), kubeconfigPath });
    } catch (err) {
      throw new UserError(`cannot start the embedded API server: ${(err as Error).message}`, EXIT.runtime);
    }
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    await installCrds(kc, log);
    // The operator's namespace, which `manifests/` creates in a real cluster.
    if (await ensureNamespace(kc, OPERATOR_NAMESPACE)) log.info('created namespace', { namespace: OPERATOR_NAMESPACE });

    loop = new SyncLoop({
      source,
      apply: (rev) => {
        // git checks files out with the umask; the clone holds the manifests, Secrets included.
        if (source.kind === 'remote') restrictTree(rev.root);
        return applyRepository(kc, { root: rev.root, commit: rev.commit, log });
      },
      intervalMs: opts.interval,
      log,
    });
    let first: SyncReport | undefined;
    try {
      first = await loop.syncOnce();
    } catch (err) {
      if (opts.once) throw new UserError(`cannot sync ${source.description}: ${(err as Error).message}`, EXIT.runtime);
      // Long-running: the next interval retries (a remote may be briefly unreachable).
    }

    const startOperator = await loadStartOperator();
    try {
      operator = await startOperator({
        kubeConfig: kc,
        namespace: OPERATOR_NAMESPACE,
        leaderElection: false,
        metrics: opts.metrics ? { host: '127.0.0.1', port: opts.metricsPort } : false,
        log: log.child({ component: 'operator' }),
      });
      await operator.ready;
    } catch (err) {
      throw new UserError(`cannot start the controllers: ${(err as Error).message}${hintFor(err)}`, EXIT.runtime);
    }

    const out = process.stdout;
    out.write(`API server:  ${cluster.url}\n`);
    out.write(`kubeconfig:  ${kubeconfigPath}\n`);
    out.write(`             kubectl --kubeconfig ${kubeconfigPath} get machines,datasets,vectors -A\n`);
    if (operator?.metricsUrl) {
      const base = operator.metricsUrl.replace(/\/metrics$/, '');
      out.write(`metrics:     ${base}/metrics  (health: ${base}/healthz, ${base}/readyz)\n`);
    }
    out.write(`repository:  ${source.description}${first?.commit ? ` @ ${first.commit}` : ''}\n`);

    if (opts.once && operator && !(await operator.waitIdle(120_000))) {
      log.warn('the controllers were still busy after 120 s; stopping anyway');
    }
    if (opts.once) {
      for (const f of first?.findings ?? []) out.write(`${formatFinding(f)}\n`);
      for (const e of first?.errors ?? []) out.write(`${e}\n`);
      await stopAll();
      return first && isCleanReport(first) ? EXIT.ok : EXIT.invalid;
    }
    await loop.start();
    // Edits made while the cluster and the controllers were starting had no watcher yet to see them.
    loop.trigger();
    out.write(`watching for changes; Ctrl-C stops\n`);
    const signal = await waitForSignal(log);
    log.info('shutting down', { signal });
    const deadline = shutdownDeadline(20_000, log);
    await stopAll();
    clearTimeout(deadline);
    return signal === 'SIGINT' ? EXIT.interrupted : EXIT.ok;
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

export function upCommand(): Command {
  return new Command('up')
    .description('standalone mode: an embedded API server fed from a Git repository, and the controllers')
    .requiredOption('--repo <dir|url>', 'a directory of manifests, or a git URL (https://, ssh://, git@host:path, file://)')
    .option('--branch <name>', "branch of a remote repository (default: the remote's default branch)")
    .option('--state <dir>', 'state directory: cluster data, kubeconfig, clone of a remote', '.bdr-state')
    .option('--once', 'sync once, run the controllers for one round, and exit (0 all applied, 1 invalid manifests)')
    .option('--port <n>', 'port of the API server on 127.0.0.1 (0 picks a free one)', parsePort, 0)
    .option('--metrics-port <n>', 'port of /metrics, /healthz, /readyz on 127.0.0.1 (0 picks a free one)', parsePort, 9464)
    .option('--no-metrics', 'serve no metrics endpoint')
    .option('--sandbox-pool <name>', 'create a 1 GiB file-backed ZFS pool NAME in the state directory if it does not exist (for trying bdr)')
    .option('--sandbox-replica-pool <name>', 'with --sandbox-pool: a second such pool NAME, for replicas (the quickstart replicates into it)')
    .option('--no-install', "with --sandbox-pool: never install or start zfs-fuse; stop if ZFS does not answer")
    .option('--interval <duration>', 'how often to fetch a remote and re-apply (repairs drift too)', parseInterval, 60_000)
    .addHelpText(
      'after',
      `
bdr up starts an embedded Kubernetes API server whose data lives in STATE/cluster, installs bdr's
CRDs, applies every YAML document of the repository, and runs the controllers. It writes
STATE/kubeconfig, so kubectl works against it. A directory is watched and re-applied a moment after
files change; a remote is fetched into STATE/repo every --interval.

Access: the API server listens on https://127.0.0.1 only and answers nothing but /healthz, /livez,
/readyz and /version without the bearer token that STATE/kubeconfig holds (with its CA). STATE is made
0700 and its files 0600: it holds that token and every Secret.

What it applies and prunes:
  - every document under the repository (kustomization.yaml and hidden paths are skipped); bdr kinds
    are checked as bdr validate does, other kinds (Namespace, Secret, ConfigMap) are passed through
  - objects it writes carry the label app.kubernetes.io/managed-by=bdr-up and the annotations
    bdr.dev/source (file) and bdr.dev/source-commit; only such objects are ever pruned
  - an invalid document is reported as FILE:LINE and skipped; the rest still applies. An object whose
    document is invalid now is NOT pruned: a typo must not delete data
  - namespaces are created when objects need them and are never pruned; a repository without any
    document prunes nothing (a wrong path is likelier than an intent to delete everything)
  - re-applying an unchanged repository writes nothing

A local directory that is a git working tree is read as it is on disk, uncommitted edits included.

--sandbox-pool (the quickstart) needs ZFS on this machine. When \`zpool list\` does not answer and bdr up
runs as root on Debian or Ubuntu, it installs Debian's zfs-fuse with apt-get (noninteractive) and starts
its daemon, logging each step; with --no-install, not as root, elsewhere, or without apt-get it exits 3
with one line naming what to install. Without --sandbox-pool bdr up never installs anything.
--sandbox-replica-pool makes a second pool the same way (STATE/sandbox/NAME.img), so a Vector can
replicate from one pool to the other on this machine: bdr pipes zfs send into zfs receive itself, so
such a vector needs no SSH key (its KeyAuthorized condition says LocalPipe).

Examples:
  bdr up --repo examples/quickstart --sandbox-pool bdr-quickstart --sandbox-replica-pool bdr-quickstart-replica
  bdr up --repo https://git.example.com/ops/backups.git --branch main --state /var/lib/bdr
  bdr up --repo ./fleet --once          # CI: apply once, exit 1 on invalid manifests
  kubectl --kubeconfig .bdr-state/kubeconfig get machines`,
    )
    .action(async (opts: UpOptions) => {
      process.exitCode = await up(opts);
    });
}
