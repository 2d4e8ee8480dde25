/**
 * The imperative side of pairing: builds a PairingTarget from the cache (as the StorageTarget controller
 * reports it) and asks planning/pairing. Decisions
 * for one StorageTarget are serialised, and each is recorded here the moment it is made, before any status
 * write reaches the cache: the next decision counts it, so two vectors reconciled at once never both read a
 * stale count. What is recorded here wins over status.pairing (the cache may lag behind this process).
 */
import type { Machine, StorageTarget, Vector } from '../api/types.ts';
import { decidePairing, type PairingDecision } from '../planning/pairing.ts';
import { objectKey } from './runtime/informer.ts';
import { pairingTargetOf } from './storage-target-controller.ts';

export class PairingLedger {
  private readonly assigned = new Map<string, string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly cursors = new Map<string, { cursor: string; streak: number }>();

  /** The machine a vector is paired with as far as this process knows, else what its status says. */
  machineOf(vector: Vector): string | undefined {
    return this.assigned.get(objectKey(vector)) ?? vector.status?.pairing?.machine;
  }

  /** Where the RoundRobin turn stands after this process's decisions for a target. */
  turnOf(target: string): { cursor: string; streak: number } | undefined {
    return this.cursors.get(target);
  }

  record(vectorKey: string, machine: string): void {
    this.assigned.set(vectorKey, machine);
  }

  forget(vectorKey: string): void {
    this.assigned.delete(vectorKey);
  }

  /** Decides under the target's lock, counting every pairing of that target this process knows of. */
  decide(target: StorageTarget, vector: Vector, vectors: () => readonly Vector[], machine: (name: string) => Machine | undefined): Promise<PairingDecision> {
    const name = target.metadata.name;
    const run = async (): Promise<PairingDecision> => {
      const key = objectKey(vector);
      // The StorageTarget controller's view of the target, with each vector's pairing as this process knows
      // it (ahead of the cache), and the round-robin turn as this process last left it.
      const known = vectors()
        .filter((v) => objectKey(v) !== key)
        .map((v) => {
          const machine = this.machineOf(v);
          return machine === undefined ? v : { ...v, status: { ...(v.status ?? {}), pairing: { ...(v.status?.pairing ?? {}), machine } } };
        });
      const turn = this.cursors.get(name);
      const view = turn ? { ...target, status: { ...(target.status ?? {}), roundRobin: { lastMachine: turn.cursor, streak: turn.streak } } } : target;
      const pt = pairingTargetOf(view, machine, known);
      const current = this.machineOf(vector);
      const decision = decidePairing(pt, { key, ...(current !== undefined ? { current } : {}) });
      if (decision.kind === 'pair' || decision.kind === 'repair') {
        const previous = turn ?? (pt.roundRobinCursor !== undefined ? { cursor: pt.roundRobinCursor, streak: pt.roundRobinStreak ?? 1 } : undefined);
        this.cursors.set(name, { cursor: decision.machine, streak: previous?.cursor === decision.machine ? previous.streak + 1 : 1 });
      }
      if (decision.kind !== 'none') this.assigned.set(key, decision.machine);
      return decision;
    };
    const previous = this.locks.get(name) ?? Promise.resolve();
    const next = previous.then(run, run);
    const settled = next.catch(() => undefined);
    this.locks.set(name, settled);
    void settled.then(() => {
      if (this.locks.get(name) === settled) this.locks.delete(name);
    });
    return next;
  }
}
