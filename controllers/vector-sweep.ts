/**
 * Drift, both ways, per machine: once per probe interval (and at every start, so a Vector deleted while the
 * operator was down is caught) each machine gets
 * - on a storage machine, one read of authorized_keys: every line of bdr's vector tags that belongs to no live
 *   vector paired here is removed, and a live vector's missing or edited line is put back, in one edit that
 *   keeps every other line byte for byte; and the guard is put back if it changed;
 * - on every machine, one listing of the vector key directories: a directory of a vector that no longer exists
 *   (or whose primary is elsewhere now) is removed, and a live vector's missing or edited files are rewritten.
 * Vectors being reconciled or in the middle of a rotation are left to their own reconcile.
 */
import type { Machine, Vector } from '../api/types.ts';
import { editAuthorizedKeys, listEntries, removeEntries, renderEntry, upsertEntry } from '../nodes/authorized-keys.ts';
import { installVectorIdentity, listVectorIdentities, removeVectorIdentity, vectorIdentityContent } from '../nodes/identity.ts';
import { parseDuration } from '../planning/duration.ts';
import { ensureGuard } from './guard-currency.ts';
import type { MachineConnections } from './machine-connections.ts';
import { systemClock, type Clock } from './runtime/clock.ts';
import type { ReconcileContext, ReconcileResult, Reconciler } from './runtime/controller.ts';
import type { EventRecorder } from './runtime/events.ts';
import { objectKey, type Informer } from './runtime/informer.ts';
import type { AppliedVector } from './vector-controller.ts';
import { identityInput, machinePaths, outboundOf, ownerTags, vectorEntry, vectorOfOwner } from './vector-layout.ts';
import type { VectorKeys, VectorKeyStore } from './vector-keys.ts';

const DEFAULT_INTERVAL_MS = 5 * 60_000;
const RETRY_MS = 30_000;

export interface VectorSweepDeps {
  machines: Informer<Machine>;
  vectors: Informer<Vector>;
  connections: MachineConnections;
  keys: VectorKeyStore;
  events: EventRecorder;
  /** The Vector controller's view: where a vector is applied, and whether it is being reconciled now. */
  appliedOf(vector: Vector): AppliedVector | undefined;
  isBusy(vectorKey: string): boolean;
  /** Asks the Vector controller to look at a vector again (e.g. its Secret vanished). */
  enqueueVector?(vectorKey: string): void;
  /** Overrides every Machine's probeInterval (tests). */
  intervalMs?: number;
  clock?: Clock;
}

export interface SweepResult {
  removedEntries: string[];
  restoredEntries: string[];
  removedDirs: string[];
  restoredDirs: string[];
}

export class VectorSweepReconciler implements Reconciler {
  private readonly last = new Map<string, { at: number; generation: number | undefined }>();
  private readonly clock: Clock;

  constructor(private readonly deps: VectorSweepDeps) {
    this.clock = deps.clock ?? systemClock;
  }

  private intervalOf(machine: Machine): number {
    if (this.deps.intervalMs !== undefined) return this.deps.intervalMs;
    const parsed = parseDuration(machine.spec.probeInterval ?? '5m');
    return parsed.ok ? parsed.value : DEFAULT_INTERVAL_MS;
  }

  async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult | void> {
    const machine = this.deps.machines.get(key);
    if (!machine) {
      this.last.delete(key);
      return;
    }
    if (machine.spec.suspend) return;
    const interval = this.intervalOf(machine);
    const now = this.clock.now();
    // Every probe rewrites the Machine's pool figures, which wakes this controller too: between its own
    // rounds it sweeps again only when the Machine's spec changed.
    const last = this.last.get(key);
    if (last && last.generation === machine.metadata.generation && now - last.at < interval) return { requeueAfterMs: last.at + interval - now };
    try {
      await this.sweep(machine);
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      ctx.log.warn('vector drift check failed; retrying', { machine: key, error: err as Error });
      return { requeueAfterMs: Math.min(RETRY_MS, interval) };
    }
    this.last.set(key, { at: now, generation: machine.metadata.generation });
    return { requeueAfterMs: interval };
  }

