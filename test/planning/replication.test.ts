/**
 * planReplication on hand-computed cases: every expected step, prune and hold below was worked out by hand from
 * the inputs, not by running the planner.
 */
import { describe, expect, it } from 'vitest';
import { capabilitiesFromUsage } from '../../zfs/capabilities.ts';
import {
  stepSourcePoints,
  describeStep,
  negotiateFlags,
  planReplication,
  type EndCapabilities,
  type ReplicaSnapshot,
  type ReplicationInput,
  type ReplicationPlan,
} from '../../planning/replication.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const DAY0 = Date.parse('2026-11-23T00:00:00Z'); // a Monday
const OPENZFS: EndCapabilities = { sendCompressed: true, sendRaw: true, sendLargeBlocks: true, resumeTokens: true };
const ZFS_FUSE: EndCapabilities = { sendCompressed: false, sendRaw: false, sendLargeBlocks: false, resumeTokens: false };
const TAG = 'bdr:web';

const iso = (t: number): string => new Date(t).toISOString().slice(0, 19).replace(/[-:]/g, '') + 'Z';
/** Source snapshot at `t`, guid derived from the time, createtxg increasing with time. */
const src = (t: number, extra: Partial<ReplicaSnapshot> = {}): ReplicaSnapshot => ({
  name: `tank/web@bdr-${iso(t)}`,
  guid: String(t / 1000),
  createdAt: t,
  createTxg: (t - DAY0) / HOUR + 100,
  ...extra,
});
/** The same snapshot as received on the target (same guid and short name, another dataset and txg). */
const rcv = (t: number, extra: Partial<ReplicaSnapshot> = {}): ReplicaSnapshot => ({
  name: `backup/web@bdr-${iso(t)}`,
  guid: String(t / 1000),
  createdAt: t,
  createTxg: (t - DAY0) / HOUR + 5000,
  ...extra,
});
const hourly = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i * HOUR);
const at = (day: number, hour: number): number => DAY0 + day * DAY + hour * HOUR;

function input(overrides: Partial<ReplicationInput> & { source: ReplicationInput['source'] }): ReplicationInput {
  return {
    now: at(3, 0),
    target: { dataset: 'backup/web', exists: false, snapshots: [] },
    remotePolicy: { daily: 7 },
    capabilities: { source: OPENZFS, target: OPENZFS },
    holdTag: TAG,
    ...overrides,
  };
}
const short = (t: number): string => `bdr-${iso(t)}`;
type SendPlan = Extract<ReplicationPlan, { kind: 'send' }>;
function asSend(plan: ReplicationPlan): SendPlan {
  if (plan.kind !== 'send') throw new Error(`expected a send plan, got ${JSON.stringify(plan)}`);
  return plan;
}
const stepSummary = (plan: SendPlan): string[] =>
  plan.steps.map((s) => `${s.mode} ${s.from === undefined ? '-' : s.from.split('@')[1]} > ${s.to.split('@')[1]}`);

