/**
 * Finalizers added and removed with a merge patch that carries the resourceVersion they were read at, so that a
 * concurrent writer's finalizer is never lost: when the object changed meanwhile the API server answers 409
 * Conflict, and the controller reconciles again from the fresh cache.
 */
import type { KubeClient, KubeObject, ResourceType } from './kube.ts';

export const FINALIZER = 'bdr.dev/cleanup';

export const hasFinalizer = (obj: KubeObject, name = FINALIZER): boolean => (obj.metadata.finalizers ?? []).includes(name);

async function setFinalizers<T extends KubeObject>(client: KubeClient, r: ResourceType, obj: T, finalizers: string[]): Promise<T> {
  return client.mergePatch<T>(r, obj, { metadata: { resourceVersion: obj.metadata.resourceVersion ?? '', finalizers } });
}

export async function addFinalizer<T extends KubeObject>(client: KubeClient, r: ResourceType, obj: T, name = FINALIZER): Promise<T> {
  if (hasFinalizer(obj, name)) return obj;
  return setFinalizers(client, r, obj, [...(obj.metadata.finalizers ?? []), name]);
}

export async function removeFinalizer<T extends KubeObject>(client: KubeClient, r: ResourceType, obj: T, name = FINALIZER): Promise<T> {
  if (!hasFinalizer(obj, name)) return obj;
  return setFinalizers(client, r, obj, (obj.metadata.finalizers ?? []).filter((f) => f !== name));
}
