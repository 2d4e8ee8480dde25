/**
 * Machine and pool gauges, computed at scrape time from the probe results the Machine controller keeps, so a
 * restart or a stalled reconcile can never leave a stale value frozen in a gauge.
 */
import { Gauge, Histogram, type Registry } from 'prom-client';

export interface PoolSample {
  name: string;
  size: number;
  allocated: number;
  free: number;
  health: string;
}

export interface MachineSample {
  machine: string;
  up: boolean;
  pools: readonly PoolSample[];
  lastProbeMs: number;
}

export const POOL_HEALTH_STATES = ['ONLINE', 'DEGRADED', 'FAULTED', 'OFFLINE', 'UNAVAIL', 'REMOVED', 'SUSPENDED'] as const;

export class MachineMetrics {
  readonly probeDuration: Histogram<'machine'>;

  constructor(registry: Registry, samples: () => Iterable<MachineSample>) {
    const registers = [registry];
    new Gauge({
      name: 'bdr_machine_up',
      help: 'Whether the last probe of the machine succeeded (1) or not (0)',
      labelNames: ['machine'],
      registers,
      collect() {
        this.reset();
        for (const s of samples()) this.set({ machine: s.machine }, s.up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'bdr_machine_last_probe_timestamp_seconds',
      help: 'When the machine was last probed, successfully or not',
      labelNames: ['machine'],
      registers,
      collect() {
        this.reset();
        for (const s of samples()) this.set({ machine: s.machine }, s.lastProbeMs / 1000);
      },
    });
    const poolGauge = (name: string, help: string, pick: (p: PoolSample) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['machine', 'pool'],
        registers,
        collect() {
          this.reset();
          for (const s of samples()) for (const p of s.pools) this.set({ machine: s.machine, pool: p.name }, pick(p));
        },
      });
    poolGauge('bdr_pool_size_bytes', 'Pool size in bytes', (p) => p.size);
    poolGauge('bdr_pool_allocated_bytes', 'Bytes allocated in the pool', (p) => p.allocated);
    poolGauge('bdr_pool_free_bytes', 'Free bytes in the pool', (p) => p.free);
    new Gauge({
      name: 'bdr_pool_health',
      help: 'Pool health: 1 for the current state, 0 for the others',
      labelNames: ['machine', 'pool', 'state'],
      registers,
      collect() {
        this.reset();
        for (const s of samples()) {
          for (const p of s.pools) {
            const states = new Set<string>([...POOL_HEALTH_STATES, p.health]);
            for (const state of states) this.set({ machine: s.machine, pool: p.name, state }, state === p.health ? 1 : 0);
          }
        }
      },
    });
    this.probeDuration = new Histogram({
      name: 'bdr_machine_probe_duration_seconds',
      help: 'How long a probe of the machine took',
      labelNames: ['machine'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }
}
