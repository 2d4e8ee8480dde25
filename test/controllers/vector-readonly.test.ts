/**
 * A StorageTarget switched to accessMode ReadOnly keeps its vectors' pairings and replicas but takes no new
 * stream: each vector says why, and sends again once the target is ReadWrite. Real sshd and zfs-fuse, the
 * Dataset and Vector reconcilers on a fake clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { machineKind, storageTargetKind } from '../../api/kinds/index.ts';
import type { Machine, StorageTarget } from '../../api/types.ts';
import { resourceOf } from '../../controllers/runtime/kube.ts';
import { condition, SyncBed } from './sync-bed.ts';

const START = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;

describe('a ReadOnly StorageTarget', () => {
  const t = new SyncBed({ start: START, local: { hourly: 24 }, remote: { hourly: 24 }, interval: '1h' });
  const replica = () => `${t.replicaPool.name}/replicas/default/v`;
  const target = (accessMode: 'ReadWrite' | 'ReadOnly') =>
    t.tc.apply({ apiVersion: 'bdr.dev/v1alpha1', kind: 'StorageTarget', metadata: { name: 'offsite' }, spec: { machines: [{ name: 'b' }], parentDataset: `${t.replicaPool.name}/replicas`, accessMode } });
  const setTarget = async (accessMode: 'ReadWrite' | 'ReadOnly') => {
    const applied = target(accessMode);
    await t.caughtUp(t.targets, resourceOf(storageTargetKind), 'offsite');
    return applied;
  };

  beforeAll(async () => {
    await t.start();
    // B's probe result, as the Machine controller would write it: the pairing needs its pool's figures.
    const b = await t.client.get<Machine>(resourceOf(machineKind), 'b');
    await t.client.patchStatus(resourceOf(machineKind), b ?? { metadata: { name: 'b' } }, {
      conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message: 'test', lastTransitionTime: '2026-01-01T00:00:00Z' }],
      pools: [{ name: t.replicaPool.name, health: 'ONLINE', sizeBytes: 2 ** 30, allocatedBytes: 0, freeBytes: 2 ** 30 }],
    });
    await t.caughtUp(t.machines, resourceOf(machineKind), 'b');
    await setTarget('ReadWrite');
  }, 300_000);

  afterAll(() => t.stop());

  it('sends nothing while ReadOnly and says why; sends again once ReadWrite', async () => {
    t.clock.advance(HOUR);
    await t.snapshotSource();
    await t.applyVector({ target: { storageTargetRef: { name: 'offsite' } } });
    const first = await t.syncUntil((v) => v.status?.lastSyncedSnapshot !== undefined, 'the first sync');
    expect(first.status?.pairing?.dataset).toBe(replica());
    const sent = await t.snapshotsOn(`${replica()}/data`);

    await setTarget('ReadOnly');
    t.clock.advance(HOUR);
    await t.snapshotSource();
    const refused = await t.syncUntil((v) => condition(v, 'Ready')?.reason === 'TargetReadOnly', 'TargetReadOnly');
    expect(condition(refused, 'Ready')).toMatchObject({
      status: 'False',
      message: 'StorageTarget offsite is ReadOnly (spec.accessMode): it keeps the replica but accepts no new stream',
    });
    expect(refused.status?.pairing?.dataset).toBe(replica());
    expect(refused.status?.lastSyncedSnapshot).toEqual(first.status?.lastSyncedSnapshot);
    expect(await t.snapshotsOn(`${replica()}/data`)).toEqual(sent);

    await setTarget('ReadWrite');
    const resumed = await t.syncUntil((v) => v.status?.lastSyncedSnapshot?.name !== first.status?.lastSyncedSnapshot?.name, 'the sync after ReadWrite');
    expect(condition(resumed, 'Ready')?.status).toBe('True');
    expect((await t.snapshotsOn(`${replica()}/data`)).length).toBe(sent.length + 1);
    expect((t.targets.get('offsite') as StorageTarget | undefined)?.spec.accessMode).toBe('ReadWrite');
  }, 180_000);
});