describe('three days of hourly local snapshots, remote policy daily: 7', () => {
  const sourceSnapshots = hourly(at(0, 0), 72).map((t) => src(t)); // Mon 00:00 … Wed 23:00

  it('into an empty target: a full send of the oldest daily point, then one -i per day', () => {
    const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: sourceSnapshots } })));
    // Newest of each day: Mon 23:00, Tue 23:00, Wed 23:00 (the newest overall).
    expect(stepSummary(plan)).toEqual([
      `full - > ${short(at(0, 23))}`,
      `i ${short(at(0, 23))} > ${short(at(1, 23))}`,
      `i ${short(at(1, 23))} > ${short(at(2, 23))}`,
    ]);
    expect(plan.steps.map((s) => s.why)).toEqual([
      'empty target: full copy of the oldest restore point the remote policy keeps (daily 2026-11-23)',
      'daily 2026-11-24',
      'newest, daily 2026-11-25',
    ]);
    expect(plan.steps[1]?.receivedAs).toBe(`backup/web@${short(at(1, 23))}`);
    expect(plan.steps[1]?.fromOnTarget).toBe(`backup/web@${short(at(0, 23))}`);
    expect(plan.common).toBeUndefined();
    expect(plan.prunes).toEqual([]);
    expect(plan.discardPartialReceive).toBe(false);
    expect(plan.basesAfter).toEqual({ source: `tank/web@${short(at(2, 23))}`, target: `backup/web@${short(at(2, 23))}` });
  });

  it('from a common base on Monday 23:00 the catch-up is one -i per later day, never every hourly', () => {
    const now = at(2, 10) + 30 * 60_000;
    const snapshots = hourly(at(0, 0), 24 * 2 + 11).map((t) => src(t)); // … Wed 10:00
    const plan = asSend(
      planReplication(
        input({
          now,
          source: { dataset: 'tank/web', snapshots },
          target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 23), { held: [TAG] })] },
        }),
      ),
    );
    expect(stepSummary(plan)).toEqual([`i ${short(at(0, 23))} > ${short(at(1, 23))}`, `i ${short(at(1, 23))} > ${short(at(2, 10))}`]);
    expect(plan.common?.source).toBe(`tank/web@${short(at(0, 23))}`);
    expect(plan.prunes).toEqual([]);
  });

  it('when the remote keeps every point after the base, one -I carries them all', () => {
    const plan = asSend(
      planReplication(
        input({
          source: { dataset: 'tank/web', snapshots: sourceSnapshots },
          target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(2, 18))] },
          remotePolicy: { hourly: 48 },
        }),
      ),
    );
    // Wed 19:00 … 23:00: five points, all kept.
    expect(stepSummary(plan)).toEqual([`I ${short(at(2, 18))} > ${short(at(2, 23))}`]);
    expect(plan.steps[0]?.points).toBe(5);
  });

  it('an empty target with a policy that keeps everything: a full send of the oldest, then one -I', () => {
    const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: sourceSnapshots.slice(0, 4) }, remotePolicy: { keepLast: 10 } })));
    expect(stepSummary(plan)).toEqual([`full - > ${short(at(0, 0))}`, `I ${short(at(0, 0))} > ${short(at(0, 3))}`]);
    expect(plan.steps[1]?.points).toBe(3);
  });

  it('a single new point is a plain -i, and a target at the newest is up to date', () => {
    const snapshots = [src(at(0, 22)), src(at(0, 23))];
    const one = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots }, target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 22))] } })));
    expect(stepSummary(one)).toEqual([`i ${short(at(0, 22))} > ${short(at(0, 23))}`]);
    const none = planReplication(input({ source: { dataset: 'tank/web', snapshots }, target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 23), { held: [TAG] })] } }));
    expect(none.kind).toBe('upToDate');
    if (none.kind === 'upToDate') {
      expect(none.common.target).toBe(`backup/web@${short(at(0, 23))}`);
      expect(none.holds).toEqual([{ op: 'hold', side: 'source', snapshot: `tank/web@${short(at(0, 23))}`, tag: TAG, afterStep: -1, why: expect.any(String) as string }]);
    }
  });

  it('a snapshot taken by hand is a point like any other: sent when it is the newest, skipped when the policy drops it', () => {
    // Monday 22:00 and 23:00 by bdr, a manual one at 23:30 (newest) on the source; the target has 22:00.
    // Its createtxg lies between its neighbours' (bdr's points here have txg 100 + hours since Monday 00:00).
    const manual = (t: number): ReplicaSnapshot => ({ name: 'tank/web@before-upgrade', guid: '777', createdAt: t, createTxg: (t - DAY0) / HOUR + 100 });
    const target = { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 22))] };
    const newest = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: [src(at(0, 22)), src(at(0, 23)), manual(at(0, 23) + HOUR / 2)] }, target })));
    // daily: 7 keeps one point for Monday (the newest of the day, the manual one) and the newest is always sent.
    expect(stepSummary(newest)).toEqual([`i ${short(at(0, 22))} > before-upgrade`]);
    // The same manual point, followed by bdr's Tuesday 00:00: Monday's keeper is still the manual one (newest of
    // Monday), then Tuesday's.
    const later = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: [src(at(0, 22)), manual(at(0, 22) + HOUR / 2), src(at(0, 23)), src(at(1, 0))] }, target })));
    // Monday's newest is 23:00 (bdr's), so the manual 22:30 is not kept and not sent.
    expect(stepSummary(later)).toEqual([`i ${short(at(0, 22))} > ${short(at(0, 23))}`, `i ${short(at(0, 23))} > ${short(at(1, 0))}`]);
  });

  it('the newest by createtxg is sent last even when two points share a creation second', () => {
    // Retention breaks the tie by name (b before a); the replica must still end at the later transaction group.
    const t = at(0, 5);
    const plan = asSend(
      planReplication(
        input({ remotePolicy: {}, source: { dataset: 'tank/web', snapshots: [{ name: 'tank/web@a', guid: '2', createdAt: t, createTxg: 2 }, { name: 'tank/web@b', guid: '1', createdAt: t, createTxg: 1 }] } }),
      ),
    );
    expect(stepSummary(plan)).toEqual(['full - > b', 'i b > a']);
  });

  it('the order of the input does not matter', () => {
    const shuffled = [...sourceSnapshots].reverse();
    const a = planReplication(input({ source: { dataset: 'tank/web', snapshots: sourceSnapshots } }));
    const b = planReplication(input({ source: { dataset: 'tank/web', snapshots: shuffled } }));
    expect(b).toEqual(a);
  });
});

