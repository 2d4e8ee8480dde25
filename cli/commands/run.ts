import { Command } from 'commander';
import { createLogger } from '../../metrics/log.ts';
import { EXIT, UserError } from '../errors.ts';
import type { Operator } from '../../controllers/operator-options.ts';
import { hintFor, loadStartOperator, parsePort, shutdownDeadline, waitForSignal } from './up.ts';

interface RunOptions {
  kubeconfig?: string;
  namespace: string;
  metricsPort: number;
  metricsHost: string;
  leaderElect: boolean;
}

async function run(opts: RunOptions): Promise<number> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const log = createLogger({}, { component: 'bdr-run' });
  const kc = new KubeConfig();
  try {
    // loadFromDefault honours KUBECONFIG, ~/.kube/config and, inside a pod, the service account.
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UserError(`cannot load the kubeconfig: ${(err as Error).message}`, EXIT.runtime);
  }
  if (!kc.getCurrentCluster()) throw new UserError('no cluster configured: pass --kubeconfig, set KUBECONFIG, or run inside a pod', EXIT.runtime);
  const startOperator = await loadStartOperator();
  let operator: Operator;
  try {
    operator = await startOperator({
      kubeConfig: kc,
      namespace: opts.namespace,
      leaderElection: opts.leaderElect,
      metrics: { host: opts.metricsHost, port: opts.metricsPort },
      log,
    });
  } catch (err) {
    throw new UserError(`cannot start the controllers: ${(err as Error).message}${hintFor(err)}`, EXIT.runtime);
  }
  const stopping = waitForSignal(log);
  const failed = operator.ready.then(
    () => {
      log.info('controllers running', { cluster: kc.getCurrentCluster()?.server, leaderElection: opts.leaderElect, metrics: operator.metricsUrl });
      return new Promise<never>(() => undefined);
    },
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  const signal = await Promise.race([stopping, failed]);
  if (signal instanceof Error) {
    await operator.stop(5_000).catch(() => undefined);
    throw new UserError(`the controllers could not start: ${signal.message}`, EXIT.runtime);
  }
  log.info('shutting down', { signal });
  const deadline = shutdownDeadline(30_000, log);
  await operator.stop(25_000);
  clearTimeout(deadline);
  return signal === 'SIGINT' ? EXIT.interrupted : EXIT.ok;
}

export function runCommand(): Command {
  return new Command('run')
    .description('run the controllers against a Kubernetes cluster (in a pod, or with a kubeconfig)')
    .option('--kubeconfig <file>', 'kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or the in-cluster service account)')
    .option('-n, --namespace <ns>', 'namespace of the leader-election Lease and of events about cluster-scoped objects', 'bdr-system')
    .option('--metrics-port <n>', 'port of /metrics, /healthz, /readyz (0 picks a free one)', parsePort, 9464)
    .option('--metrics-host <addr>', 'address the metrics endpoint listens on (0.0.0.0 inside a pod)', '127.0.0.1')
    .option('--no-leader-elect', 'do not take part in leader election (only when exactly one instance runs)')
    .addHelpText(
      'after',
      `
The CRDs must be installed first (bdr crds | kubectl apply -f -, or manifests/). With leader election
(the default) several replicas may run; only the leader reconciles, another takes over within the
lease duration. SIGTERM or SIGINT stops gracefully: reconciles in progress are cancelled (a replication
stream in flight is ended on its machines before bdr exits; the next start continues it from the held
base), the connections are closed and the Lease is released.

Examples:
  bdr run                                   # in a pod: in-cluster service account
  bdr run --kubeconfig ~/.kube/config --no-leader-elect
  bdr run --metrics-host 0.0.0.0 --metrics-port 9464 --namespace bdr-system`,
    )
    .action(async (opts: RunOptions) => {
      process.exitCode = await run(opts);
    });
}
