import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { asZfsError, ZfsError, zfsCommandError } from './errors.ts';
import type { ReceiveOptions, SendOptions, TransferResult, ZfsMachine } from './machine.ts';

export interface RelayOptions {
  signal?: AbortSignal;
  /** Called with the running byte count as the stream passes through (at most every 64 KiB chunk). */
  onProgress?: (bytes: number) => void;
}

/**
 * Replicates by relaying the stream through this process: `zfs send` on `source`, `zfs receive` on
 * `target`, both over their own connections. Works whenever bdr can reach both machines; the direct
 * path (the primary's own ssh to the secondary) is faster on one hop (see bench/zfs-transfer.ts).
 * If either side fails, the other is stopped and the error of the side that failed first is thrown.
 */
export async function relay(
  source: ZfsMachine,
  send: SendOptions,
  target: ZfsMachine,
  receiveInto: string,
  receive: ReceiveOptions = {},
  options: RelayOptions = {},
): Promise<TransferResult> {
  const sendArgv = await source.sendArgv(send);
  const receiveArgv = await target.receiveArgv(receiveInto, receive);
  const started = Date.now();
  const signal = options.signal;
  const sender = source.connection.spawn(sendArgv, signal ? { signal } : {});
  const receiver = target.connection.spawn(receiveArgv, signal ? { signal } : {});
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      bytes += chunk.length;
      options.onProgress?.(bytes);
      callback(null, chunk);
    },
  });
  const piping = pipeline(sender.stdout, counter, receiver.stdin).then(
    () => undefined,
    (error: unknown) => error,
  );
  const [sendOutcome, receiveOutcome] = await Promise.allSettled([
    sender.done.then((r) => {
      if (r.code !== 0) receiver.kill();
      return r;
    }),
    receiver.done.then((r) => {
      if (r.code !== 0) sender.kill();
      return r;
    }),
  ]);
  const pipeError = await piping;
  const sendError = outcomeError(sendOutcome, sendArgv, source.connection.description);
  const receiveError = outcomeError(receiveOutcome, receiveArgv, target.connection.description);
  // The receiver's complaint (diverged, no space, refused by the guard) explains more than the sender's
  // broken pipe, unless the sender failed on its own (no such snapshot).
  const error = sendError && sendError.kind !== 'failed' ? sendError : (receiveError ?? sendError);
  if (error) throw error;
  if (pipeError !== undefined) throw asZfsError(pipeError);
  return { bytes, ms: Date.now() - started };
}

function outcomeError(
  outcome: PromiseSettledResult<{ code: number | null; stderr: string; signal?: string }>,
  argv: readonly string[],
  description: string,
): ZfsError | undefined {
  if (outcome.status === 'rejected') return asZfsError(outcome.reason, argv);
  if (outcome.value.code !== 0) return zfsCommandError(argv, outcome.value, description);
  return undefined;
}
