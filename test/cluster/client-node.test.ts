import { readFileSync } from 'node:fs';
import {
  ApiException,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster, type KubeObject, type RequestLogEntry } from '../../cluster/index.ts';
import { GADGET_CRDS, waitFor } from './helpers.ts';

const group = 'fixtures.bdr.dev';
const version = 'v1alpha1';
const plural = 'gadgets';
const namespace = 'default';
const collection = `/apis/${group}/${version}/namespaces/${namespace}/${plural}`;

interface Gadget extends KubernetesObject {
  spec?: { size?: number; mode?: string };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

function gadget(name: string, size = 1): Gadget {
  return { apiVersion: `${group}/${version}`, kind: 'Gadget', metadata: { name, namespace }, spec: { size } };
}

function statusOf(err: unknown): { code: number; reason: string } {
  if (!(err instanceof ApiException)) throw err;
  const body = JSON.parse(String(err.body)) as { reason: string };
  return { code: err.code, reason: body.reason };
}

describe('@kubernetes/client-node against the embedded cluster', () => {
  let cluster: Cluster;
  let co: CustomObjectsApi;
  let objects: KubernetesObjectApi;
  let kc: KubeConfig;
  const requests: RequestLogEntry[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ onRequest: (e) => requests.push(e) });
    for (const doc of parseAllDocuments(readFileSync(GADGET_CRDS, 'utf8'))) cluster.apply(doc.toJS() as KubeObject);
    kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    co = kc.makeApiClient(CustomObjectsApi);
    objects = KubernetesObjectApi.makeApiClient(kc);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const create = (g: Gadget): Promise<Gadget> => co.createNamespacedCustomObject({ group, version, namespace, plural, body: g }) as Promise<Gadget>;
  const read = (name: string): Promise<Gadget> => co.getNamespacedCustomObject({ group, version, namespace, plural, name }) as Promise<Gadget>;
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  function startInformer(): { informer: ReturnType<typeof makeInformer<Gadget>>; events: string[]; errors: unknown[] } {
    const informer = makeInformer<Gadget>(kc, collection, () =>
      co.listNamespacedCustomObject({ group, version, namespace, plural }) as Promise<KubernetesListObject<Gadget>>,
    );
    const events: string[] = [];
    const errors: unknown[] = [];
    informer.on('add', (o) => events.push(`ADDED ${o.metadata?.name}`));
    informer.on('update', (o) => events.push(`MODIFIED ${o.metadata?.name}`));
    informer.on('delete', (o) => events.push(`DELETED ${o.metadata?.name}`));
    informer.on('error', (e) => errors.push(e));
    return { informer, events, errors };
  }

  it('lets an informer see ADDED, MODIFIED and DELETED', async () => {
    const { informer, events, errors } = startInformer();
    await informer.start();
    try {
      await create(gadget('inf-a'));
      await waitFor('ADDED', () => (events.includes('ADDED inf-a') ? true : undefined));
      await co.patchNamespacedCustomObject({ group, version, namespace, plural, name: 'inf-a', body: { spec: { size: 2 } } }, mergePatch);
      await waitFor('MODIFIED', () => (events.includes('MODIFIED inf-a') ? true : undefined));
      await co.deleteNamespacedCustomObject({ group, version, namespace, plural, name: 'inf-a' });
      await waitFor('DELETED', () => (events.includes('DELETED inf-a') ? true : undefined));
      expect(events.filter((e) => e.endsWith(' inf-a'))).toEqual(['ADDED inf-a', 'MODIFIED inf-a', 'DELETED inf-a']);
      expect(errors).toEqual([]);
    } finally {
      await informer.stop();
    }
  });

  for (const mode of ['stream', 'http'] as const) {
    it(`recovers from a forced 410 (${mode}) by relisting, without losing or duplicating objects`, async () => {
      const prefix = `gap-${mode}`;
      await create(gadget(`${prefix}-keep`));
      await create(gadget(`${prefix}-gone`));
      const { informer, events, errors } = startInformer();
      await informer.start();
      try {
        await waitFor('initial list', () => (informer.list(namespace).some((o) => o.metadata?.name === `${prefix}-gone`) ? true : undefined));
        const listsBefore = requests.filter((r) => r.method === 'GET' && r.url.startsWith(collection) && !r.url.includes('watch=')).length;
        // The informer's next watch is held while the world changes, then told its resourceVersion expired.
        cluster.faults.delayNext(1, 300, { watch: true });
        cluster.faults.expireNextWatch(mode);
        expect(cluster.faults.dropWatches()).toBeGreaterThan(0);
        await create(gadget(`${prefix}-new`));
        await co.deleteNamespacedCustomObject({ group, version, namespace, plural, name: `${prefix}-gone` });
        await co.patchNamespacedCustomObject({ group, version, namespace, plural, name: `${prefix}-keep`, body: { spec: { size: 7 } } }, mergePatch);

        // All three changes: on a slow machine the held watch may be told to relist before the last of them, which
        // then arrives as a live event after the relist.
        await waitFor('the informer to catch up', () => {
          const names = informer.list(namespace).map((o) => o.metadata?.name);
          return names.includes(`${prefix}-new`) && !names.includes(`${prefix}-gone`) && informer.get(`${prefix}-keep`, namespace)?.spec?.size === 7 ? true : undefined;
        });
        const listsAfter = requests.filter((r) => r.method === 'GET' && r.url.startsWith(collection) && !r.url.includes('watch=')).length;
        expect(listsAfter).toBe(listsBefore + 1);

        const server = (await co.listNamespacedCustomObject({ group, version, namespace, plural })) as KubernetesListObject<Gadget>;
        const cached = informer.list(namespace);
        const key = (o: Gadget): string => `${o.metadata?.name}@${o.metadata?.resourceVersion}`;
        expect(cached.map(key).sort()).toEqual(server.items.map(key).sort());
        expect(new Set(cached.map((o) => o.metadata?.name)).size).toBe(cached.length);
        expect(informer.get(`${prefix}-keep`, namespace)?.spec?.size).toBe(7);
        expect(events.filter((e) => e === `ADDED ${prefix}-new`)).toHaveLength(1);
        expect(events.filter((e) => e === `DELETED ${prefix}-gone`)).toHaveLength(1);
        expect(errors).toEqual([]);

        // Live events flow again after the relist.
        await create(gadget(`${prefix}-after`));
        await waitFor('live event after relist', () => (events.includes(`ADDED ${prefix}-after`) ? true : undefined));
      } finally {
        await informer.stop();
      }
    });
  }

  it('answers a stale update with 409 Conflict', async () => {
    const created = await create(gadget('stale'));
    await co.patchNamespacedCustomObject({ group, version, namespace, plural, name: 'stale', body: { spec: { size: 3 } } }, mergePatch);
    const stale = { ...created, spec: { size: 9 } };
    const err = await co.replaceNamespacedCustomObject({ group, version, namespace, plural, name: 'stale', body: stale }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(statusOf(err)).toEqual({ code: 409, reason: 'Conflict' });
    expect((await read('stale')).spec?.size).toBe(3);
  });

  it('keeps spec and generation on a status merge patch, and bumps generation on a spec change only', async () => {
    const created = await create(gadget('gen', 2));
    expect(created.metadata?.generation).toBe(1);
    const afterStatus = (await co.patchNamespacedCustomObjectStatus(
      { group, version, namespace, plural, name: 'gen', body: { spec: { size: 99 }, status: { conditions: [{ type: 'Ready', status: 'True' }] } } },
      mergePatch,
    )) as Gadget;
    expect(afterStatus.spec).toEqual(created.spec);
    expect(afterStatus.metadata?.generation).toBe(1);
    expect(afterStatus.status?.conditions).toEqual([{ type: 'Ready', status: 'True' }]);
    expect(Number(afterStatus.metadata?.resourceVersion)).toBeGreaterThan(Number(created.metadata?.resourceVersion));

    const afterLabel = (await co.patchNamespacedCustomObject({ group, version, namespace, plural, name: 'gen', body: { metadata: { labels: { a: 'b' } } } }, mergePatch)) as Gadget;
    expect(afterLabel.metadata?.generation).toBe(1);

    const afterSpec = (await co.patchNamespacedCustomObject({ group, version, namespace, plural, name: 'gen', body: { spec: { size: 3 } } }, mergePatch)) as Gadget;
    expect(afterSpec.metadata?.generation).toBe(2);
    expect(afterSpec.status).toEqual(afterStatus.status);

    const again = (await co.patchNamespacedCustomObject({ group, version, namespace, plural, name: 'gen', body: { spec: { size: 3 } } }, mergePatch)) as Gadget;
    expect(again.metadata?.resourceVersion).toBe(afterSpec.metadata?.resourceVersion);
    expect(again.metadata?.generation).toBe(2);
  });

  it('rejects the strategic merge patch KubernetesObjectApi sends by default with 415, and accepts server-side apply', async () => {
    await create(gadget('smp'));
    const err = await objects.patch(gadget('smp', 5)).then(() => undefined, (e: unknown) => e);
    expect(statusOf(err)).toEqual({ code: 415, reason: 'UnsupportedMediaType' });
    const applied = (await objects.patch(gadget('ssa', 4), undefined, undefined, 'bdr-test', true, PatchStrategy.ServerSideApply)) as Gadget;
    expect(applied.spec).toEqual({ size: 4, mode: 'fast' });
    const merged = (await objects.patch(gadget('smp', 6), undefined, undefined, undefined, undefined, PatchStrategy.MergePatch)) as Gadget;
    expect(merged.spec?.size).toBe(6);
  });
});
