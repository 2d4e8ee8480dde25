import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { systemClock, type Clock } from '../../controllers/runtime/clock.ts';
import { silentLogger } from '../../metrics/log.ts';
import { REPO_ROOT, runBdr } from '../helpers/run-bdr.ts';
import { TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from '../controllers/cluster-fixture.ts';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface Grant {
  group: string;
  resource: string;
  verb: string;
  /** Only in this namespace (a Role), or anywhere (a ClusterRole). */
  namespace?: string;
}

/** Turns an API request into the RBAC attributes the API server would check. */
function attributes(method: string, url: string): Grant | undefined {
  const [path = '', query = ''] = url.split('?');
  const parts = path.split('/').filter(Boolean);
  let group: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1] === 'v1') {
    group = '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    group = parts[1] ?? '';
    rest = parts.slice(3);
  } else return undefined; // discovery and version: allowed to every authenticated user
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource = '', name, sub] = rest;
  const watch = /(^|&)watch=(true|1)/.test(query);
  const verb =
    method === 'GET' ? (watch ? 'watch' : name ? 'get' : 'list') : ({ POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[method] ?? method;
  return { group, resource: sub ? `${resource}/${sub}` : resource, verb, ...(namespace ? { namespace } : {}) };
}

describe('manifests/', () => {
  const bed = new TestBed();
  let tc: TestCluster;
  let operator: Operator;
  let machine: TestMachine;
  let pool: TestPool;
  const docs: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    const out = await execa('kubectl', ['kustomize', 'manifests/'], { cwd: REPO_ROOT });
    for (const d of parseAllDocuments(out.stdout)) docs.push(d.toJS() as Record<string, unknown>);

    [machine, pool] = await Promise.all([bed.machine('rbac'), bed.pool()]);
    tc = await startTestCluster();
    tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
    // The operator's key lives in bdr-system, as the Role allows.
    tc.apply({ ...machine.secret, metadata: { name: machine.secret.metadata.name, namespace: 'bdr-system' } });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Machine',
      metadata: { name: 'remote' },
      spec: { connection: { ...machine.machine.spec.connection, privateKeySecretRef: { name: machine.secret.metadata.name } }, allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] },
    });
    // A pinned key that does not match: makes the operator record (and then re-record) a Warning event.
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Machine',
      metadata: { name: 'mismatch' },
      spec: {
        connection: {
          ...machine.machine.spec.connection,
          hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDk5puTFRPp/CP9Q1zE3UrvUMvfU4y5hNm7zC49DVK3j',
          privateKeySecretRef: { name: machine.secret.metadata.name },
        },
      },
    });
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: 'default' }, spec: { keepLast: 1 } });
    // Adopting a dataset that does not exist: reported in status, nothing created.
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Dataset',
      metadata: { name: 'd', namespace: 'default' },
      // deletionPolicy Delete: the controller adds its cleanup finalizer.
      spec: { machineRef: { name: 'remote' }, name: 'nopool/none', schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' }, deletionPolicy: 'Delete' },
    });
    // A storage Machine on the same sshd, with its files in the test machine's directory, and a Vector from the
    // Dataset above into it, rotating its key every 2 s: Secrets are created, patched (rotation) and listed (drift
    // check); a stale Secret of an earlier Vector of that name is deleted first.
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Machine',
      metadata: { name: 'store' },
      spec: {
        role: 'Storage',
        connection: { ...machine.machine.spec.connection, privateKeySecretRef: { name: machine.secret.metadata.name } },
        paths: { authorizedKeys: machine.sshd.authorizedKeysPath, guard: join(machine.sshd.dir, 'zfs-guard'), vectorKeys: join(machine.sshd.dir, 'vectors') },
        allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }],
      },
    });
    tc.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'vector.default.v', namespace: 'bdr-system', labels: { 'bdr.dev/vector-namespace': 'default', 'bdr.dev/vector-name': 'v', 'bdr.dev/vector-uid': 'an-earlier-vector' } },
      data: { 'ssh-privatekey': Buffer.from('stale').toString('base64') },
    });
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'v', namespace: 'default' },
      spec: { source: { datasetRef: { name: 'd' } }, target: { machineRef: { name: 'store' }, dataset: `${pool.name}/replicas/v` }, keyRotation: { interval: '1h' } },
    });
    // Lists a Machine that does not exist: the StorageTarget controller reports it in status, runs nothing.
    tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'StorageTarget', metadata: { name: 'st' }, spec: { machines: [{ name: 'absent' }], parentDataset: 'tank/replicas' } });
    tc.requests.length = 0;
    // The operator's clock, which the test moves two hours ahead once the vector's first key exists: the key is
    // then due for rotation (keyRotation.interval is at least 1h).
    let ahead = 0;
    const clock: Clock = { ...systemClock, now: () => Date.now() + ahead };
    operator = await startOperator({
      clock,
      kubeConfig: tc.kubeConfig,
      namespace: 'bdr-system',
      leaderElection: { leaseDurationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 200 },
      metrics: false,
      probeIntervalMs: 300,
      log: silentLogger,
    });
    await operator.ready;
    await eventually(() => (tc.requests.some((r) => r.method === 'POST' && r.url.includes('/namespaces/bdr-system/secrets')) ? true : undefined), 'the vector key', 60_000);
    ahead = 2 * 3_600_000;
    // A change to the Vector (an annotation: no new generation) brings it back to the controller at the new time.
    tc.apply({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Vector',
      metadata: { name: 'v', namespace: 'default', annotations: { 'example.com/touched': 'yes' } },
      spec: { source: { datasetRef: { name: 'd' } }, target: { machineRef: { name: 'store' }, dataset: `${pool.name}/replicas/v` }, keyRotation: { interval: '1h' } },
    });
    await eventually(
      () =>
        tc.requests.some((r) => r.method === 'PATCH' && r.url.includes('/events/')) &&
        tc.requests.some((r) => r.method === 'PATCH' && r.url.includes('/datasets/d/status')) &&
        tc.requests.some((r) => r.method === 'PATCH' && r.url.includes('/storagetargets/st/status')) &&
        tc.requests.some((r) => r.method === 'PATCH' && r.url.includes('/secrets/vector.default.v')) &&
        tc.requests.some((r) => r.method === 'GET' && r.url.includes('/secrets?'))
          ? true
          : undefined,
      'a repeated event, a Dataset status, a StorageTarget status, a rotated vector key and a drift check',
      60_000,
    );
    await operator.stop();
  });

  afterAll(async () => {
    await operator?.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('builds with kubectl kustomize into the objects a deployment needs', () => {
    const kinds = docs.map((d) => `${String(d.kind)}/${String((d.metadata as { name: string }).name)}`).sort();
    expect(kinds).toEqual([
      'ClusterRole/bdr-controller',
      'ClusterRoleBinding/bdr-controller',
      'Deployment/bdr-controller',
      'Namespace/bdr-system',
      'Role/bdr-controller',
      'RoleBinding/bdr-controller',
      'Service/bdr-metrics',
      'ServiceAccount/bdr',
    ]);
    const deployment = docs.find((d) => d.kind === 'Deployment') as { spec: { replicas: number; template: { spec: Record<string, unknown> } } };
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec as { securityContext: { runAsNonRoot: boolean }; containers: Array<Record<string, unknown>> };
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    const [container] = pod.containers;
    expect(container?.livenessProbe).toBeDefined();
    expect(container?.readinessProbe).toBeDefined();
    expect((container?.resources as { requests?: object }).requests).toBeDefined();
  });

  it("runs the container with a command and flags that bdr accepts", async () => {
    const deployment = docs.find((d) => d.kind === 'Deployment') as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    const args = deployment.spec.template.spec.containers[0]?.args ?? [];
    expect(args[0]).toBe('run');
    const help = await runBdr(['run', '--help']);
    expect(help.exitCode).toBe(0);
    for (const flag of args.filter((a) => a.startsWith('--'))) expect(help.stdout).toContain(flag);
  });

  it('grants exactly the API calls the controllers make: nothing missing, nothing unused', () => {
    const grants: Grant[] = [];
    for (const d of docs) {
      if (d.kind !== 'ClusterRole' && d.kind !== 'Role') continue;
      const namespace = d.kind === 'Role' ? (d.metadata as { namespace: string }).namespace : undefined;
      for (const rule of (d.rules as Rule[]) ?? []) {
        for (const group of rule.apiGroups) for (const resource of rule.resources) for (const verb of rule.verbs) {
          grants.push({ group, resource, verb, ...(namespace ? { namespace } : {}) });
        }
      }
    }
    const allows = (g: Grant, call: Grant) =>
      g.group === call.group && g.resource === call.resource && g.verb === call.verb && (g.namespace === undefined || g.namespace === call.namespace);

    const calls = tc.requests.map((r) => attributes(r.method, r.url)).filter((c): c is Grant => c !== undefined);
    expect(calls.length).toBeGreaterThan(10);
    const denied = calls.filter((c) => !grants.some((g) => allows(g, c)));
    expect(denied.map((c) => `${c.verb} ${c.group}/${c.resource} in ${c.namespace ?? '(cluster)'}`)).toEqual([]);
    const unused = grants.filter((g) => !calls.some((c) => allows(g, c)));
    expect(unused.map((g) => `${g.verb} ${g.group}/${g.resource}`)).toEqual([]);
  });
});