describe('common base by guid (adoption)', () => {
  it("another tool's snapshot with another name on the target is the base when the guid matches", () => {
    const syncoidT = at(0, 12);
    const sourceSnapshots = [src(at(0, 6)), { ...src(syncoidT), name: 'tank/web@syncoid_host_2026-11-23:12:00:00' }, src(at(1, 23))];
    const plan = asSend(
      planReplication(
        input({
          source: { dataset: 'tank/web', snapshots: sourceSnapshots },
          target: {
            dataset: 'backup/web',
            exists: true,
            // Renamed on the target; and a same-named snapshot with another guid is no base.
            snapshots: [{ ...rcv(at(0, 6)), guid: '999' }, { ...rcv(syncoidT), name: 'backup/web@renamed-by-hand' }],
          },
        }),
      ),
    );
    expect(plan.common).toEqual({ guid: String(syncoidT / 1000), source: 'tank/web@syncoid_host_2026-11-23:12:00:00', target: 'backup/web@renamed-by-hand', createdAt: syncoidT });
    expect(plan.steps).toHaveLength(1);
    expect(plan.steps[0]).toMatchObject({ mode: 'i', from: 'tank/web@syncoid_host_2026-11-23:12:00:00', fromOnTarget: 'backup/web@renamed-by-hand', to: `tank/web@${short(at(1, 23))}` });
    // The adopted base gets this vector's hold on both sides before the step. The 06:00 snapshot with guid 999
    // shares Monday with the base, which is Monday's daily point, so it expires.
    expect(plan.holds.filter((h) => h.afterStep === -1).map((h) => `${h.op} ${h.side} ${h.snapshot}`)).toEqual([
      'hold source tank/web@syncoid_host_2026-11-23:12:00:00',
      'hold target backup/web@renamed-by-hand',
      `hold source tank/web@${short(at(1, 23))}`,
    ]);
    expect(plan.prunes.map((p) => p.name)).toEqual([`backup/web@${short(at(0, 6))}`]);
  });

  it('the newest common snapshot wins when several match', () => {
    const s = [src(at(0, 1)), src(at(0, 2)), src(at(0, 3)), src(at(0, 4))];
    const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 1)), rcv(at(0, 2))] } })));
    expect(plan.common?.source).toBe(`tank/web@${short(at(0, 2))}`);
    expect(stepSummary(plan)).toEqual([`i ${short(at(0, 2))} > ${short(at(0, 4))}`]);
  });
});

