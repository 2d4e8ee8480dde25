import { describe, expect, it } from 'vitest';
import { Deadline } from '../../controllers/vector-sync.ts';
import { FakeClock } from './fake-clock.ts';

describe("a sync run's deadline", () => {
  it('aborts its signal once armed and the time has passed, and stops waiting for work that takes no signal', async () => {
    const clock = new FakeClock();
    const operator = new AbortController();
    const deadline = new Deadline(clock, operator.signal);
    // Not armed yet (the run waits for its transfer slots): time passing does nothing.
    clock.advance(10 * 60_000);
    expect(deadline.signal.aborted).toBe(false);
    deadline.arm(60_000);
    const hung = deadline.race(new Promise<never>(() => undefined));
    clock.advance(59_999);
    expect(deadline.signal.aborted).toBe(false);
    clock.advance(1);
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.fired).toBe(true);
    await expect(hung).rejects.toThrow(/syncTimeout/);
    deadline.dispose();
    expect(clock.pending()).toBe(0);
  });

  it("passes on the operator's abort without calling it a timeout; finished work is not affected", async () => {
    const clock = new FakeClock();
    const operator = new AbortController();
    const deadline = new Deadline(clock, operator.signal);
    deadline.arm(60_000);
    expect(await deadline.race(Promise.resolve('listed'))).toBe('listed');
    await expect(deadline.race(Promise.reject(new Error('zfs list failed')))).rejects.toThrow('zfs list failed');
    operator.abort(new Error('shutting down'));
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.fired).toBe(false);
    deadline.dispose();
    clock.advance(120_000);
    expect(deadline.fired).toBe(false);
  });
});
