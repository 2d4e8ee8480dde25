import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { parseAllDocuments } from 'yaml';
import { ApiError, startCluster, type Cluster, type KubeObject } from '../../cluster/index.ts';
import { EXIT, UserError } from '../errors.ts';

const BUNDLED_CRDS = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'crds');

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be a TCP port (0-65535; 0 picks a free one)');
  return port;
}

/** Installs (or updates) every CRD in the directory, so the playground knows bdr's kinds at once. */
function installCrds(cluster: Cluster, dir: string): number {
  let count = 0;
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      const object = doc.toJS() as KubeObject | null;
      if (!object || object.kind !== 'CustomResourceDefinition') continue;
      try {
        cluster.apply(object);
      } catch (err) {
        const why = err instanceof ApiError ? err.message : String(err);
        throw new UserError(`cannot install ${join(dir, file)}: ${why}`, EXIT.invalid);
      }
      count++;
    }
  }
  return count;
}

export function clusterCommand(): Command {
  return new Command('cluster')
    .description('serve the embedded Kubernetes API alone: a playground for kubectl apply of bdr resources')
    .option('--state <dir>', 'keep objects in DIR (survive restarts) and write DIR/kubeconfig; without it, everything is in memory')
    .option('--port <n>', 'TCP port on 127.0.0.1 (0 picks a free one)', parsePort, 0)
    .addHelpText(
      'after',
      `
bdr's CRDs are installed from crds/ at start. Stop with Ctrl-C (SIGINT) or SIGTERM.
The server speaks HTTPS on 127.0.0.1 and wants the bearer token of the kubeconfig it writes (0600; with
--state the token survives restarts); /healthz, /livez, /readyz and /version are open.

Example:
  bdr cluster --state .bdr-state --port 6443 &
  export KUBECONFIG=.bdr-state/kubeconfig
  kubectl apply -R -f examples/`,
    )
    .action(async (opts: { state?: string; port: number }) => {
      let cluster: Cluster;
      try {
        cluster = await startCluster({ port: opts.port, dataDir: opts.state });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new UserError(`port ${opts.port} is already in use; pick another with --port or use --port 0`, EXIT.runtime);
        throw new UserError(`cannot start the cluster${opts.state ? ` with state in ${opts.state}` : ''}: ${e.message}`, EXIT.runtime);
      }
      try {
        const installed = existsSync(BUNDLED_CRDS) ? installCrds(cluster, BUNDLED_CRDS) : 0;
        process.stdout.write(
          `cluster serving at ${cluster.url}\n` +
            `${installed} CRD(s) installed from ${BUNDLED_CRDS}\n` +
            `export KUBECONFIG=${cluster.kubeconfigPath}\n`,
        );
      } catch (err) {
        await cluster.stop();
        throw err;
      }
      await new Promise<void>((resolveStop) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolveStop();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await cluster.stop();
      process.stderr.write('cluster stopped\n');
    });
}