describe('refusals: nothing is ever overwritten', () => {
  const s = [src(at(0, 1)), src(at(0, 2)), src(at(0, 3))];
  const refusal = (plan: ReplicationPlan): { reason: string; message: string } => {
    if (plan.kind !== 'refuse') throw new Error(`expected a refusal, got ${plan.kind}`);
    expect(Object.keys(plan).sort()).toEqual(['kind', 'message', 'reason']);
    return plan;
  };

  it('a target snapshot newer than the common one that the source lacks: TargetDiverged, with what to do', () => {
    const plan = planReplication(
      input({ source: { dataset: 'tank/web', snapshots: s }, target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 1)), { name: 'backup/web@manual', guid: '42', createdAt: at(0, 2) + 1, createTxg: 9999 }] } }),
    );
    const r = refusal(plan);
    expect(r.reason).toBe('TargetDiverged');
    expect(r.message).toContain('backup/web@manual');
    expect(r.message).toContain(`zfs rollback -r backup/web@${short(at(0, 1))}`);
  });

  it('a snapshot destroyed on the source after the target received it also diverges (no -F)', () => {
    const plan = planReplication(input({ source: { dataset: 'tank/web', snapshots: [s[0] as ReplicaSnapshot, s[2] as ReplicaSnapshot] }, target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 1)), rcv(at(0, 2))] } }));
    expect(refusal(plan).reason).toBe('TargetDiverged');
  });

  it('data written to the replica since its newest snapshot: TargetDiverged', () => {
    const plan = planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 2))], writtenSinceNewest: 4096 } }));
    const r = refusal(plan);
    expect(r.reason).toBe('TargetDiverged');
    expect(r.message).toContain('4096 bytes were written');
  });

  it('a target with snapshots but none in common, or existing without snapshots: NoCommonSnapshot', () => {
    const other = planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { dataset: 'backup/web', exists: true, snapshots: [{ name: 'backup/web@x', guid: '7', createdAt: at(0, 0) }] } }));
    expect(refusal(other).reason).toBe('NoCommonSnapshot');
    expect(refusal(other).message).toContain('zfs destroy -r backup/web');
    const bare = planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { dataset: 'backup/web', exists: true, snapshots: [] } }));
    expect(refusal(bare).reason).toBe('NoCommonSnapshot');
  });

  it('a name taken on the target by an older snapshot with another guid: NameCollision', () => {
    const plan = planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { dataset: 'backup/web', exists: true, snapshots: [{ ...rcv(at(0, 3)), guid: '5', createTxg: 1 }, rcv(at(0, 1))] } }));
    expect(refusal(plan).reason).toBe('NameCollision');
  });

  it('raw asked for where an end cannot send raw: refused instead of sending decrypted data', () => {
    const plan = planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, capabilities: { source: OPENZFS, target: ZFS_FUSE }, transport: { raw: true } }));
    expect(refusal(plan).reason).toBe('RawSendUnsupported');
    expect(refusal(plan).message).toContain('target machine');
  });

  it('no source snapshot yet: wait, not a refusal', () => {
    expect(planReplication(input({ source: { dataset: 'tank/web', snapshots: [] } })).kind).toBe('wait');
  });

  it('snapshots of another dataset are a programming error', () => {
    expect(() => planReplication(input({ source: { dataset: 'tank/web', snapshots: [{ name: 'tank/db@x', guid: '1', createdAt: 0 }] } }))).toThrow(RangeError);
  });
});

describe('target prunes', () => {
  it('the remote policy after the sends; never the common base, a held snapshot, or the newest', () => {
    // Target: the 23:00 point of ten days (day -9 … day 0); the source still has day 0 23:00 and two new days.
    const days = Array.from({ length: 10 }, (_, i) => at(i - 9, 23));
    const target = days.map((t) => rcv(t, t === at(-7, 23) ? { held: ['keep-me'] } : t === at(0, 23) ? { held: [TAG] } : {}));
    const plan = asSend(
      planReplication(
        input({
          source: { dataset: 'tank/web', snapshots: [src(at(0, 23)), src(at(1, 23)), src(at(2, 23))] },
          target: { dataset: 'backup/web', exists: true, snapshots: target },
        }),
      ),
    );
    // After the sends: 12 days, daily: 7 keeps days -4 … 2. Days -9 … -5 expire, except -7 (held by another tag).
    expect(plan.prunes.map((p) => p.name)).toEqual([at(-9, 23), at(-8, 23), at(-6, 23), at(-5, 23)].map((t) => `backup/web@${short(t)}`));
    expect(plan.prunes.every((p) => p.reasons.join() === 'expired')).toBe(true);
  });

  it('an up-to-date target is still pruned, and stray holds of this vector are released first', () => {
    const target = [rcv(at(-2, 23), { held: [TAG] }), rcv(at(-1, 23)), rcv(at(0, 23), { held: [TAG] })];
    const plan = planReplication(input({ source: { dataset: 'tank/web', snapshots: [src(at(0, 23), { held: [TAG] })] }, target: { dataset: 'backup/web', exists: true, snapshots: target }, remotePolicy: { daily: 1 } }));
    expect(plan.kind).toBe('upToDate');
    if (plan.kind !== 'upToDate') return;
    expect(plan.holds.map((h) => `${h.op} ${h.side} ${h.snapshot}`)).toEqual([`release target backup/web@${short(at(-2, 23))}`]);
    expect(plan.prunes.map((p) => p.name)).toEqual([`backup/web@${short(at(-2, 23))}`, `backup/web@${short(at(-1, 23))}`]);
  });
});

