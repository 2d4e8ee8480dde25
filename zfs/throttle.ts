import { Transform, type TransformCallback } from 'node:stream';

/**
 * A token bucket: `rate` bytes per second flow in, at most `burst` are kept. It starts full, so by any time
 * t (seconds after it was made) at most `burst + rate * t` bytes have been admitted: the bound a throttled
 * stream's tests check. `burst` is a tenth of a second of the rate, the same allowance pv -L gives at its start
 * (it admits rate/10 every 100 ms), so a limit means the same on every transport.
 */
export interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms, any monotonic origin). */
  at: number;
}

export const burstOf = (bytesPerSecond: number): number => Math.max(1, Math.floor(bytesPerSecond / 10));

export function fullBucket(burst: number, now: number): Bucket {
  return { tokens: burst, at: now };
}

/**
 * Admits the next piece of a stream with `remaining` bytes left to pass: the piece is at most `burst` bytes,
 * and it goes only once the bucket holds all of it (no slivers). Returns the piece (0 when it must wait),
 * how long to wait before asking again, and the bucket after.
 */
export function admit(bucket: Bucket, now: number, remaining: number, rate: number, burst: number): { bytes: number; waitMs: number; bucket: Bucket } {
  const at = Math.max(now, bucket.at);
  const tokens = Math.min(burst, bucket.tokens + ((at - bucket.at) * rate) / 1000);
  const piece = Math.min(remaining, burst);
  if (tokens >= piece) return { bytes: piece, waitMs: 0, bucket: { tokens: tokens - piece, at } };
  return { bytes: 0, waitMs: Math.max(1, Math.ceil(((piece - tokens) * 1000) / rate)), bucket: { tokens, at } };
}

/**
 * A stream stage that passes bytes through at most `bytesPerSecond` (the Relay transport's bandwidth limit:
 * the stream passes through bdr there, so it is limited here rather than with pv on a machine). Real time,
 * not the injected clock: it paces actual bytes on the wire.
 */
export function throttle(bytesPerSecond: number): Transform {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 1) throw new RangeError(`invalid rate ${bytesPerSecond}`);
  const burst = burstOf(bytesPerSecond);
  let bucket = fullBucket(burst, performance.now());
  let timer: NodeJS.Timeout | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      let offset = 0;
      const pass = (): void => {
        timer = undefined;
        while (offset < chunk.length) {
          const r = admit(bucket, performance.now(), chunk.length - offset, bytesPerSecond, burst);
          bucket = r.bucket;
          if (r.bytes === 0) {
            timer = setTimeout(pass, r.waitMs);
            return;
          }
          this.push(chunk.subarray(offset, offset + r.bytes));
          offset += r.bytes;
        }
        callback();
      };
      pass();
    },
    destroy(error, callback) {
      // A waiting piece must not be pushed into a destroyed stream (an aborted transfer).
      if (timer !== undefined) clearTimeout(timer);
      callback(error);
    },
  });
}
