import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../metrics/log.ts';
import type { Clock } from './runtime/clock.ts';
import type { TaskRunner } from './task-runner.ts';

/** How `bdr up` and `bdr run` start the controllers. */
export interface OperatorOptions {
  kubeConfig: KubeConfig;
  /** Namespace of the leader-election Lease and of events about cluster-scoped objects. Default bdr-system. */
  namespace?: string;
  /** This instance's name in the Lease; default hostname-pid. */
  identity?: string;
  /** Leader election on a coordination.k8s.io Lease; on by default, off for single-instance standalone mode. */
  leaderElection?: boolean | { leaseName?: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  /** Serve /metrics, /healthz, /readyz on this address; false to serve nothing. Default 127.0.0.1:9464 … */
  metrics?: false | { host?: string; port: number };
  /** Machine probe interval override for tests (otherwise each Machine's spec.probeInterval). */
  probeIntervalMs?: number;
  /** Time for every controller; tests move it ahead (a key due for rotation). The system clock by default. */
  clock?: Clock;
  log?: Logger;
  /** The task runner (tests observe its slots and concurrency); a new one by default. */
  tasks?: TaskRunner;
}

export interface Operator {
  /** Resolves when informers have synced and, with leader election, when this instance is leading or following. */
  readonly ready: Promise<void>;
  /** URL of the metrics endpoint, when serving one. */
  readonly metricsUrl?: string;
  isLeader(): boolean;
  /**
   * Resolves once every controller has worked through what is queued (one round: each object reconciled, and
   * what that reconcile queued in turn), ignoring work scheduled for later; for `bdr up --once`.
   */
  waitIdle(timeoutMs?: number): Promise<boolean>;
  /** Stops reconciling, releases the Lease, closes watches and the endpoint; waits for running reconciles up to deadlineMs. */
  stop(deadlineMs?: number): Promise<void>;
}
