/**
 * What the replication benchmarks share: their command-line figures, the median they report, and the setting on
 * the test bed (machines A and B registered in the embedded API server).
 */
import type { TestCluster } from '../test/controllers/cluster-fixture.ts';
import { machineObject } from '../test/controllers/vector-bed.ts';
import type { TestMachine } from '../test/testbed/index.ts';

/** `--name N` from the command line (a positive number), else `fallback`. */
export function numberArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

/** `--name N` from the command line (a positive integer), else `fallback`. */
export function integerArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
};

/** Registers A (Source) and B (Storage) with their operator keys' Secrets in bdr-system. */
export function applyMachines(tc: TestCluster, a: TestMachine, b: TestMachine): void {
  tc.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bdr-system' } });
  for (const m of [a, b]) tc.apply({ ...m.secret, metadata: { name: m.secret.metadata.name, namespace: 'bdr-system' } });
  tc.apply(machineObject(a, 'Source'));
  tc.apply(machineObject(b, 'Storage'));
}
