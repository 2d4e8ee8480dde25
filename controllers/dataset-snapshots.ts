/**
 * How bdr recognises its restore points in a machine's inventory: the snapshot carries the user property
 * `dev.bdr:owner=bdr` and a `bdr-<UTC instant>` name. Snapshots anyone else took are listed but never pruned.
 */
import { instantOfSnapshotName, type DatasetSnapshot } from '../planning/dataset-plan.ts';
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
