/**
 * Leader election on a coordination.k8s.io Lease, as client-go's leaderelection: the holder renews every
 * retry period; a candidate takes over once the record has not changed for a whole lease duration, measured on
 * its own clock from when it last saw the record change (so clock skew between replicas does not matter);
 * writes carry the resourceVersion, so two candidates cannot both win; the holder releases the lease on a
 * graceful stop so the next one takes over at once.
 */
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../../metrics/log.ts';
import { sleep, systemClock, type Clock } from './clock.ts';
import { isConflict, type KubeClient } from './kube.ts';

export interface LeaderElectionConfig {
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

export const DEFAULT_LEASE = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

export class LeaderElector {
  private leading = false;
  private observed: { holder: string; renew: string; at: number } | undefined;
  private lastRenew = 0;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly config: LeaderElectionConfig,
    private readonly callbacks: LeaderCallbacks,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader releases the lease so that another instance takes over immediately. */
  async stop(): Promise<void> {
    this.abort.abort(new Error('leader election stopped'));
    await this.loop?.catch(() => undefined);
    if (this.leading) {
      this.setLeading(false);
      await this.release().catch((err: unknown) => this.log.warn('could not release lease', { error: err as Error }));
    }
  }

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        const ok = await this.tryAcquireOrRenew();
        if (ok) this.lastRenew = this.clock.now();
        if (ok && !this.leading) this.setLeading(true);
      } catch (err) {
        this.log.debug('lease update failed', { error: err as Error });
      }
      if (this.leading && this.clock.now() - this.lastRenew > this.config.renewDeadlineMs) {
        this.log.warn('lost leadership: could not renew the lease in time', { lease: this.config.leaseName });
        this.setLeading(false);
      }
      try {
        await sleep(this.clock, this.config.retryPeriodMs, this.abort.signal);
      } catch {
        return;
      }
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.log.info(leading ? 'became leader' : 'stopped leading', { lease: this.config.leaseName, identity: this.config.identity });
    if (leading) this.callbacks.onStartedLeading();
    else this.callbacks.onStoppedLeading();
  }

  private record(now: Date, lease?: V1Lease): V1Lease {
    const mine = lease?.spec?.holderIdentity === this.config.identity;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.config.leaseName, namespace: this.config.namespace, resourceVersion: lease?.metadata?.resourceVersion },
      spec: {
        holderIdentity: this.config.identity,
        leaseDurationSeconds: Math.ceil(this.config.leaseDurationMs / 1000),
        acquireTime: mine && lease?.spec?.acquireTime ? lease.spec.acquireTime : now,
        renewTime: now,
        leaseTransitions: (lease?.spec?.leaseTransitions ?? 0) + (mine || !lease ? 0 : 1),
      },
    };
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, leaseName, identity } = this.config;
    const now = this.clock.now();
    const lease = await this.client.readLease(namespace, leaseName);
    if (!lease) {
      await this.client.createLease(namespace, this.record(new Date(now)));
      return true;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renew = String(lease.spec?.renewTime ?? '');
    if (!this.observed || this.observed.holder !== holder || this.observed.renew !== renew) {
      this.observed = { holder, renew, at: now };
    }
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
    const expired = holder === '' || now - this.observed.at > durationMs;
    if (holder !== identity && !expired) return false;
    try {
      await this.client.replaceLease(namespace, this.record(new Date(now), lease));
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  private async release(): Promise<void> {
    const lease = await this.client.readLease(this.config.namespace, this.config.leaseName);
    if (!lease || lease.spec?.holderIdentity !== this.config.identity) return;
    const now = new Date(this.clock.now());
    await this.client.replaceLease(this.config.namespace, {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now },
    });
  }
}
