import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { admit, burstOf, fullBucket, throttle } from '../../zfs/throttle.ts';

/** Drives `admit` like the stream stage does, on a simulated clock: when each piece of each chunk goes out. */
function simulate(chunks: readonly number[], rate: number, arrivals: readonly number[]): Array<{ at: number; bytes: number }> {
  const burst = burstOf(rate);
  let bucket = fullBucket(burst, 0);
  let now = 0;
  const out: Array<{ at: number; bytes: number }> = [];
  chunks.forEach((size, i) => {
    now = Math.max(now, arrivals[i] ?? 0);
    let left = size;
    while (left > 0) {
      const r = admit(bucket, now, left, rate, burst);
      bucket = r.bucket;
      if (r.bytes === 0) {
        now += r.waitMs;
        continue;
      }
      out.push({ at: now, bytes: r.bytes });
      left -= r.bytes;
    }
  });
  return out;
}

describe('token bucket', () => {
  it('never lets more than burst + rate × t through by time t, and passes every byte exactly once', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 * 2 ** 20 }),
        // Chunk sizes in tenths of a second of the rate, so a run is a few hundred pieces at most.
        fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.integer({ min: 0, max: 5_000 }), { maxLength: 20 }),
        fc.integer({ min: 0, max: 9 }),
        (rate, tenths, gaps, extra) => {
          const chunks = tenths.map((n) => Math.max(1, Math.floor((n * rate) / 10)) + extra);
          let t = 0;
          const arrivals = chunks.map((_, i) => (t += gaps[i] ?? 0));
          const sent = simulate(chunks, rate, arrivals);
          const burst = burstOf(rate);
          let total = 0;
          for (const s of sent) {
            expect(s.bytes).toBeLessThanOrEqual(burst);
            total += s.bytes;
            // 1e-6: floating point in the refill; the bound itself is exact.
            expect(total).toBeLessThanOrEqual(burst + (rate * s.at) / 1000 + 1e-6 * total);
          }
          expect(total).toBe(chunks.reduce((x, y) => x + y, 0));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps pace with the rate when data is always waiting (not slower than one wait per piece needs)', () => {
    // 1 MiB/s, 3 MiB at once: a full bucket (102 KiB) at 0, then a piece every ~100 ms: done by ~2.9 s.
    const sent = simulate([3 * 2 ** 20], 2 ** 20, [0]);
    const end = sent.at(-1)?.at ?? 0;
    expect(end).toBeGreaterThanOrEqual(((3 * 2 ** 20 - burstOf(2 ** 20)) * 1000) / 2 ** 20 - 1);
    expect(end).toBeLessThanOrEqual(3_000 + sent.length);
  });
});

describe('throttle (a real stream, real time)', () => {
  it('passes the bytes unchanged and takes at least (bytes - burst) / rate; an unthrottled copy of the same bytes is faster', async () => {
    const rate = 2 * 2 ** 20;
    const data = Buffer.alloc(3 * 2 ** 20 + 17, 7);
    for (let i = 0; i < data.length; i += 4093) data[i] = i % 251;
    const copy = async (stages: NodeJS.ReadWriteStream[]) => {
      const got: Buffer[] = [];
      const started = performance.now();
      const source = Readable.from((function* () {
        for (let i = 0; i < data.length; i += 65_536) yield data.subarray(i, i + 65_536);
      })());
      const sink = new Writable({ write(chunk: Buffer, _e, cb) { got.push(chunk); cb(); } });
      await pipeline([source, ...stages, sink]);
      return { ms: performance.now() - started, out: Buffer.concat(got) };
    };
    const limited = await copy([throttle(rate)]);
    const free = await copy([]);
    const floorMs = ((data.length - burstOf(rate)) * 1000) / rate;
    console.log(`throttle: ${data.length} bytes at ${rate} B/s took ${limited.ms.toFixed(0)} ms (floor ${floorMs.toFixed(0)} ms); unthrottled ${free.ms.toFixed(1)} ms`);
    expect(limited.out.equals(data)).toBe(true);
    expect(limited.ms).toBeGreaterThanOrEqual(floorMs - 1);
    expect(free.ms).toBeLessThan(limited.ms);
  });

  it('an aborted stream leaves no timer behind', async () => {
    const stage = throttle(1024);
    const ended = new Promise((resolve) => stage.on('close', resolve));
    stage.write(Buffer.alloc(10_000));
    stage.destroy();
    await ended;
    expect(stage.destroyed).toBe(true);
  });
});
