/**
 * The seed's per-machine task loop, as the imperative shell around planning/tasks.ts: work is submitted as
 * tasks; whenever one is submitted or finishes, the planner picks what may start now given the machine's free
 * ZFS and transfer slots, the priorities, the action order and the boost of recently failed sends.
 */
import { DEFAULT_SLOTS, selectTasksToStart, type MachineSlots, type QueuedTask, type RunningTask, type TaskAction, type TaskKind } from '../planning/tasks.ts';
import type { Machine } from '../api/types.ts';
import { systemClock, type Clock } from './runtime/clock.ts';

export interface TaskRequest<T> {
  machine: string;
  kind: TaskKind;
  action: TaskAction;
  priority: number;
  /** Identifies the work for the failed-send boost (e.g. the vector). */
  subject?: string;
  run: () => Promise<T>;
}

interface Pending {
  task: QueuedTask;
  start: () => void;
}

export class TaskRunner {
  private readonly queued = new Map<string, Pending>();
  private readonly running = new Map<string, RunningTask>();
  private readonly slots = new Map<string, MachineSlots>();
  private readonly failedSends = new Map<string, number>();
  /** Most tasks of one kind seen running at once on a machine, since the runner started (tests, benchmarks). */
  private readonly peaks = new Map<string, number>();
  private seq = 0;

  constructor(private readonly clock: Clock = systemClock) {}

  /** The Machine's spec.slots; raising them starts waiting work at once, lowering them lets running work finish. */
  setSlots(machine: string, slots: MachineSlots): void {
    this.slots.set(machine, slots);
    this.pump();
  }

  /** Back to the defaults, for a Machine that is gone. */
  forgetSlots(machine: string): void {
    this.slots.delete(machine);
    this.pump();
  }

  slotsOf(machine: string): MachineSlots {
    return this.slots.get(machine) ?? DEFAULT_SLOTS;
  }

  peakRunning(machine: string, kind: TaskKind): number {
    return this.peaks.get(`${machine}/${kind}`) ?? 0;
  }

  /** Tasks waiting and running per machine, for metrics and tests. */
  snapshot(): { queued: QueuedTask[]; running: RunningTask[] } {
    return { queued: [...this.queued.values()].map((p) => p.task), running: [...this.running.values()] };
  }

  submit<T>(request: TaskRequest<T>): Promise<T> {
    const id = `${request.machine}/${request.action}/${++this.seq}`;
    const lastFailed = request.subject ? this.failedSends.get(request.subject) : undefined;
    const task: QueuedTask = {
      id,
      machine: request.machine,
      kind: request.kind,
      action: request.action,
      priority: request.priority,
      enqueuedAt: this.clock.now(),
      ...(lastFailed !== undefined ? { lastFailedSendAt: lastFailed } : {}),
    };
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        this.running.set(id, { id, machine: task.machine, kind: task.kind });
        const now = [...this.running.values()].filter((r) => r.machine === task.machine && r.kind === task.kind).length;
        const peakKey = `${task.machine}/${task.kind}`;
        if (now > (this.peaks.get(peakKey) ?? 0)) this.peaks.set(peakKey, now);
        request
          .run()
          .then(
            (value) => {
              if (request.subject && request.action === 'send') this.failedSends.delete(request.subject);
              resolve(value);
            },
            (err: unknown) => {
              if (request.subject && request.action === 'send') this.failedSends.set(request.subject, this.clock.now());
              reject(err);
            },
          )
          .finally(() => {
            this.running.delete(id);
            this.pump();
          });
      };
      this.queued.set(id, { task, start });
      this.pump();
    });
  }

  private pump(): void {
    if (this.queued.size === 0) return;
    const selection = selectTasksToStart({
      queued: [...this.queued.values()].map((p) => p.task),
      running: [...this.running.values()],
      slots: Object.fromEntries(this.slots),
      now: this.clock.now(),
    });
    for (const task of selection.start) {
      const pending = this.queued.get(task.id);
      this.queued.delete(task.id);
      pending?.start();
    }
  }
}

/** A Machine's spec.slots with the schema's defaults (an object written before the defaults existed has none). */
export function machineSlots(machine: Machine): MachineSlots {
  return { zfs: machine.spec.slots?.zfs ?? DEFAULT_SLOTS.zfs, transfer: machine.spec.slots?.transfer ?? DEFAULT_SLOTS.transfer };
}
