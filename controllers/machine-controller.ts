/**
 * The Machine controller: probes each machine (connection, pinned host key, ZFS implementation and
 * capabilities, pools) on its probe interval and reports it in status and metrics. A host-key mismatch or a
 * refused login stalls the Machine (a human must act) and nothing runs on it; an unreachable machine is retried.
 */
import type { Machine, MachineStatus } from '../api/types.ts';
import type { MachineMetrics, MachineSample } from '../metrics/machine-metrics.ts';
import { NodeError } from '../nodes/errors.ts';
import { fingerprint as fingerprintOf } from '../nodes/host-key.ts';
import { parseDuration } from '../planning/duration.ts';
import type { ZfsCapabilities } from '../zfs/capabilities.ts';
import { ZfsError } from '../zfs/errors.ts';
import { MachineConnections, MachineSecretError } from './machine-connections.ts';
import { removeCondition, setCondition, summarize, type ConditionInput, type Outcome } from './runtime/conditions.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/controller.ts';
import type { EventRecorder } from './runtime/events.ts';
import type { Informer } from './runtime/informer.ts';
import { resourceOf, type KubeClient } from './runtime/kube.ts';
import { mergePatch } from './runtime/merge-patch.ts';
import { writeStatus } from './runtime/status.ts';
import { machineKind } from '../api/kinds/index.ts';
import type { Clock } from './runtime/clock.ts';


const MACHINE = resourceOf(machineKind);
const DEFAULT_PROBE_MS = 5 * 60_000;
/** An unreachable machine is tried again sooner than the probe interval, but not in a tight loop. */
const UNREACHABLE_RETRY_MS = 30_000;
/**
 * status.lastProbeTime goes out with every status change, and otherwise with every this-many-th probe: a reader
 * sees the probe is alive (never older than this many intervals) while an idle machine costs one write per
 * this many probes instead of one per probe.
 */
export const LAST_PROBE_REFRESH_PROBES = 10;

export interface MachineControllerDeps {
  client: KubeClient;
  machines: Informer<Machine>;
  connections: MachineConnections;
  events: EventRecorder;
  metrics?: MachineMetrics;
  clock: Clock;
  /** Overrides every Machine's probeInterval (tests). */
  probeIntervalMs?: number;
}

function capabilityNames(caps: ZfsCapabilities): string[] {
  return Object.entries(caps)
    .filter(([, v]) => v === true)
    .map(([k]) => k)
    .sort();
}

export class MachineReconciler implements Reconciler {
  private readonly samples = new Map<string, MachineSample>();
  /** Probes since status was last written, per machine. */
  private readonly probesSinceWrite = new Map<string, number>();

  constructor(private readonly deps: MachineControllerDeps) {}

  /** Latest probe per machine, for the scrape-time gauges. */
  probeSamples(): Iterable<MachineSample> {
    return this.samples.values();
  }

