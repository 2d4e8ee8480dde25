/**
 * Where `bdr plan` and `bdr restore` read Datasets, RetentionPolicies, Machines and SSH keys from: a GitOps
 * repository on disk (checked by gitops/check.ts; invalid documents are reported with file:line and skipped;
 * schema defaults filled in as the API server would) or a cluster through a kubeconfig. Both read only.
 * Machines are reached through controllers/machine-connections.ts, exactly as the controllers reach them.
 */
import { existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { toStructural, objectSchema } from '../api/crd.ts';
import { datasetKind, kindByName, machineKind, retentionPolicyKind, storageTargetKind, vectorKind, type KindDefinition } from '../api/kinds/index.ts';
import type { Dataset, Machine, RetentionPolicy, StorageTarget, Vector } from '../api/types.ts';
import { compileSchema, normalize, type CompiledSchema } from '../cluster/schema.ts';
import type { JsonObject } from '../cluster/types.ts';
// The SSH and Kubernetes clients load only when a command needs them: `bdr --help` stays fast.
import type { MachineHandle } from '../controllers/machine-connections.ts';
import { MachineSecretError } from '../controllers/machine-errors.ts';
import type { KubeClient } from '../controllers/runtime/kube.ts';
import { checkPaths, formatFinding } from '../gitops/check.ts';
import { EXIT, UserError } from './errors.ts';

/** Namespace of objects that name none, as `kubectl apply` would use. */
export const DEFAULT_NAMESPACE = 'default';

export interface ObjectSource {
  /** "repository ./gitops" or "cluster https://…", for messages. */
  readonly description: string;
  /** Invalid documents that were skipped, one `file:line: …` line each (repository only). */
  readonly problems: readonly string[];
  /** Every Dataset, or those of one namespace. */
  datasets(namespace?: string): Promise<Dataset[]>;
  dataset(namespace: string, name: string): Promise<Dataset | undefined>;
  retentionPolicy(namespace: string, name: string): Promise<RetentionPolicy | undefined>;
  machine(name: string): Promise<Machine | undefined>;
  /** Every StorageTarget (their parents are areas no Dataset may name but their namespaces' replicas'). */
  storageTargets(): Promise<StorageTarget[]>;
  /**
   * Every Vector, or those of one namespace. Only a cluster knows their status (the bases they hold); a
   * repository's Vectors have none.
   */
  vectors(namespace?: string): Promise<Vector[]>;
  /**
   * The labels of a Namespace, for a Machine whose allowedNamespaces selects by label; undefined when the
   * source does not know them (a repository that does not declare the Namespace, or a cluster that does not
   * let you read it).
   */
  namespaceLabels(name: string): Promise<Record<string, string> | undefined>;
  /** A connection to the machine (lazy: nothing runs until the first command). */
  connect(machine: Machine): Promise<MachineHandle>;
  /** Closes every connection opened through `connect`. */
  close(): Promise<void>;
}

export interface SourceOptions {
  repo?: string;
  kubeconfig?: string;
}

/** `--repo DIR` or `--kubeconfig FILE` (default: KUBECONFIG, ~/.kube/config, in-cluster). */
export async function openObjectSource(opts: SourceOptions): Promise<ObjectSource> {
  if (opts.repo !== undefined && opts.kubeconfig !== undefined) {
    throw new UserError('pass either --repo DIR or --kubeconfig FILE, not both', EXIT.usage);
  }
  return opts.repo !== undefined ? openRepoSource(opts.repo) : openClusterSource(opts.kubeconfig);
}

/** The one way a missing object is reported, so plan and restore say the same thing. */
export function notDeclared(source: ObjectSource, what: string): string {
  return source.description.startsWith('repository')
    ? `${what} is not declared in the ${source.description}, or is invalid there (see the problems above)`
    : `${what} does not exist in the ${source.description}`;
}

export function connectionError(machine: string, err: unknown): UserError {
  if (err instanceof UserError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof MachineSecretError) return new UserError(`Machine ${machine}: ${message}`, EXIT.invalid);
  return new UserError(`cannot reach Machine ${machine}: ${message}`, EXIT.runtime);
}

// ---------------------------------------------------------------------------------------------------------
// Repository

interface SecretData {
  data: Record<string, string>;
}

/** The slice of KubeClient that MachineConnections uses: reading a Secret's data (base64 values). */
type SecretReader = Pick<KubeClient, 'readSecret'>;

const schemas = new Map<string, CompiledSchema>();
function defaulted(kind: KindDefinition, object: JsonObject): JsonObject {
  let schema = schemas.get(kind.kind);
  if (!schema) {
    schema = compileSchema(toStructural(objectSchema(kind)) as JsonObject);
    schemas.set(kind.kind, schema);
  }
  return normalize(object, schema).object;
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

async function openRepoSource(dir: string): Promise<ObjectSource> {
  await access(dir).catch(() => {
    throw new UserError(`cannot read ${dir}: no such file or directory; --repo takes the directory of your manifests`, EXIT.runtime);
  });
  const checked = await checkPaths([dir], DEFAULT_NAMESPACE);
  const datasets = new Map<string, Dataset>();
  const policies = new Map<string, RetentionPolicy>();
  const machines = new Map<string, Machine>();
  const vectors = new Map<string, Vector>();
  const storageTargets: StorageTarget[] = [];
  for (const m of checked.valid) {
    const obj = m.object as JsonObject;
    const kind = kindByName(String(obj.kind));
    if (!kind) continue;
    const full = defaulted(kind, obj);
    const meta = isRecord(full.metadata) ? full.metadata : {};
    const name = str(meta.name) ?? '';
    const ns = str(meta.namespace) ?? DEFAULT_NAMESPACE;
    if (kind === datasetKind) datasets.set(`${ns}/${name}`, { ...(full as unknown as Dataset), metadata: { ...meta, name, namespace: ns } });
    else if (kind === retentionPolicyKind) policies.set(`${ns}/${name}`, { ...(full as unknown as RetentionPolicy), metadata: { ...meta, name, namespace: ns } });
    else if (kind === machineKind) machines.set(name, full as unknown as Machine);
    else if (kind === vectorKind) vectors.set(`${ns}/${name}`, { ...(full as unknown as Vector), metadata: { ...meta, name, namespace: ns } });
    else if (kind === storageTargetKind) storageTargets.push(full as unknown as StorageTarget);
  }
  const secrets = new Map<string, SecretData>();
  const namespaceLabels = new Map<string, Record<string, string>>();
  for (const m of checked.foreign) {
    const o = m.object;
    if (isRecord(o) && o.kind === 'Namespace' && o.apiVersion === 'v1' && isRecord(o.metadata) && str(o.metadata.name)) {
      const labels = isRecord(o.metadata.labels) ? o.metadata.labels : {};
      namespaceLabels.set(str(o.metadata.name) ?? '', Object.fromEntries(Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === 'string')));
      continue;
    }
    if (!isRecord(o) || o.kind !== 'Secret' || o.apiVersion !== 'v1' || !isRecord(o.metadata)) continue;
    const name = str(o.metadata.name);
    if (!name) continue;
    const ns = str(o.metadata.namespace) ?? DEFAULT_NAMESPACE;
    const data: Record<string, string> = {};
    // Values stay base64, as the API returns them; stringData is encoded the way the API server would.
    if (isRecord(o.stringData)) for (const [k, v] of Object.entries(o.stringData)) if (typeof v === 'string') data[k] = Buffer.from(v, 'utf8').toString('base64');
    if (isRecord(o.data)) for (const [k, v] of Object.entries(o.data)) if (typeof v === 'string') data[k] = v;
    secrets.set(`${ns}/${name}`, { data });
  }
  const description = `repository ${dir}`;
  const reader: SecretReader = {
    readSecret: (namespace, name) => Promise.resolve(secrets.get(`${namespace}/${name}`)?.data),
  };
  const { MachineConnections } = await import('../controllers/machine-connections.ts');
  const connections = new MachineConnections(reader);
  const root = resolve(dir);
  return {
    description,
    problems: checked.findings.map((f) => formatFinding({ ...f, file: relativeTo(root, f.file) })),
    datasets: (namespace) => Promise.resolve([...datasets.values()].filter((d) => namespace === undefined || d.metadata.namespace === namespace)),
    dataset: (namespace, name) => Promise.resolve(datasets.get(`${namespace}/${name}`)),
    retentionPolicy: (namespace, name) => Promise.resolve(policies.get(`${namespace}/${name}`)),
    machine: (name) => Promise.resolve(machines.get(name)),
    storageTargets: () => Promise.resolve(storageTargets),
    vectors: (namespace) => Promise.resolve([...vectors.values()].filter((v) => namespace === undefined || v.metadata.namespace === namespace)),
    namespaceLabels: (name) => Promise.resolve(namespaceLabels.get(name)),
    connect: async (machine) => {
      const conn = machine.spec.connection;
      const ref = conn.type === 'ssh' ? conn.privateKeySecretRef : undefined;
      if (ref && !secrets.has(`${ref.namespace ?? 'bdr-system'}/${ref.name}`)) {
        throw new UserError(
          `Machine ${machine.metadata.name}: its private key Secret ${ref.namespace ?? 'bdr-system'}/${ref.name} is not in the ${description}; ` +
            `add a Secret document (metadata.namespace ${ref.namespace ?? 'bdr-system'}) with the key under ${JSON.stringify(ref.key ?? 'ssh-privatekey')}, or use --kubeconfig`,
          EXIT.invalid,
        );
      }
      try {
        return await connections.get(machine);
      } catch (err) {
        throw connectionError(machine.metadata.name, err);
      }
    },
    close: () => connections.closeAll(),
  };
}

function relativeTo(root: string, file: string): string {
  const abs = resolve(file);
  return abs.startsWith(`${root}/`) ? abs.slice(root.length + 1) : file;
}

// ---------------------------------------------------------------------------------------------------------
// Cluster

async function openClusterSource(kubeconfig: string | undefined): Promise<ObjectSource> {
  const configured = kubeconfig !== undefined || !!process.env.KUBECONFIG || !!process.env.KUBERNETES_SERVICE_HOST || existsSync(join(homedir(), '.kube', 'config'));
  // Without any of these, client-node would silently try http://localhost:8080.
  if (!configured) throw new UserError('no cluster configured: pass --repo DIR (a GitOps repository) or --kubeconfig FILE, or set KUBECONFIG', EXIT.runtime);
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { KubeClient, resourceOf, statusCode } = await import('../controllers/runtime/kube.ts');
  const { MachineConnections } = await import('../controllers/machine-connections.ts');
  const kc = new KubeConfig();
  try {
    // loadFromDefault honours KUBECONFIG, ~/.kube/config and, inside a pod, the service account.
    if (kubeconfig !== undefined) kc.loadFromFile(kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UserError(`cannot load the kubeconfig${kubeconfig ? ` ${kubeconfig}` : ''}: ${(err as Error).message}`, EXIT.runtime);
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new UserError('no cluster configured: pass --repo DIR or --kubeconfig FILE, or set KUBECONFIG', EXIT.runtime);
  const client = new KubeClient(kc);
  const description = `cluster ${server}`;
  const connections = new MachineConnections(client);
  const DATASET = resourceOf(datasetKind);

  let storageTargets: Promise<StorageTarget[]> | undefined;
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) throw new UserError(`the ${description} does not serve bdr.dev ${what}: install the CRDs (bdr crds | kubectl apply -f -)`, EXIT.runtime);
      if (code === 401 || code === 403) throw new UserError(`the ${description} refused to let you read ${what} (HTTP ${code}); check your credentials and RBAC`, EXIT.runtime);
      const message = err instanceof Error ? err.message : String(err);
      throw new UserError(`cannot read ${what} from the ${description}: ${message}`, EXIT.runtime);
    }
  };

  return {
    description,
    problems: [],
    datasets: (namespace) =>
      call('Datasets', async () => {
        if (namespace === undefined) return (await client.list<Dataset>(DATASET)).items;
        const list = (await client.custom.listNamespacedCustomObject({ group: DATASET.group, version: DATASET.version, plural: DATASET.plural, namespace })) as { items: Dataset[] };
        return list.items;
      }),
    dataset: (namespace, name) => call('Datasets', () => client.get<Dataset>(DATASET, name, namespace)),
    retentionPolicy: (namespace, name) => call('RetentionPolicies', () => client.get<RetentionPolicy>(resourceOf(retentionPolicyKind), name, namespace)),
    machine: (name) => call('Machines', () => client.get<Machine>(resourceOf(machineKind), name)),
    // Read once per command: a plan asks for every Dataset and Vector, and the StorageTargets do not change under it.
    storageTargets: () => (storageTargets ??= call('StorageTargets', async () => (await client.list<StorageTarget>(resourceOf(storageTargetKind))).items)),
    vectors: (namespace) =>
      call('Vectors', async () => {
        const VECTOR = resourceOf(vectorKind);
        if (namespace === undefined) return (await client.list<Vector>(VECTOR)).items;
        const list = (await client.custom.listNamespacedCustomObject({ group: VECTOR.group, version: VECTOR.version, plural: VECTOR.plural, namespace })) as { items: Vector[] };
        return list.items;
      }),
    namespaceLabels: async (name) => {
      try {
        return (await client.core.readNamespace({ name })).metadata?.labels ?? {};
      } catch {
        // Missing, or not readable with these credentials: the plan says the labels were not known.
        return undefined;
      }
    },
    connect: async (machine) => {
      try {
        return await connections.get(machine);
      } catch (err) {
        throw connectionError(machine.metadata.name, err);
      }
    },
    close: () => connections.closeAll(),
  };
}
