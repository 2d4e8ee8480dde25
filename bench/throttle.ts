/**
 * The Relay transport's bandwidth limit (zfs/throttle.ts) on an in-memory stream, in one process:
 *
 *   cost     a limit far above what the pipe can do (the bucket never waits): throughput vs the same pipe
 *            without the stage, i.e. what splitting chunks into bucket-sized pieces costs
 *   accuracy limits of 4, 16 and 64 MiB/s over 4 s worth of data each: the rate achieved / the limit
 *
 *   npx tsx bench/throttle.ts [--mib 512]
 *
 * Figures only, no assertions.
 */
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { throttle } from '../zfs/throttle.ts';

const i = process.argv.indexOf('--mib');
const MIB = i >= 0 ? Number(process.argv[i + 1]) : 512;
if (!Number.isFinite(MIB) || MIB <= 0) throw new Error('--mib must be a positive number');
const CHUNK = Buffer.alloc(64 * 1024, 1);

async function pump(bytes: number, stage?: Transform): Promise<number> {
  const chunks = Math.ceil(bytes / CHUNK.length);
  const source = Readable.from((function* () {
    for (let k = 0; k < chunks; k++) yield CHUNK;
  })());
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const started = performance.now();
  await (stage ? pipeline(source, stage, sink) : pipeline(source, sink));
  return (performance.now() - started) / 1000;
}

async function main(): Promise<void> {
  const bytes = MIB * 2 ** 20;
  const plain = await pump(bytes);
  const limited = await pump(bytes, throttle(64 * 2 ** 30));
  console.log(`cost: ${MIB} MiB in memory, no stage ${(bytes / 2 ** 20 / plain).toFixed(0)} MiB/s, throttle(64 GiB/s) ${(bytes / 2 ** 20 / limited).toFixed(0)} MiB/s, with/without ${(plain / limited).toFixed(2)} (far above any link it paces)`);
  for (const mibps of [4, 16, 64]) {
    const rate = mibps * 2 ** 20;
    const s = await pump(4 * rate, throttle(rate));
    console.log(`accuracy: limit ${mibps} MiB/s, ${4 * mibps} MiB in ${s.toFixed(2)} s = ${((4 * rate) / 2 ** 20 / s).toFixed(2)} MiB/s, achieved/limit ${((4 * rate) / s / rate).toFixed(3)} (the bucket starts full: 0.1 s of the rate, 2.5 % of 4 s)`);
  }
}

await main();