  /** One drift check of one machine; returns what it changed. */
  async sweep(machine: Machine): Promise<SweepResult> {
    const result: SweepResult = { removedEntries: [], restoredEntries: [], removedDirs: [], restoredDirs: [] };
    const name = machine.metadata.name;
    const vectors = this.deps.vectors.list();
    const byKey = new Map(vectors.map((v) => [objectKey(v), v]));
    const applied = new Map<string, AppliedVector>();
    for (const v of vectors) {
      const a = this.deps.appliedOf(v);
      if (a) applied.set(objectKey(v), a);
    }
    // Left alone: vectors under reconcile, being deleted (their finalizer cleans up), or mid-rotation.
    const allKeys = await this.deps.keys.listAll();
    const leftAlone = (vk: string) => {
      const v = byKey.get(vk);
      return this.deps.isBusy(vk) || (v !== undefined && v.metadata.deletionTimestamp !== undefined) || allKeys.get(vk)?.next !== undefined;
    };
    const pairedHere = [...applied].filter(([, a]) => a.machine === name);
    const primaryHere = [...applied].filter(([, a]) => a.primary === name);
    const handle = await this.deps.connections.get(machine);
    const conn = handle.connection;

    if ((machine.spec.role ?? 'Source') === 'Storage' || pairedHere.length > 0) {
      const paths = machinePaths(machine);
      const want = new Map<string, string>();
      const conflicts: string[] = [];
      // With the primary, the leaf or the key's from= unknown (a status from before they were recorded), the line is left as is.
      const unknownPrimary = new Set(pairedHere.filter(([, a]) => a.primary === undefined || a.leaf === undefined || a.from === undefined).map(([vk]) => vk));
      // The from= the controller authorized the key with (status.pairing.from): the sweep restores that line.
      const fromOf = (a: AppliedVector) => (a.from !== undefined ? a.from.split(',').filter(Boolean) : outboundOf(a.primary === undefined ? undefined : this.deps.machines.get(a.primary)));
      for (const [vk, a] of pairedHere) {
        if (unknownPrimary.has(vk)) continue;
        const keys: VectorKeys | undefined = allKeys.get(vk);
        if (!keys) {
          if (!leftAlone(vk)) {
            this.deps.keys.forget(vk);
            this.deps.enqueueVector?.(vk);
          }
          continue;
        }
        want.set(vk, renderEntry(vectorEntry(machine, vk, keys.current.publicKey, a.dataset, a.leaf ?? '', false, fromOf(a))));
      }
      await editAuthorizedKeys(
        conn,
        (content) => {
          // May run again on a concurrent change: what it reports is what the last run did.
          result.removedEntries = [];
          result.restoredEntries = [];
          conflicts.length = 0;
          let out = content;
          for (const { owner, line } of listEntries(content)) {
            const tag = vectorOfOwner(owner);
            if (!tag || leftAlone(tag.vector) || unknownPrimary.has(tag.vector)) continue;
            const expected = want.get(tag.vector);
            if (tag.next || expected === undefined) {
              out = removeEntries(out, owner);
              result.removedEntries.push(owner);
            } else if (line !== expected) {
              out = removeEntries(out, owner);
            }
          }
          for (const [vk, line] of want) {
            if (leftAlone(vk)) continue;
            if (!listEntries(out).some((e) => e.owner === ownerTags(vk).current && e.line === line)) {
              const keys = allKeys.get(vk);
              const a = applied.get(vk);
              if (!keys || !a) continue;
              try {
                out = upsertEntry(out, vectorEntry(machine, vk, keys.current.publicKey, a.dataset, a.leaf ?? '', false, fromOf(a)));
                result.restoredEntries.push(ownerTags(vk).current);
              } catch (err) {
                // A foreign line holding the same key: reported, and the other vectors' drift still fixed.
                conflicts.push(`${vk}: ${(err as Error).message}`);
              }
            }
          }
          return out;
        },
        paths.authorizedKeys,
      );
      for (const c of conflicts) {
        const v = byKey.get(c.slice(0, c.indexOf(':')));
        if (v) await this.deps.events.record(v, 'Warning', 'AuthorizationFailed', c.slice(c.indexOf(':') + 2));
      }
      if (pairedHere.length > 0) {
        await ensureGuard(handle, paths.guard, { recheck: true });
      }
    }

    const root = machinePaths(machine).vectorKeys;
    const found = await listVectorIdentities(conn, root);
    const seen = new Set<string>();
    for (const dir of found) {
      const vk = `${dir.namespace}/${dir.name}`;
      seen.add(vk);
      if (leftAlone(vk)) continue;
      const a = applied.get(vk);
      // A live vector whose source cannot be resolved right now: where its primary is, is unknown; leave it.
      if (a && a.primary === undefined) continue;
      if (!byKey.has(vk) || !a || a.primary !== name) {
        await removeVectorIdentity(conn, dir.dir);
        result.removedDirs.push(vk);
        continue;
      }
      if (await this.restoreFiles(machine, vk, a, allKeys.get(vk), dir.files)) result.restoredDirs.push(vk);
    }
    for (const [vk, a] of primaryHere) {
      if (seen.has(vk) || leftAlone(vk)) continue;
      if (await this.restoreFiles(machine, vk, a, allKeys.get(vk), new Map())) result.restoredDirs.push(vk);
    }

    for (const owner of result.restoredEntries) {
      const v = byKey.get(vectorOfOwner(owner)?.vector ?? '');
      if (v) await this.deps.events.record(v, 'Warning', 'KeyAuthorized', `the key's authorized_keys entry on ${name} was missing or edited; put back`);
    }
    for (const vk of result.restoredDirs) {
      const v = byKey.get(vk);
      if (v) await this.deps.events.record(v, 'Warning', 'KeyAuthorized', `the key files on ${name} were missing or edited; put back`);
    }
    return result;
  }

  /** Rewrites a live vector's key files on its primary when they differ from what they should hold. */
  private async restoreFiles(
    primary: Machine,
    vk: string,
    a: AppliedVector,
    keys: VectorKeys | undefined,
    files: Map<string, { mode: string; content: string }>,
  ): Promise<boolean> {
    const storage = this.deps.machines.get(a.machine);
    if (!keys || !storage) return false;
    const input = identityInput(primary, storage, vk, keys.current.privateKey);
    const want = vectorIdentityContent(input);
    const same = (file: string, content: string) => files.get(file)?.content === content && files.get(file)?.mode === '600';
    if (same('id', want.identity) && same('known_hosts', want.knownHosts)) return false;
    await installVectorIdentity((await this.deps.connections.get(primary)).connection, input);
    return true;
  }
}
