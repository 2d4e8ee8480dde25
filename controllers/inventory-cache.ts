/**
 * One `zfs get` per machine per cycle, however many Datasets live on it: concurrent reconciles of datasets on
 * the same machine share one in-flight inventory, and a fresh enough one is reused. Writes (snapshot, destroy,
 * create) invalidate the machine's entry so that the next reader sees them.
 */
import type { Inventory } from '../zfs/inventory.ts';
import type { ZfsMachine } from '../zfs/machine.ts';
import { systemClock, type Clock } from './runtime/clock.ts';

interface Entry {
  promise: Promise<Inventory>;
  at: number;
  generation: number;
}

export class InventoryCache {
  private readonly entries = new Map<string, Entry>();
  private readonly generations = new Map<string, number>();
  /** How many inventories were actually fetched, per machine (tests and metrics). */
  readonly fetches = new Map<string, number>();

  constructor(
    private readonly maxAgeMs = 2_000,
    private readonly clock: Clock = systemClock,
  ) {}

  get(machine: string, zfs: ZfsMachine, roots: readonly string[] = []): Promise<Inventory> {
    const now = this.clock.now();
    const generation = this.generations.get(machine) ?? 0;
    const cached = this.entries.get(machine);
    if (cached && cached.generation === generation && now - cached.at <= this.maxAgeMs) return cached.promise;
    const promise = zfs.inventory({ roots });
    this.fetches.set(machine, (this.fetches.get(machine) ?? 0) + 1);
    const entry = { promise, at: now, generation };
    this.entries.set(machine, entry);
    promise.catch(() => {
      if (this.entries.get(machine) === entry) this.entries.delete(machine);
    });
    return promise;
  }

  invalidate(machine: string): void {
    this.generations.set(machine, (this.generations.get(machine) ?? 0) + 1);
    this.entries.delete(machine);
  }
}
