import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Machine } from '../../api/types.ts';
import { LAST_PROBE_REFRESH_PROBES } from '../../controllers/machine-controller.ts';
import { startOperator, type Operator } from '../../controllers/operator.ts';
import { KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { machineKind } from '../../api/kinds/index.ts';
import { silentLogger } from '../../metrics/log.ts';
import { TestBed, type TestMachine, type TestPool } from '../testbed/index.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

const MACHINES = resourceOf(machineKind);
const PROBE_MS = 500;

describe('Machine controller on the embedded cluster and real sshd + zfs-fuse', () => {
  const bed = new TestBed();
  let tc: TestCluster;
  let client: KubeClient;
  let pool: TestPool;
  let good: TestMachine;
  let impostor: TestMachine;
  let operator: Operator;

  /** The test bed describes a Machine with a namespace; Machine is cluster-scoped. */
  const machineObject = (m: TestMachine, overrides: Partial<Machine['spec']['connection']> = {}) => ({
    apiVersion: 'bdr.dev/v1alpha1',
    kind: 'Machine',
    metadata: { name: m.name },
    spec: { connection: { ...m.machine.spec.connection, ...overrides }, pools: [pool.name] },
  });

  const getMachine = (name: string) => client.get<Machine>(MACHINES, name);

  beforeAll(async () => {
    pool = await bed.pool();
    good = await bed.machine('good');
    impostor = await bed.machine('impostor');
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
    tc.apply(good.secret);
    tc.apply(impostor.secret);
    tc.apply(machineObject(good));
    // The impostor's sshd presents its own host key, but the Machine pins good's: a man in the middle.
    tc.apply(machineObject(impostor, { hostKey: good.machine.spec.connection.hostKey }));
    operator = await startOperator({
      kubeConfig: tc.kubeConfig,
      leaderElection: false,
      metrics: { port: 0 },
      probeIntervalMs: PROBE_MS,
      log: silentLogger,
    });
    await operator.ready;
  });

  afterAll(async () => {
    await operator?.stop();
    await tc?.stop();
    await bed.cleanup();
  });

  it('becomes Ready with its pools, ZFS implementation and verified host key in status', async () => {
    const m = await eventually(async () => {
      const obj = await getMachine('good');
      return obj?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? obj : undefined;
    }, 'Machine good to become Ready');
    const status = m.status ?? {};
    expect(status.observedGeneration).toBe(m.metadata.generation);
    expect(status.pools?.map((p) => p.name)).toEqual([pool.name]);
    const p = status.pools?.[0];
    expect(p?.health).toBe('ONLINE');
    expect(p?.sizeBytes).toBeGreaterThan(100 * 1024 * 1024);
    expect((p?.allocatedBytes ?? 0) + (p?.freeBytes ?? 0)).toBeGreaterThan(0);
    expect(status.zfs?.implementation).toBe('Legacy');
    expect(status.zfs?.capabilities?.length).toBeGreaterThan(0);
    expect(status.zfs?.capabilities).toEqual([...(status.zfs?.capabilities ?? [])].sort());
    expect(status.hostKeyFingerprint).toMatch(/^SHA256:/);
    const types = Object.fromEntries((status.conditions ?? []).map((c) => [c.type, c.status]));
    expect(types).toEqual({ Ready: 'True', Reachable: 'True', HostKeyVerified: 'True' });
  });

  it('stalls a Machine whose host presents another key, and runs nothing on it', async () => {
    const m = await eventually(async () => {
      const obj = await getMachine('impostor');
      return obj?.status?.conditions?.find((c) => c.type === 'Stalled')?.status === 'True' ? obj : undefined;
    }, 'Machine impostor to stall');
    const stalled = m.status?.conditions?.find((c) => c.type === 'Stalled');
    expect(stalled?.reason).toBe('HostKeyMismatch');
    expect(m.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('False');
    expect(m.status?.conditions?.find((c) => c.type === 'HostKeyVerified')?.reason).toBe('HostKeyMismatch');
    // The client broke off during key exchange: the impostor never saw a login attempt, let alone a command.
    const log = await readFile(impostor.sshd.logPath, 'utf8');
    expect(log).not.toMatch(/Accepted publickey|Starting session|User child/);
    const events = await tc.kubeConfig
      .makeApiClient((await import('@kubernetes/client-node')).CoreV1Api)
      .listNamespacedEvent({ namespace: 'default' });
    expect(events.items.some((e) => e.reason === 'HostKeyMismatch' && e.involvedObject.name === 'impostor')).toBe(true);
  });

  it('writes status while idle only to refresh lastProbeTime, once per LAST_PROBE_REFRESH_PROBES probes', async () => {
    await eventually(async () => ((await getMachine('good'))?.status?.pools ? true : undefined), 'a first probe');
    const statusWrites = () => tc.requests.filter((r) => r.method === 'PATCH' && r.url.includes('/machines/good/status')).length;
    const probes = async () => {
      const text = await (await fetch(`${operator.metricsUrl ?? ''}/metrics`)).text();
      return Number(/bdr_machine_probe_duration_seconds_count\{machine="good"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const lastProbe = async () => (await getMachine('good'))?.status?.lastProbeTime ?? '';
    const p0 = await probes();
    const w0 = statusWrites();
    const t0 = await lastProbe();
    expect(t0).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // Counted in probes, not in time: a loaded machine probes later, and the bound holds all the same.
    const wanted = 2 * LAST_PROBE_REFRESH_PROBES + 5;
    await eventually(async () => ((await probes()) >= p0 + wanted ? true : undefined), `${wanted} more probes`, 120_000);
    const p1 = await probes();
    const writes = statusWrites() - w0;
    // The counts are read one after the other, so one probe either side may be in flight.
    expect(writes).toBeLessThanOrEqual(Math.ceil((p1 - p0) / LAST_PROBE_REFRESH_PROBES) + 1);
    expect(writes).toBeGreaterThanOrEqual(Math.floor((p1 - p0) / LAST_PROBE_REFRESH_PROBES) - 1);
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(Date.parse(await lastProbe())).toBeGreaterThan(Date.parse(t0));
  }, 180_000);

  it('exports machine and pool gauges computed from the probes', async () => {
    const url = operator.metricsUrl ?? '';
    const body = await eventually(async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return text.includes('bdr_machine_up{machine="impostor"}') ? text : undefined;
    }, 'machine gauges');
    expect(body).toContain('bdr_machine_up{machine="good"} 1');
    expect(body).toContain('bdr_machine_up{machine="impostor"} 0');
    expect(body).toMatch(new RegExp(`bdr_pool_size_bytes\\{machine="good",pool="${pool.name}"\\} \\d+`));
    expect(body).toContain(`bdr_pool_health{machine="good",pool="${pool.name}",state="ONLINE"} 1`);
    expect(body).toMatch(/controller_runtime_reconcile_total\{controller="machine",result="requeue_after"\} \d+/);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('probes again when the spec changes and reports the new generation', async () => {
    const before = await getMachine('impostor');
    tc.apply({ ...machineObject(impostor), metadata: { name: 'impostor' } });
    const m = await eventually(async () => {
      const obj = await getMachine('impostor');
      const ready = obj?.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' && obj?.status?.observedGeneration === obj?.metadata.generation ? obj : undefined;
    }, 'the fixed Machine to become Ready');
    expect(m.metadata.generation).toBeGreaterThan(before?.metadata.generation ?? 0);
    expect(m.status?.conditions?.some((c) => c.type === 'Stalled')).toBe(false);
  });
});
