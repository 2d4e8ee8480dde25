/**
 * Properties of planReplication over random source histories, targets (empty, received, renamed, diverged,
 * unrelated), holds and remote policies. The points that must be sent and the target snapshots that must go
 * come from an independent oracle written here: a straightforward UTC keepLast/hourly/daily evaluation that
 * does not use planning/retention.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planReplication, type ReplicaSnapshot, type ReplicationInput, type ReplicationPlan } from '../../planning/replication.ts';
import type { RetentionPolicy } from '../../planning/retention.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const START = Date.parse('2026-11-20T00:00:00Z');
const TAG = 'bdr:v';
const OTHER = 'sanoid';
const CAPS = { sendCompressed: true, sendRaw: true, sendLargeBlocks: true, resumeTokens: true };

type Scenario = 'empty' | 'received' | 'divergedSnapshot' | 'divergedWritten' | 'noCommon';

interface Case {
  readonly input: ReplicationInput;
  readonly scenario: Scenario;
  /** Source snapshots oldest first (the generator builds them in order). */
  readonly source: readonly ReplicaSnapshot[];
  /** Index in `source` of the common base, -1 without one. */
  readonly commonIndex: number;
}

const tagsArb = fc.constantFrom<readonly string[] | undefined>(undefined, [], [TAG], [OTHER], [TAG, OTHER]);

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    gaps: fc.array(fc.integer({ min: 10, max: 30 * 60 }), { minLength: 1, maxLength: 60 }), // minutes
    sourceHeld: fc.array(tagsArb, { maxLength: 60 }),
    scenario: fc.constantFrom<Scenario>('empty', 'received', 'received', 'received', 'divergedSnapshot', 'divergedWritten', 'noCommon'),
    commonFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    receivedMask: fc.array(fc.boolean(), { maxLength: 60 }),
    renamedMask: fc.array(fc.boolean(), { maxLength: 60 }),
    targetHeld: fc.array(tagsArb, { maxLength: 60 }),
    policy: fc.record({
      keepLast: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
      hourly: fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
      daily: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
    }),
    nowAfter: fc.integer({ min: 0, max: 2 * HOUR }),
    // An interrupted receive: none, or a stream from the base (or from nothing) to some source point.
    partial: fc.option(fc.record({ fromBase: fc.boolean(), nextPoint: fc.boolean(), toFraction: fc.double({ min: 0, max: 1, noNaN: true }) }), { nil: undefined }),
  })
  .map((r): Case => {
    let t = START;
    const source: ReplicaSnapshot[] = r.gaps.map((gap, i) => {
      t += gap * MINUTE;
      const held = r.sourceHeld[i];
      return { name: `tank/a@s${i}`, guid: `g${i}`, createdAt: t, createTxg: 10 + i * 3, ...(held !== undefined ? { held } : {}) };
    });
    const commonIndex = r.scenario === 'empty' || r.scenario === 'noCommon' ? -1 : Math.min(source.length - 1, Math.floor(r.commonFraction * source.length));
    const targetSnapshots: ReplicaSnapshot[] = [];
    for (let i = 0; i <= commonIndex; i++) {
      if (i !== commonIndex && !(r.receivedMask[i] ?? false)) continue;
      const s = source[i] as ReplicaSnapshot;
      const held = r.targetHeld[i];
      targetSnapshots.push({
        name: `backup/a@${(r.renamedMask[i] ?? false) ? `r${i}` : `s${i}`}`,
        guid: s.guid,
        createdAt: s.createdAt,
        createTxg: 1000 + i,
        ...(held !== undefined ? { held } : {}),
      });
    }
    if (r.scenario === 'divergedSnapshot') {
      targetSnapshots.push({ name: 'backup/a@by-hand', guid: 'x1', createdAt: (source[commonIndex] as ReplicaSnapshot).createdAt + MINUTE, createTxg: 5000 });
    }
    if (r.scenario === 'noCommon') {
      targetSnapshots.push({ name: 'backup/a@old', guid: 'x2', createdAt: START - DAY, createTxg: 7 });
    }
    // Often the point right after the base (what a cut stream most likely carried), else anywhere.
    const partialTo = r.partial === undefined ? undefined : r.partial.nextPoint && source[commonIndex + 1] !== undefined ? source[commonIndex + 1] : source[Math.min(source.length - 1, Math.floor(r.partial.toFraction * source.length))];
    const partialFrom = r.partial?.fromBase && commonIndex >= 0 ? (source[commonIndex] as ReplicaSnapshot).guid : undefined;
    const input: ReplicationInput = {
      now: t + r.nowAfter,
      source: { dataset: 'tank/a', snapshots: [...source].reverse() },
      target: {
        dataset: 'backup/a',
        exists: r.scenario !== 'empty',
        snapshots: targetSnapshots,
        writtenSinceNewest: r.scenario === 'divergedWritten' ? 1 + (r.gaps[0] as number) : 0,
        ...(partialTo !== undefined && r.scenario !== 'empty' ? { partialReceive: { token: `tok-${partialTo.guid}`, toGuid: partialTo.guid, ...(partialFrom !== undefined ? { fromGuid: partialFrom } : {}) } } : {}),
      },
      remotePolicy: r.policy,
      capabilities: { source: CAPS, target: CAPS },
      holdTag: TAG,
    };
    return { input, scenario: r.scenario, source, commonIndex };
  });

