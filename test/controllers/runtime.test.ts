import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../controllers/runtime/backoff.ts';
import { setCondition, summarize } from '../../controllers/runtime/conditions.ts';
import { jsonEqual, mergePatch, type Json } from '../../controllers/runtime/merge-patch.ts';
import { WorkQueue } from '../../controllers/runtime/workqueue.ts';
import { FakeClock } from './fake-clock.ts';

/** RFC 7386 application, to check that computed patches really turn one state into the other. */
function applyMergePatch(target: Json | undefined, patch: Json): Json {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: { [k: string]: Json } =
    target !== null && typeof target === 'object' && !Array.isArray(target) && target !== undefined ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

describe('work queue', () => {
  it('deduplicates a key added many times before a worker takes it', async () => {
    const q = new WorkQueue(new FakeClock());
    for (let i = 0; i < 5; i++) q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
  });

  it('never hands a key to two workers at once, and requeues a key added while it is processed', async () => {
    const q = new WorkQueue(new FakeClock());
    q.add('a');
    const first = await q.get();
    q.add('a');
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(first ?? '');
    await Promise.resolve();
    expect(second).toBe('a');
  });

  it('keeps the earliest of several delayed adds', async () => {
    const clock = new FakeClock();
    const q = new WorkQueue(clock);
    q.addAfter('a', 10_000);
    q.addAfter('a', 1_000);
    q.addAfter('a', 5_000);
    clock.advance(999);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it('backs off per key exponentially up to the cap, and forget resets it', () => {
    const clock = new FakeClock();
    const q = new WorkQueue(clock, { baseMs: 100, capMs: 1_000 });
    const delays = [1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('a'));
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(q.addRateLimited('b')).toBe(100);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(100);
  });

  it('wakes waiting workers with undefined on shutdown', async () => {
    const q = new WorkQueue(new FakeClock());
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('x');
    expect(q.length).toBe(0);
  });

  it('backoff never exceeds the cap and never decreases', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 3_600_000 }), fc.integer({ min: 1, max: 2000 }), (base, cap, n) => {
        const policy = { baseMs: base, capMs: cap };
        expect(backoffDelay(n, policy)).toBeLessThanOrEqual(cap);
        expect(backoffDelay(n + 1, policy)).toBeGreaterThanOrEqual(backoffDelay(n, policy));
      }),
    );
  });
});

describe('conditions', () => {
  const t0 = new Date('2026-11-26T00:00:00Z');
  const t1 = new Date('2026-11-26T01:00:00Z');

  it('keeps lastTransitionTime while the status stays the same', () => {
    const a = setCondition([], { type: 'Ready', status: 'True', reason: 'Succeeded', message: 'ok' }, 1, t0);
    const b = setCondition(a, { type: 'Ready', status: 'True', reason: 'Succeeded', message: 'still ok' }, 2, t1);
    expect(b[0]?.lastTransitionTime).toBe('2026-11-26T00:00:00Z');
    expect(b[0]?.observedGeneration).toBe(2);
    const c = setCondition(b, { type: 'Ready', status: 'False', reason: 'Failed', message: 'no' }, 2, t1);
    expect(c[0]?.lastTransitionTime).toBe('2026-11-26T01:00:00Z');
  });

  it('summarizes outcomes into Ready, Reconciling and Stalled the kstatus way', () => {
    const stalled = summarize([], { state: 'stalled', reason: 'HostKeyMismatch', message: 'x' }, 3, t0);
    expect(stalled.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'False', 'HostKeyMismatch'],
      ['Stalled', 'True', 'HostKeyMismatch'],
    ]);
    const failed = summarize(stalled, { state: 'failed', reason: 'MachineUnreachable', message: 'y' }, 3, t0);
    expect(failed.map((c) => [c.type, c.status])).toEqual([
      ['Ready', 'False'],
      ['Reconciling', 'True'],
    ]);
    const ready = summarize(failed, { state: 'ready', message: 'fine' }, 4, t1);
    expect(ready.map((c) => [c.type, c.status, c.observedGeneration])).toEqual([['Ready', 'True', 4]]);
  });

  it('bounds messages so that status never carries unbounded output', () => {
    const [c] = setCondition([], { type: 'Ready', status: 'False', reason: 'Failed', message: 'x'.repeat(100_000) }, 1, t0);
    expect(c?.message.length).toBeLessThanOrEqual(1024);
  });
});

describe('merge patches', () => {
  const json: fc.Arbitrary<Json> = fc.letrec<{ v: Json }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.constantFrom<Json>(1, 'a', true, 'b', 2),
      fc.array(tie('v'), { maxLength: 3 }),
      fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), tie('v'), { maxKeys: 4 }),
    ),
  })).v;
  const object = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), json, { maxKeys: 4 });

  it('is undefined exactly when the states are equal, and applying it yields the target', () => {
    fc.assert(
      fc.property(object, object, (from, to) => {
        const patch = mergePatch(from, to);
        if (jsonEqual(from, to)) expect(patch).toBeUndefined();
        else {
          expect(patch).toBeDefined();
          expect(jsonEqual(applyMergePatch(from, patch as Json), to)).toBe(true);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('removes a vanished field with null', () => {
    expect(mergePatch({ a: 1, b: { c: 2 } }, { b: {} })).toEqual({ a: null, b: { c: null } });
  });
});