  private intervalOf(machine: Machine): number {
    if (this.deps.probeIntervalMs !== undefined) return this.deps.probeIntervalMs;
    const parsed = parseDuration(machine.spec.probeInterval ?? '5m');
    return parsed.ok ? parsed.value : DEFAULT_PROBE_MS;
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const { client, machines, connections, events, clock } = this.deps;
    const machine = machines.get(key);
    if (!machine) {
      await connections.drop(key);
      this.samples.delete(key);
      this.probesSinceWrite.delete(key);
      return;
    }
    if (machine.spec.suspend) {
      // Not probed: the last probe's conditions stay as they were, with Suspended beside them.
      const conditions = setCondition(machine.status?.conditions, { type: 'Suspended', status: 'True', reason: 'MachineSuspended', message: 'spec.suspend: not probed, and nothing runs for its Datasets and Vectors' }, machine.metadata.generation ?? 0, new Date(clock.now()));
      await writeStatus(client, MACHINE, machine, { ...(machine.status ?? {}), conditions });
      return;
    }
    const interval = this.intervalOf(machine);
    const generation = machine.metadata.generation ?? 0;
    const ssh = machine.spec.connection.type === 'ssh';
    const status: MachineStatus = { ...(machine.status ?? {}) };
    let conditions = removeCondition(status.conditions, 'Suspended');
    const now = new Date(clock.now());
    const set = (c: ConditionInput) => {
      conditions = setCondition(conditions, c, generation, now);
    };

    let outcome: Outcome;
    let requeueAfterMs = interval;
    let up = false;
    const started = clock.now();
    try {
      const handle = await connections.get(machine);
      const caps = await handle.zfs.capabilities();
      const inventory = await handle.zfs.inventory({ roots: machine.spec.pools ?? [], signal: ctx.signal });
      up = true;
      const pools = inventory.pools.map((p) => ({ name: p.name, health: p.health, sizeBytes: p.size, allocatedBytes: p.allocated, freeBytes: p.free }));
      status.zfs = {
        implementation: caps.implementation === 'openzfs' ? 'OpenZFS' : 'Legacy',
        ...(caps.version ? { version: caps.version } : {}),
        capabilities: capabilityNames(caps),
      };
      status.pools = pools;
      if (ssh) {
        const fingerprint = hostKeyFingerprint(machine.spec.connection.hostKey);
        if (fingerprint) status.hostKeyFingerprint = fingerprint;
        set({ type: 'HostKeyVerified', status: 'True', reason: 'Verified', message: `host presented the pinned key ${fingerprint ?? ''}`.trim() });
      }
      set({ type: 'Reachable', status: 'True', reason: 'Connected', message: `connected to ${handle.connection.description}` });
      const unhealthy = pools.filter((p) => p.health !== 'ONLINE');
      outcome =
        unhealthy.length > 0
          ? { state: 'failed', reason: 'PoolDegraded', message: `pool ${unhealthy.map((p) => `${p.name} is ${p.health}`).join(', ')}` }
          : { state: 'ready', reason: 'Succeeded', message: `${pools.length} pool(s), ZFS ${status.zfs.version ?? caps.implementation}` };
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      const message = (err as Error).message;
      // zfs/ wraps transport failures into ZfsError with the transport's kind; both speak the same kinds.
      const kind = err instanceof NodeError || err instanceof ZfsError ? err.kind : undefined;
      if (kind === 'hostKeyMismatch') {
        set({ type: 'HostKeyVerified', status: 'False', reason: 'HostKeyMismatch', message });
        set({ type: 'Reachable', status: 'Unknown', reason: 'HostKeyMismatch', message: 'refused to log in: the host key does not match' });
        outcome = { state: 'stalled', reason: 'HostKeyMismatch', message: `${message}; if the host was reinstalled, pin its new key in spec.connection.hostKey` };
        await events.record(machine, 'Warning', 'HostKeyMismatch', message);
      } else if (kind === 'authenticationFailed' || kind === 'invalidConfig') {
        set({ type: 'Reachable', status: kind === 'authenticationFailed' ? 'True' : 'Unknown', reason: 'AuthenticationFailed', message });
        const fix = kind === 'authenticationFailed' ? 'authorize the public key of the Secret on the machine' : 'fix spec.connection';
        outcome = { state: 'stalled', reason: kind === 'authenticationFailed' ? 'AuthenticationFailed' : 'InvalidSpec', message: `${message}; ${fix}` };
        await events.record(machine, 'Warning', outcome.reason, message);
      } else if (err instanceof MachineSecretError && err.reason === 'SecretNamespaceNotAllowed') {
        // Only a change of the Machine (which reconciles it at once) can lift this: no fast retry.
        outcome = { state: 'stalled', reason: err.reason, message };
        await events.record(machine, 'Warning', err.reason, message);
      } else if (err instanceof MachineSecretError) {
        outcome = { state: 'failed', reason: err.reason, message };
        requeueAfterMs = Math.min(interval, UNREACHABLE_RETRY_MS);
      } else if (kind === 'connectFailed' || kind === 'connectionLost' || kind === 'timeout') {
        set({ type: 'Reachable', status: 'False', reason: 'ConnectFailed', message });
        outcome = { state: 'failed', reason: 'MachineUnreachable', message };
        requeueAfterMs = Math.min(interval, UNREACHABLE_RETRY_MS);
        await events.record(machine, 'Warning', 'MachineUnreachable', message);
      } else if (err instanceof ZfsError) {
        set({ type: 'Reachable', status: 'True', reason: 'Connected', message: 'connected' });
        outcome = { state: 'failed', reason: 'ZfsUnavailable', message };
        requeueAfterMs = Math.min(interval, UNREACHABLE_RETRY_MS);
      } else {
        throw err;
      }
    }
    this.deps.metrics?.probeDuration.observe({ machine: key }, (clock.now() - started) / 1000);
    this.samples.set(key, {
      machine: key,
      up,
      lastProbeMs: clock.now(),
      pools: (status.pools ?? []).map((p) => ({ name: p.name, size: p.sizeBytes ?? 0, allocated: p.allocatedBytes ?? 0, free: p.freeBytes ?? 0, health: p.health ?? 'UNKNOWN' })),
    });

    status.conditions = summarize(conditions, outcome, generation, now);
    status.observedGeneration = generation;
    const since = (this.probesSinceWrite.get(key) ?? 0) + 1;
    const changed = mergePatch(machine.status ?? {}, status) !== undefined;
    if (changed || since >= LAST_PROBE_REFRESH_PROBES || !status.lastProbeTime) status.lastProbeTime = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const { written } = await writeStatus(client, MACHINE, machine, status);
    this.probesSinceWrite.set(key, written ? 0 : since);
    return { requeueAfterMs };
  }
}

function hostKeyFingerprint(hostKey: string | undefined): string | undefined {
  if (!hostKey) return undefined;
  const blob = hostKey.split(/\s+/)[1];
  if (!blob) return undefined;
  return fingerprintOf(Buffer.from(blob, 'base64'));
}
