/**
 * Optimistic concurrency as the controllers meet it: a finalizer written from a stale read is refused with 409
 * Conflict (never overwriting what another writer added), and a controller takes such a conflict as routine, a
 * quiet retry from the fresh cache, not a failed reconcile with a warning.
 */
import { Registry } from 'prom-client';
import { describeApiError } from '../../api/api-errors.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetKind } from '../../api/kinds/index.ts';
import type { Dataset } from '../../api/types.ts';
import { Controller } from '../../controllers/runtime/controller.ts';
import { addFinalizer, removeFinalizer } from '../../controllers/runtime/finalizers.ts';
import { Informer } from '../../controllers/runtime/informer.ts';
import { isConflict, KubeClient, resourceOf } from '../../controllers/runtime/kube.ts';
import { createLogger, silentLogger } from '../../metrics/log.ts';
import { RuntimeMetrics } from '../../metrics/runtime-metrics.ts';
import { eventually, startTestCluster, type TestCluster } from './cluster-fixture.ts';

const DATASET = resourceOf(datasetKind);
const datasetDoc = (name: string) => ({
  apiVersion: 'bdr.dev/v1alpha1',
  kind: 'Dataset',
  metadata: { name, namespace: 'default' },
  spec: { machineRef: { name: 'm' }, name: `tank/${name}`, schedule: { interval: '1h' }, retentionPolicyRef: { name: 'p' } },
});

describe('conflicts', () => {
  let tc: TestCluster;
  let client: KubeClient;

  beforeAll(async () => {
    tc = await startTestCluster();
    client = new KubeClient(tc.kubeConfig);
  }, 60_000);
  afterAll(() => tc?.stop());

  it("refuses a finalizer written from a stale read with 409 and keeps the other writer's finalizer", async () => {
    tc.apply(datasetDoc('stale'));
    const read = (await client.get<Dataset>(DATASET, 'stale', 'default')) as Dataset;
    // Another writer adds its own finalizer after our read.
    const theirs = await client.mergePatch<Dataset>(DATASET, read, { metadata: { finalizers: ['example.com/theirs'] } });
    expect(theirs.metadata.resourceVersion).not.toBe(read.metadata.resourceVersion);

    const refused = await addFinalizer(client, DATASET, read).then(() => undefined, (err: unknown) => err);
    expect(isConflict(refused)).toBe(true);
    expect((await client.get<Dataset>(DATASET, 'stale', 'default'))?.metadata.finalizers).toEqual(['example.com/theirs']);

    // From the fresh object both are kept.
    const ours = await addFinalizer(client, DATASET, theirs);
    expect(ours.metadata.finalizers).toEqual(['example.com/theirs', 'bdr.dev/cleanup']);
    // A removal from a stale read is refused too (a label was set meanwhile), and from the fresh one leaves theirs.
    const labelled = await client.mergePatch<Dataset>(DATASET, ours, { metadata: { labels: { tier: 'gold' } } });
    expect(isConflict(await removeFinalizer(client, DATASET, ours).then(() => undefined, (err: unknown) => err))).toBe(true);
    expect((await removeFinalizer(client, DATASET, labelled)).metadata.finalizers).toEqual(['example.com/theirs']);
  });

  it("logs an API server's refusal as its own message, not client-node's dump of the response", async () => {
    tc.apply(datasetDoc('refused'));
    const read = (await client.get<Dataset>(DATASET, 'refused', 'default')) as Dataset;
    const err = await client.jsonPatch(DATASET, read, [{ op: 'test', path: '/spec/name', value: 'tank/other' }]).then(() => undefined, (e: unknown) => e);
    expect(String((err as Error).message)).toContain('HTTP-Code: 422');
    expect(describeApiError(err)).toBe('HTTP 422 Invalid: testing value /spec/name failed: test operation does not apply');
    const stale = await client.mergePatch(DATASET, read, { metadata: { resourceVersion: '1' } }).then(() => undefined, (e: unknown) => e);
    expect(describeApiError(stale)).toMatch(/^HTTP 409 Conflict: Operation cannot be fulfilled on datasets\.bdr\.dev "refused": the object has been modified/);
    // Anything else is left as it is.
    const plain = new Error('zfs: pool is busy');
    expect(describeApiError(plain)).toBe(plain);
  });

  it('retries a conflicting reconcile quietly (result="requeue"), and warns only when conflicts keep coming', async () => {
    tc.apply(datasetDoc('busy'));
    const informer = new Informer<Dataset>(tc.kubeConfig, client, DATASET, silentLogger);
    await informer.start();
    const lines: string[] = [];
    const registry = new Registry();
    const metrics = new RuntimeMetrics(registry);
    const conflict = () => Object.assign(new Error('the object has been modified'), { code: 409 });
    // 'default/busy' conflicts twice, then succeeds; 'default/stuck' conflicts on every attempt.
    tc.apply(datasetDoc('stuck'));
    const calls = new Map<string, number>();
    const controller = new Controller<Dataset>({
      name: 'dataset',
      informer,
      workers: 2,
      metrics,
      log: createLogger({ level: 'debug', write: (line) => lines.push(line) }),
      reconciler: {
        reconcile: (key) => {
          const n = (calls.get(key) ?? 0) + 1;
          calls.set(key, n);
          if (key === 'default/busy' && n <= 2) return Promise.reject(conflict());
          if (key === 'default/stuck') return Promise.reject(conflict());
          return Promise.resolve(undefined);
        },
      },
    });
    try {
      controller.start();
      // busy: two quiet retries, then success. stuck: three quiet retries, then a warning per attempt.
      await eventually(() => ((calls.get('default/busy') ?? 0) >= 3 && (calls.get('default/stuck') ?? 0) >= 4 ? true : undefined), 'the retries', 120_000);
    } finally {
      await controller.stop();
      await informer.stop();
    }
    const text = await registry.metrics();
    const count = (result: string) => Number(new RegExp(`controller_runtime_reconcile_total\\{controller="dataset",result="${result}"\\} (\\d+)`).exec(text)?.[1]);
    // Quiet: busy's 2 and stuck's first 3.
    expect(count('requeue')).toBe(5);
    expect(count('success')).toBeGreaterThanOrEqual(1);
    const warnings = lines.filter((l) => l.includes('level=warn'));
    expect(warnings.length).toBe((calls.get('default/stuck') ?? 0) - 3);
    expect(warnings.every((l) => l.includes('key=default/stuck'))).toBe(true);
    expect(count('error')).toBe(warnings.length);
    expect(lines.filter((l) => l.includes('level=debug') && l.includes('object changed meanwhile')).length).toBe(5);
  }, 180_000);
});
