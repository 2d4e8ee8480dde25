import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { LocalConnection } from '../../nodes/local.ts';
import { ZfsMachine } from '../../zfs/machine.ts';
import { runBdr } from '../helpers/run-bdr.ts';
import { TestBed, type TestPool } from '../testbed/index.ts';

describe('bdr up --once', () => {
  const bed = new TestBed();
  let pool: TestPool;
  let dir: string;

  beforeAll(async () => {
    pool = await bed.pool();
    dir = await mkdtemp(join(tmpdir(), 'bdr-once-'));
    const docs = [
      { apiVersion: 'bdr.dev/v1alpha1', kind: 'Machine', metadata: { name: 'here' }, spec: { connection: { type: 'local' }, pools: [pool.name], allowedNamespaces: { names: ['default'] }, datasetRoots: [{ root: '{pool}', namespace: 'default' }] } },
      { apiVersion: 'bdr.dev/v1alpha1', kind: 'RetentionPolicy', metadata: { name: 'p', namespace: 'default' }, spec: { keepLast: 3 } },
      {
        apiVersion: 'bdr.dev/v1alpha1',
        kind: 'Dataset',
        metadata: { name: 'd', namespace: 'default' },
        spec: { machineRef: { name: 'here' }, name: `${pool.name}/once`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' }, managementPolicy: 'Create' },
      },
    ];
    await mkdir(join(dir, 'repo'));
    await writeFile(join(dir, 'repo', 'all.yaml'), docs.map((d) => stringify(d)).join('---\n'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await bed.cleanup();
  });

  it('runs one full round of the controllers before it exits: the dataset is created and has its first restore point', async () => {
    const r = await runBdr(['up', '--repo', join(dir, 'repo'), '--state', join(dir, 'state'), '--once', '--no-metrics'], { timeoutMs: 180_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const inv = await new ZfsMachine(new LocalConnection()).inventory({ roots: [`${pool.name}/once`] });
    const owned = inv.snapshots.filter((s) => s.userProperties['dev.bdr:owner']?.value === 'bdr');
    expect(owned).toHaveLength(1);
    expect(owned[0]?.name).toMatch(new RegExp(`^${pool.name}/once@bdr-\\d{8}T\\d{6}Z$`));
  }, 240_000);
});