describe('remote maxRolling', () => {
  const target = [-3, -2, -1, 0].map((d) => rcv(at(d, 23), { usedBytes: 3, ...(d === 0 ? { held: [TAG] } : {}) }));
  const policy = { daily: 7, maxRolling: { capacityPercent: 90 } };
  const source = { dataset: 'tank/web', snapshots: [src(at(0, 23)), src(at(1, 23))] };

  it("thins the target's oldest dailies while its pool is at or above the threshold", () => {
    // 95 % allocated: dropping Friday (3 bytes) leaves 92 %, Saturday 89 %: below 90 %, stop.
    const plan = asSend(planReplication(input({ remotePolicy: policy, source, target: { dataset: 'backup/web', exists: true, snapshots: target, pool: { sizeBytes: 100, allocatedBytes: 95 } } })));
    expect(plan.steps).toHaveLength(1);
    expect(plan.prunes).toEqual([
      { name: `backup/web@${short(at(-3, 23))}`, guid: String(at(-3, 23) / 1000), reasons: ['maxRolling: pool at 95% ≥ 90%'] },
      { name: `backup/web@${short(at(-2, 23))}`, guid: String(at(-2, 23) / 1000), reasons: ['maxRolling: pool at 92% ≥ 90%'] },
    ]);
    expect(plan.targetUnmetCaps).toEqual([]);
  });

  it('without the pool it prunes nothing for capacity and says so', () => {
    const plan = asSend(planReplication(input({ remotePolicy: policy, source, target: { dataset: 'backup/web', exists: true, snapshots: target } })));
    expect(plan.prunes).toEqual([]);
    expect(plan.targetUnmetCaps).toEqual(['maxRolling: pool capacity unknown, not evaluated']);
  });
});

describe('holds move forward step by step, new before old', () => {
  it('two -i steps from a held base', () => {
    const b = at(0, 23);
    const plan = asSend(
      planReplication(
        input({
          source: { dataset: 'tank/web', snapshots: [src(b, { held: [TAG] }), ...hourly(at(1, 0), 24 + 3).map((t) => src(t))] },
          target: { dataset: 'backup/web', exists: true, snapshots: [rcv(b, { held: [TAG] })] },
        }),
      ),
    );
    const x = short(at(1, 23));
    const y = short(at(2, 2));
    expect(stepSummary(plan)).toEqual([`i ${short(b)} > ${x}`, `i ${x} > ${y}`]);
    expect(plan.holds.map((h) => `${h.afterStep} ${h.op} ${h.side} ${h.snapshot.split('@')[1]}`)).toEqual([
      `-1 hold source ${x}`,
      `0 hold target ${x}`,
      `0 release target ${short(b)}`,
      `0 release source ${short(b)}`,
      `0 hold source ${y}`,
      `1 hold target ${y}`,
      `1 release target ${x}`,
      `1 release source ${x}`,
    ]);
    expect(plan.holds.every((h) => h.tag === TAG)).toBe(true);
  });

  it('a hold left on the source by an interrupted run is reused, not doubled, and the stray one released', () => {
    const b = at(0, 22);
    const plan = asSend(
      planReplication(
        input({
          remotePolicy: { keepLast: 1 },
          source: { dataset: 'tank/web', snapshots: [src(at(0, 21), { held: [TAG] }), src(b, { held: [TAG] }), src(at(0, 23), { held: [TAG] })] },
          target: { dataset: 'backup/web', exists: true, snapshots: [rcv(b, { held: [TAG] })] },
        }),
      ),
    );
    // The stray goes before the step: a run that fails in it leaves no more held points than it found.
    expect(plan.holds.map((h) => `${h.afterStep} ${h.op} ${h.side} ${h.snapshot.split('@')[1]}`)).toEqual([
      `-1 release source ${short(at(0, 21))}`,
      `0 hold target ${short(at(0, 23))}`,
      `0 release target ${short(b)}`,
      `0 release source ${short(b)}`,
    ]);
  });
});

