/**
 * Status writes that happen only when something changed: an idle object causes zero API writes. The status is
 * compared as JSON with what the cache holds; the write is a merge patch of the difference on /status.
 */
import { type KubeClient, type KubeObject, type ResourceType } from './kube.ts';
import { mergePatch } from './merge-patch.ts';

export async function writeStatus<T extends KubeObject>(
  client: KubeClient,
  resource: ResourceType,
  current: T,
  desired: NonNullable<T['status']>,
): Promise<{ written: boolean; object: T }> {
  const patch = mergePatch(current.status ?? {}, desired);
  if (patch === undefined) return { written: false, object: current };
  const object = await client.patchStatus<T>(resource, current, patch);
  return { written: true, object };
}