/** Independent keep set: newest, protected, keepLast, and per UTC hour/day the newest of the N most recent. */
function oracleKeep(snapshots: readonly { name: string; createdAt: number }[], policy: RetentionPolicy, protectedNames: ReadonlySet<string>): Set<string> {
  const newestFirst = [...snapshots].sort((a, b) => b.createdAt - a.createdAt || (a.name < b.name ? 1 : -1));
  const keep = new Set<string>();
  newestFirst.forEach((s, i) => {
    if (i === 0 || i < (policy.keepLast ?? 0) || protectedNames.has(s.name)) keep.add(s.name);
  });
  const tiers: [number | undefined, number][] = [[policy.hourly, HOUR], [policy.daily, DAY]];
  for (const [limit, length] of tiers) {
    const seen = new Set<number>();
    for (const s of newestFirst) {
      const period = Math.floor(s.createdAt / length);
      if (seen.has(period)) continue;
      seen.add(period);
      if (seen.size > (limit ?? 0)) break;
      keep.add(s.name);
    }
  }
  return keep;
}

const shortOf = (name: string): string => name.slice(name.indexOf('@') + 1);

/** Source snapshots the target holds after the plan's steps (a -I step brings every snapshot between its ends). */
function sentPoints(c: Case, plan: Extract<ReplicationPlan, { kind: 'send' }>): string[] {
  const index = new Map(c.source.map((s, i) => [s.name, i] as const));
  const out: string[] = [];
  for (const step of plan.steps) {
    const to = index.get(step.to) as number;
    const from = step.mode === 'I' ? (index.get(step.from as string) as number) : to - 1;
    for (let i = from + 1; i <= to; i++) out.push((c.source[i] as ReplicaSnapshot).name);
  }
  return out;
}

