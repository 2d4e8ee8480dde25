/**
 * The imperative side of pairing: builds a PairingTarget from the cache and asks planning/pairing. Decisions
 * for one StorageTarget are serialised, and each is recorded here the moment it is made, before any status
 * write reaches the cache: the next decision counts it, so two vectors reconciled at once never both read a
 * stale count. What is recorded here wins over status.pairing (the cache may lag behind this process).
 */
import type { Machine, StorageTarget, Vector } from '../api/types.ts';
import { decidePairing, type PairingDecision, type PairingMachine, type PairingTarget } from '../planning/pairing.ts';
import { isTrue } from './runtime/conditions.ts';
import { objectKey } from './runtime/informer.ts';

const poolOf = (dataset: string) => dataset.split('/')[0] ?? dataset;

export function pairingTargetOf(
  target: StorageTarget,
  machine: (name: string) => Machine | undefined,
  vectorCount: (machine: string) => number,
  roundRobin: { cursor?: string; streak?: number } = {},
): PairingTarget {
  const pool = poolOf(target.spec.parentDataset);
  const machines: PairingMachine[] = target.spec.machines.map((entry) => {
    const m = machine(entry.name);
    const p = m?.status?.pools?.find((x) => x.name === pool);
    return {
      name: entry.name,
      weight: entry.weight ?? 100,
      exists: m !== undefined,
      ...(m ? { role: m.spec.role ?? 'Source' } : {}),
      ready: m !== undefined && isTrue(m.status?.conditions, 'Ready'),
      ...(p?.sizeBytes !== undefined ? { sizeBytes: p.sizeBytes } : {}),
      ...(p?.allocatedBytes !== undefined ? { allocatedBytes: p.allocatedBytes } : {}),
      ...(p?.freeBytes !== undefined ? { freeBytes: p.freeBytes } : {}),
      vectorCount: vectorCount(entry.name),
    };
  });
  return {
    strategy: target.spec.pairing?.strategy ?? 'MostFree',
    accessMode: target.spec.accessMode ?? 'ReadWrite',
    criticalPercent: target.spec.capacity?.criticalPercent ?? 90,
    suspended: target.spec.suspend === true,
    machines,
    ...(roundRobin.cursor !== undefined ? { roundRobinCursor: roundRobin.cursor, roundRobinStreak: roundRobin.streak ?? 1 } : {}),
  };
}

export class PairingLedger {
  private readonly assigned = new Map<string, string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly cursors = new Map<string, { cursor: string; streak: number }>();

  /** The machine a vector is paired with as far as this process knows, else what its status says. */
  machineOf(vector: Vector): string | undefined {
    return this.assigned.get(objectKey(vector)) ?? vector.status?.pairing?.machine;
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
      const counts = new Map<string, number>();
      for (const v of vectors()) {
        if (v.spec.target.storageTargetRef?.name !== name || objectKey(v) === key) continue;
        const at = this.machineOf(v);
        if (at !== undefined) counts.set(at, (counts.get(at) ?? 0) + 1);
      }
      const pt = pairingTargetOf(target, machine, (m) => counts.get(m) ?? 0, this.cursors.get(name) ?? {});
      const current = this.machineOf(vector);
      const decision = decidePairing(pt, { key, ...(current !== undefined ? { current } : {}) });
      if (decision.kind === 'pair' || decision.kind === 'repair') {
        const previous = this.cursors.get(name);
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