describe('resume and flags', () => {
  const s = [src(at(0, 1)), src(at(0, 2))];
  const base = { dataset: 'backup/web', exists: true, snapshots: [rcv(at(0, 1))] };

  it('a token for exactly the first step is carried by it (OpenZFS)', () => {
    const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { ...base, partialReceive: { token: '1-abc-de', toGuid: String(at(0, 2) / 1000), fromGuid: String(at(0, 1) / 1000) } } })));
    expect(plan.steps[0]?.resumeToken).toBe('1-abc-de');
    expect(plan.discardPartialReceive).toBe(false);
    expect(describeStep(plan.steps[0] as never)).toBe(`-i tank/web@${short(at(0, 1))} → tank/web@${short(at(0, 2))} (resuming) (newest, daily 2026-11-23)`);
  });

  it('a token for another stream (or one that cannot be checked) is discarded and the step restarts from the base', () => {
    for (const partial of [{ token: 't', toGuid: '12345', fromGuid: String(at(0, 1) / 1000) }, { token: 't' }]) {
      const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { ...base, partialReceive: partial } })));
      expect(plan.steps[0]?.resumeToken).toBeUndefined();
      expect(plan.discardPartialReceive).toBe(true);
    }
  });

  it('an interrupted full receive resumes: the target exists without snapshots but with a token', () => {
    const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { dataset: 'backup/web', exists: true, snapshots: [], partialReceive: { token: 'full-tok', toGuid: String(at(0, 2) / 1000) } } })));
    expect(plan.steps).toHaveLength(1);
    expect(plan.steps[0]).toMatchObject({ mode: 'full', resumeToken: 'full-tok' });
  });

  it('an -I stream cut inside its first snapshot: that snapshot resumes from the token, then -I over the rest', () => {
    const points = [src(at(0, 1)), src(at(0, 2)), src(at(0, 3)), src(at(0, 4))];
    const partial = { token: 'tok', fromGuid: String(at(0, 1) / 1000), toGuid: String(at(0, 2) / 1000) };
    const plan = asSend(planReplication(input({ remotePolicy: { keepLast: 10 }, source: { dataset: 'tank/web', snapshots: points }, target: { ...base, partialReceive: partial } })));
    expect(stepSummary(plan)).toEqual([`i ${short(at(0, 1))} > ${short(at(0, 2))}`, `I ${short(at(0, 2))} > ${short(at(0, 4))}`]);
    expect(plan.steps.map((st) => [st.resumeToken, st.points, st.fromOnTarget, st.why])).toEqual([
      ['tok', 1, `backup/web@${short(at(0, 1))}`, 'keepLast'],
      [undefined, 2, `backup/web@${short(at(0, 2))}`, 'the remote policy keeps all 2 restore points after the base (newest: newest, keepLast)'],
    ]);
    expect(plan.discardPartialReceive).toBe(false);
    // With two points only, the rest is a plain -i.
    const two = asSend(planReplication(input({ remotePolicy: { keepLast: 10 }, source: { dataset: 'tank/web', snapshots: points.slice(0, 3) }, target: { ...base, partialReceive: partial } })));
    expect(stepSummary(two)).toEqual([`i ${short(at(0, 1))} > ${short(at(0, 2))}`, `i ${short(at(0, 2))} > ${short(at(0, 3))}`]);
  });

  it('without resume support (zfs-fuse) no step carries a token; the step restarts from the base', () => {
    const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, target: { ...base, partialReceive: { token: 't', toGuid: String(at(0, 2) / 1000), fromGuid: String(at(0, 1) / 1000) } }, capabilities: { source: ZFS_FUSE, target: OPENZFS } })));
    expect(plan.steps[0]?.resumeToken).toBeUndefined();
    expect(plan.steps[0]?.from).toBe(`tank/web@${short(at(0, 1))}`);
  });

  it("takes a machine's probed capabilities as they are (zfs-fuse's usage text)", () => {
    const probed = capabilitiesFromUsage({
      zfsUsage: '\tsend [-RDp] [-[iI] snapshot] <snapshot>\n\treceive [-vnFu] <filesystem|volume|snapshot>\n',
      zpoolUsage: '\tlist [-H] [-o property[,...]] [pool] ...\n',
      version: undefined,
      receiveNoMountAccepted: true,
    });
    expect(negotiateFlags({ source: probed, target: OPENZFS })).toEqual({
      compressed: false,
      raw: false,
      largeBlocks: false,
      resumable: false,
      unavailable: [
        "compressed: the source machine's ZFS lacks send -c",
        "largeBlocks: the source machine's ZFS lacks send -L",
        "resumable: the source machine's ZFS lacks resume tokens (receive -s, send -t)",
      ],
    });
  });

  it('flags only where both ends support them, and what was not available is said', () => {
    expect(negotiateFlags({ source: OPENZFS, target: OPENZFS })).toEqual({ compressed: true, raw: false, largeBlocks: true, resumable: true, unavailable: [] });
    expect(negotiateFlags({ source: OPENZFS, target: OPENZFS }, { compressed: false, raw: true })).toEqual({ compressed: false, raw: true, largeBlocks: true, resumable: true, unavailable: [] });
    expect(negotiateFlags({ source: ZFS_FUSE, target: OPENZFS })).toEqual({
      compressed: false,
      raw: false,
      largeBlocks: false,
      resumable: false,
      unavailable: [
        "compressed: the source machine's ZFS lacks send -c",
        "largeBlocks: the source machine's ZFS lacks send -L",
        "resumable: the source machine's ZFS lacks resume tokens (receive -s, send -t)",
      ],
    });
    expect(negotiateFlags({ source: ZFS_FUSE, target: ZFS_FUSE }, { raw: true })).toHaveProperty('refuse');
    const plan = asSend(planReplication(input({ source: { dataset: 'tank/web', snapshots: s }, capabilities: { source: OPENZFS, target: ZFS_FUSE } })));
    expect(plan.flags.compressed).toBe(false);
    expect(plan.flags.unavailable[0]).toBe("compressed: the target machine's ZFS lacks send -c");
  });
});