describe('planReplication properties', () => {
  it('refuses exactly the diverged and unrelated targets, and then proposes nothing', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planReplication(c.input);
        if (c.scenario === 'divergedSnapshot' || c.scenario === 'divergedWritten') {
          expect(plan).toEqual({ kind: 'refuse', reason: 'TargetDiverged', message: expect.stringContaining('zfs rollback -r') as string });
        } else if (c.scenario === 'noCommon') {
          expect(plan).toEqual({ kind: 'refuse', reason: 'NoCommonSnapshot', message: expect.stringContaining('zfs destroy -r backup/a') as string });
        } else {
          expect(['send', 'upToDate']).toContain(plan.kind);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('steps chain from the common base, strictly forward, ending at the newest source point', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planReplication(c.input);
        if (plan.kind !== 'send' && plan.kind !== 'upToDate') return;
        const newest = c.source.at(-1) as ReplicaSnapshot;
        const txg = new Map(c.source.map((s) => [s.name, s.createTxg as number] as const));
        if (plan.kind === 'upToDate') {
          expect(plan.common.source).toBe(newest.name);
          return;
        }
        const common = c.commonIndex >= 0 ? (c.source[c.commonIndex] as ReplicaSnapshot) : undefined;
        expect(plan.common?.guid).toBe(common?.guid);
        plan.steps.forEach((step, i) => {
          if (i === 0) {
            if (common) {
              expect(step).toMatchObject({ from: common.name, fromGuid: common.guid, fromOnTarget: plan.common?.target });
              expect(step.mode).not.toBe('full');
            } else {
              expect(step.mode).toBe('full');
              expect(step.from).toBeUndefined();
            }
          } else {
            const previous = plan.steps[i - 1];
            expect(step.from).toBe(previous?.to);
            expect(step.fromOnTarget).toBe(previous?.receivedAs);
            expect(step.mode).not.toBe('full');
          }
          expect(step.receivedAs).toBe(`backup/a@${shortOf(step.to)}`);
          const fromTxg = step.from === undefined ? -1 : (txg.get(step.from) as number);
          expect(txg.get(step.to) as number).toBeGreaterThan(fromTxg);
        });
        expect(plan.steps.at(-1)?.to).toBe(newest.name);
      }),
      { numRuns: 400 },
    );
  });

  it('sends exactly the points the remote policy keeps (plus the newest), -I only when it keeps them all', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planReplication(c.input);
        if (plan.kind !== 'send') return;
        const candidates = c.source.slice(c.commonIndex + 1);
        const asTarget = (s: ReplicaSnapshot): { name: string; createdAt: number } => ({ name: `backup/a@${shortOf(s.name)}`, createdAt: s.createdAt });
        const protectedNames = new Set(plan.common ? [plan.common.target] : []);
        const keep = oracleKeep([...c.input.target.snapshots, ...candidates.map(asTarget)], c.input.remotePolicy, protectedNames);
        const expected = candidates.filter((s, i) => keep.has(asTarget(s).name) || i === candidates.length - 1).map((s) => s.name);
        expect(sentPoints(c, plan)).toEqual(expected);
        // Every point after the chain's start kept, two or more of them: a single -I instead of a chain of -i.
        const chain = plan.steps.filter((s) => s.mode !== 'full');
        const chainStart = plan.steps[0]?.mode === 'full' ? candidates.findIndex((s) => s.name === plan.steps[0]?.to) : -1;
        const after = candidates.slice(chainStart + 1);
        const allKept = after.length >= 2 && after.every((s) => expected.includes(s.name));
        // Unless the first of those points resumes a cut stream on its own, then -I (or -i) over the rest.
        const resumedSplit = chain[0]?.resumeToken !== undefined && chain[0].mode === 'i' && plan.steps[0]?.mode !== 'full';
        if (allKept && resumedSplit) expect(chain.map((s) => s.mode)).toEqual(after.length - 1 > 1 ? ['i', 'I'] : ['i', 'i']);
        else if (allKept) expect(chain.map((s) => s.mode)).toEqual(['I']);
        else expect(chain.every((s) => s.mode === 'i')).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('prunes what the policy drops after the sends, never the newest, a held snapshot, the common base or a step base', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planReplication(c.input);
        if (plan.kind !== 'send' && plan.kind !== 'upToDate') return;
        const steps = plan.kind === 'send' ? plan.steps : [];
        const target = c.input.target.snapshots;
        const protectedNames = new Set<string>([plan.common?.target ?? '', plan.basesAfter.target]);
        for (const s of steps) if (s.fromOnTarget !== undefined) protectedNames.add(s.fromOnTarget);
        for (const t of target) if ((t.held ?? []).some((tag) => tag !== TAG)) protectedNames.add(t.name);
        const received = plan.kind === 'send' ? sentPoints(c, plan).map((n) => ({ name: `backup/a@${shortOf(n)}`, createdAt: c.source.find((s) => s.name === n)?.createdAt as number })) : [];
        const after = [...target.map((t) => ({ name: t.name, createdAt: t.createdAt })), ...received];
        const keep = oracleKeep(after, c.input.remotePolicy, protectedNames);
        const expected = target.filter((t) => !keep.has(t.name)).map((t) => t.name);
        expect(plan.prunes.map((p) => p.name)).toEqual(expected);
        const newestAfter = [...after].sort((a, b) => b.createdAt - a.createdAt)[0]?.name;
        for (const p of plan.prunes) {
          expect(p.name).not.toBe(newestAfter);
          expect(protectedNames.has(p.name)).toBe(false);
          expect(p.reasons.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('does not depend on the order of the input', () => {
    fc.assert(
      fc.property(caseArb, fc.integer({ min: 0, max: 2 ** 31 - 1 }), (c, seed) => {
        const shuffle = <T>(items: readonly T[]): T[] => {
          const out = [...items];
          let x = seed;
          for (let i = out.length - 1; i > 0; i--) {
            x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
            const j = x % (i + 1);
            [out[i], out[j]] = [out[j] as T, out[i] as T];
          }
          return out;
        };
        const shuffled: ReplicationInput = {
          ...c.input,
          source: { ...c.input.source, snapshots: shuffle(c.input.source.snapshots) },
          target: { ...c.input.target, snapshots: shuffle(c.input.target.snapshots) },
        };
        expect(planReplication(shuffled)).toEqual(planReplication(c.input));
      }),
      { numRuns: 200 },
    );
  });

  let resumed = 0;
  it('a resume token is used only by the first step and only for exactly its stream; otherwise the partial state is discarded', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planReplication(c.input);
        const partial = c.input.target.partialReceive;
        if (plan.kind !== 'send') return;
        resumed += plan.steps[0]?.resumeToken !== undefined ? 1 : 0;
        plan.steps.slice(1).forEach((s) => expect(s.resumeToken).toBeUndefined());
        const first = plan.steps[0];
        if (partial === undefined) {
          expect(first?.resumeToken).toBeUndefined();
          expect(plan.discardPartialReceive).toBe(false);
        } else if (first?.resumeToken !== undefined) {
          expect(first.resumeToken).toBe(partial.token);
          expect([first.fromGuid, first.toGuid]).toEqual([partial.fromGuid, partial.toGuid]);
          expect(first.mode).not.toBe('I');
          expect(plan.discardPartialReceive).toBe(false);
        } else {
          expect(plan.discardPartialReceive).toBe(true);
          // Discarded only when no step could continue it: another base, or a point the first step does not start with.
          const firstPoint = c.source[c.commonIndex + 1]?.guid;
          const couldResume = partial.fromGuid === first?.fromGuid && (first?.mode === 'I' ? partial.toGuid === firstPoint : partial.toGuid === first?.toGuid);
          expect(couldResume).toBe(false);
        }
      }),
      { numRuns: 400 },
    );
    // The generator must reach the interesting case often enough to mean something.
    expect(resumed).toBeGreaterThan(5);
  });

  it('holds: never doubled or released unheld, every step runs with its base and target held, one base each at the end', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const plan = planReplication(c.input);
        if (plan.kind !== 'send' && plan.kind !== 'upToDate') return;
        const steps = plan.kind === 'send' ? plan.steps : [];
        const held = {
          source: new Set(c.input.source.snapshots.filter((s) => s.held?.includes(TAG)).map((s) => s.name)),
          target: new Set(c.input.target.snapshots.filter((s) => s.held?.includes(TAG)).map((s) => s.name)),
        };
        let applied = 0;
        const applyUntil = (afterStep: number): void => {
          while (applied < plan.holds.length && (plan.holds[applied]?.afterStep as number) <= afterStep) {
            const h = plan.holds[applied++];
            if (h === undefined) break;
            expect(h.tag).toBe(TAG);
            if (h.op === 'hold') {
              expect(held[h.side].has(h.snapshot)).toBe(false);
              held[h.side].add(h.snapshot);
            } else {
              expect(held[h.side].has(h.snapshot)).toBe(true);
              held[h.side].delete(h.snapshot);
              // New before old: something of this vector stays held on that side once a base exists.
              expect(held[h.side].size).toBeGreaterThan(0);
            }
          }
        };
        applyUntil(-1);
        steps.forEach((step, i) => {
          applyUntil(i - 1);
          expect(held.source.has(step.to)).toBe(true);
          if (step.from !== undefined) {
            expect(held.source.has(step.from)).toBe(true);
            expect(held.target.has(step.fromOnTarget as string)).toBe(true);
          }
        });
        applyUntil(Number.POSITIVE_INFINITY);
        expect(applied).toBe(plan.holds.length);
        expect([...held.source]).toEqual([plan.basesAfter.source]);
        expect([...held.target]).toEqual([plan.basesAfter.target]);
      }),
      { numRuns: 400 },
    );
  });
});
