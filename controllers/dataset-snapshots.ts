/**
 * How bdr recognises its restore points in a machine's inventory: the snapshot carries the user property
 * `dev.bdr:owner=bdr` and a `bdr-<UTC instant>` name. Snapshots anyone else took are listed but never pruned.
 */
import type { Dataset, RetentionPolicy } from '../api/types.ts';
import { instantOfSnapshotName, type DatasetPlanInput, type DatasetSnapshot } from '../planning/dataset-plan.ts';
import type { RetentionPolicy as PolicyRules } from '../planning/retention.ts';
import type { Schedule } from '../planning/schedule.ts';
import type { Inventory } from '../zfs/inventory.ts';

export const OWNER_PROPERTY = 'dev.bdr:owner';
export const OWNER_VALUE = 'bdr';

export function datasetSnapshots(inventory: Inventory, dataset: string): DatasetSnapshot[] {
  const prefix = `${dataset}@`;
  const out: DatasetSnapshot[] = [];
  for (const s of inventory.snapshots) {
    if (!s.name.startsWith(prefix)) continue;
    const short = s.name.slice(prefix.length);
    const instant = instantOfSnapshotName(short);
    const mark = s.userProperties[OWNER_PROPERTY];
    // Only a property set on the snapshot itself counts: an inherited one would adopt anybody's bdr-* snapshot.
    const owned = instant !== undefined && mark?.value === OWNER_VALUE && mark.source === 'local';
    out.push({
      name: s.name,
      createdAt: owned && instant !== undefined ? instant : s.creation * 1000,
      usedBytes: s.used,
      owned,
      held: s.userrefs > 0,
    });
  }
  return out;
}

export function poolOf(dataset: string): string {
  return dataset.split('/')[0] ?? dataset;
}

export const policyRules = (p: RetentionPolicy): PolicyRules => ({ ...p.spec });

/**
 * What planDataset gets for one Dataset, from its machine's inventory: the single mapping shared by this
 * controller and `bdr plan`, so that the plan printed is the plan acted on.
 */
export function datasetPlanInput(
  ds: Dataset,
  schedule: Schedule,
  policy: RetentionPolicy,
  inventory: Inventory,
  now: number,
  protectedNames: ReadonlySet<string> = new Set<string>(),
): DatasetPlanInput {
  return {
    dataset: ds.spec.name,
    schedule,
    policy: policyRules(policy),
    snapshots: datasetSnapshots(inventory, ds.spec.name),
    now,
    protectedNames,
    ...poolCapacity(inventory, ds.spec.name),
    suspended: ds.spec.suspend,
  };
}

function poolCapacity(inventory: Inventory, dataset: string): { pool?: { sizeBytes: number; allocatedBytes: number } } {
  const pool = inventory.pools.find((p) => p.name === poolOf(dataset));
  return pool ? { pool: { sizeBytes: pool.size, allocatedBytes: pool.allocated } } : {};
}