describe('stepSourcePoints: what a running step reads on the source', () => {
  const snap = (name: string, createTxg: number) => ({ name: `p/d@${name}`, guid: String(createTxg), createdAt: createTxg * 1000, createTxg });
  // Listed out of order on purpose: the order is createtxg's.
  const list = [snap('c', 30), snap('a', 10), snap('e', 50), snap('b', 20), snap('d', 40)];
  const step = (mode: 'full' | 'i' | 'I', from: string | undefined, to: string) => ({
    ...(from !== undefined ? { from: `p/d@${from}`, fromGuid: '0', fromOnTarget: `q/d@${from}` } : {}),
    to: `p/d@${to}`, toGuid: '0', toCreatedAt: 0, receivedAs: `q/d@${to}`, mode, points: 1, why: 'test',
  });

  it('-I reads every snapshot after its base up to its point; -i and full read their point only', () => {
    expect(stepSourcePoints(step('I', 'a', 'd'), list)).toEqual(['p/d@b', 'p/d@c', 'p/d@d']);
    expect(stepSourcePoints(step('i', 'a', 'd'), list)).toEqual(['p/d@d']);
    expect(stepSourcePoints(step('full', undefined, 'c'), list)).toEqual(['p/d@c']);
  });

  it('a base or point missing from the list gives the point alone', () => {
    expect(stepSourcePoints(step('I', 'zz', 'd'), list)).toEqual(['p/d@d']);
    expect(stepSourcePoints(step('I', 'd', 'b'), list)).toEqual(['p/d@b']);
  });
});
