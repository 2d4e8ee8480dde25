/**
 * Finalizers added and removed with a JSON patch guarded by a resourceVersion test, so that a concurrent
 * writer's finalizer is never lost: on conflict the reconcile fails and retries from the fresh cache.
 */
import type { KubeClient, KubeObject, ResourceType } from './kube.ts';

export const FINALIZER = 'bdr.dev/cleanup';

export const hasFinalizer = (obj: KubeObject, name = FINALIZER): boolean => (obj.metadata.finalizers ?? []).includes(name);

async function setFinalizers<T extends KubeObject>(client: KubeClient, r: ResourceType, obj: T, finalizers: string[]): Promise<T> {
  return client.jsonPatch<T>(r, obj, [
    { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion ?? '' },
    { op: obj.metadata.finalizers ? 'replace' : 'add', path: '/metadata/finalizers', value: finalizers },
  ]);
}

export async function addFinalizer<T extends KubeObject>(client: KubeClient, r: ResourceType, obj: T, name = FINALIZER): Promise<T> {
  if (hasFinalizer(obj, name)) return obj;
  return setFinalizers(client, r, obj, [...(obj.metadata.finalizers ?? []), name]);
}

export async function removeFinalizer<T extends KubeObject>(client: KubeClient, r: ResourceType, obj: T, name = FINALIZER): Promise<T> {
  if (!hasFinalizer(obj, name)) return obj;
  return setFinalizers(client, r, obj, (obj.metadata.finalizers ?? []).filter((f) => f !== name));
}
