/**
 * Embedded cluster benchmark (issue 3): create/update latency p50/p99, list and watch of 10,000 objects,
 * memory per object. Not a test: the numbers depend on the machine.
 *
 * Run: `node --expose-gc --import tsx bench/cluster.ts` (without --expose-gc memory figures are noisier).
 *
 * Baselines measured in the same process, with the same HTTPS client, so that ratios say what the API
 * semantics cost on top of the transport:
 *  - `echo`: a raw node:https server (same kind of certificate) that parses the JSON body and answers it back;
 *  - `map`: structuredClone + Map.set of the same object (the least a store can do), no HTTP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startCluster, type Cluster, type KubeObject } from '../cluster/index.ts';
import { selfSignedServingCertificate } from '../cluster/x509.ts';

const LATENCY_OPS = 2000;
const DURABLE_OPS = 500;
const BULK = 10_000;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** The CA and token of each server, by origin: the cluster needs its bearer token, the echo server none. */
const trust = new Map<string, { ca: string; token?: string }>();
function trusting(server: { url: string; ca: string; token?: string }): void {
  trust.set(new URL(server.url).origin, { ca: server.ca, token: server.token });
}
function tls(url: string): { ca: string; headers: Record<string, string> } {
  const t = trust.get(new URL(url).origin);
  if (!t) throw new Error(`no CA registered for ${url}`);
  return { ca: t.ca, headers: t.token ? { Authorization: `Bearer ${t.token}` } : {} };
}

interface Answer {
  status: number;
  body: string;
}

function call(url: string, method: string, body?: string, contentType = 'application/json'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const { ca, headers } = tls(url);
    const req = request(url, { method, agent, ca, headers: { ...headers, ...(body ? { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Stats {
  p50: number;
  p99: number;
}

function stats(samples: number[]): Stats {
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

async function timeEach(n: number, op: (i: number) => Promise<void> | void): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await op(i);
    samples.push(performance.now() - t0);
  }
  return samples;
}

function gadget(name: string, size: number): KubeObject {
  return {
    apiVersion: 'bench.bdr.dev/v1alpha1',
    kind: 'Gadget',
    metadata: { name, labels: { app: 'bench', shard: String(size % 10) } },
    spec: { size, mode: 'fast', tags: ['a', 'b', 'c'], target: { name: `target-${size % 7}`, dataset: `tank/replicas/${name}` } },
  };
}

const CRD: KubeObject = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'gadgets.bench.bdr.dev' },
  spec: {
    group: 'bench.bdr.dev',
    scope: 'Namespaced',
    names: { plural: 'gadgets', kind: 'Gadget' },
    versions: [{
      name: 'v1alpha1',
      served: true,
      storage: true,
      subresources: { status: {} },
      schema: {
        openAPIV3Schema: {
          type: 'object',
          properties: {
            spec: {
              type: 'object',
              required: ['size'],
              properties: {
                size: { type: 'integer', minimum: 0 },
                mode: { type: 'string', enum: ['fast', 'slow'], default: 'fast' },
                tags: { type: 'array', items: { type: 'string' } },
                target: { type: 'object', properties: { name: { type: 'string' }, dataset: { type: 'string' } } },
              },
            },
            status: { type: 'object', properties: { observedGeneration: { type: 'integer' } } },
          },
        },
      },
    }],
  },
};

async function echoServer(): Promise<{ url: string; ca: string; close: () => Promise<void> }> {
  const { ca, cert, key } = await selfSignedServingCertificate();
  const server = createServer({ cert, key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const out = JSON.stringify(text ? JSON.parse(text) : { ok: true });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ca,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function fmt(ms: number): string {
  return ms < 10 ? ms.toFixed(3) : ms.toFixed(1);
}

function line(label: string, s: Stats, base?: Stats): void {
  const ratio = base ? `   ×${(s.p50 / base.p50).toFixed(1)} p50, ×${(s.p99 / base.p99).toFixed(1)} p99 vs echo` : '';
  console.log(`  ${label.padEnd(34)} p50 ${fmt(s.p50).padStart(7)} ms   p99 ${fmt(s.p99).padStart(7)} ms${ratio}`);
}

function heapMb(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

async function latency(): Promise<void> {
  const echo = await echoServer();
  trusting(echo);
  const cluster = await startCluster();
  trusting(cluster);
  cluster.apply(CRD);
  const coll = `${cluster.url}/apis/bench.bdr.dev/v1alpha1/namespaces/default/gadgets`;
  // Warm-up: JIT, sockets, schema compilation.
  for (let i = 0; i < 200; i++) {
    await call(echo.url, 'POST', JSON.stringify(gadget(`w${i}`, i)));
    await call(coll, 'POST', JSON.stringify(gadget(`warm-${i}`, i)));
  }
  const map = new Map<string, KubeObject>();
  const mapSamples = await timeEach(LATENCY_OPS, (i) => {
    map.set(`default/m${i}`, structuredClone(gadget(`m${i}`, i)));
  });
  const echoSamples = await timeEach(LATENCY_OPS, async (i) => {
    await call(echo.url, 'POST', JSON.stringify(gadget(`e${i}`, i)));
  });
  const createSamples = await timeEach(LATENCY_OPS, async (i) => {
    const r = await call(coll, 'POST', JSON.stringify(gadget(`g${i}`, i)));
    if (r.status !== 201) throw new Error(`create ${r.status}: ${r.body}`);
  });
  const patchSamples = await timeEach(LATENCY_OPS, async (i) => {
    const r = await call(`${coll}/g${i}`, 'PATCH', JSON.stringify({ spec: { size: i + 1 } }), 'application/merge-patch+json');
    if (r.status !== 200) throw new Error(`patch ${r.status}: ${r.body}`);
  });
  const statusSamples = await timeEach(LATENCY_OPS, async (i) => {
    const r = await call(`${coll}/g${i}/status`, 'PATCH', JSON.stringify({ status: { observedGeneration: 2 } }), 'application/merge-patch+json');
    if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body}`);
  });
  const getSamples = await timeEach(LATENCY_OPS, async (i) => {
    await call(`${coll}/g${i}`, 'GET');
  });
  await cluster.stop();

  const dataDir = mkdtempSync(join(tmpdir(), 'bdr-bench-'));
  const durable = await startCluster({ dataDir });
  trusting(durable);
  durable.apply(CRD);
  const dcoll = `${durable.url}/apis/bench.bdr.dev/v1alpha1/namespaces/default/gadgets`;
  for (let i = 0; i < 50; i++) await call(dcoll, 'POST', JSON.stringify(gadget(`warm-${i}`, i)));
  const durableCreate = await timeEach(DURABLE_OPS, async (i) => {
    await call(dcoll, 'POST', JSON.stringify(gadget(`d${i}`, i)));
  });
  const durablePatch = await timeEach(DURABLE_OPS, async (i) => {
    await call(`${dcoll}/d${i}`, 'PATCH', JSON.stringify({ spec: { size: i + 1 } }), 'application/merge-patch+json');
  });
  await durable.stop();
  rmSync(dataDir, { recursive: true, force: true });
  await echo.close();

  const base = stats(echoSamples);
  console.log(`\nLatency, sequential, one keep-alive connection (${LATENCY_OPS} ops; durable ${DURABLE_OPS} ops)`);
  line('baseline: structuredClone+Map.set', stats(mapSamples));
  line('baseline: https JSON echo', base);
  line('create (POST, in memory)', stats(createSamples), base);
  line('update (merge PATCH, in memory)', stats(patchSamples), base);
  line('status update (PATCH /status)', stats(statusSamples), base);
  line('get', stats(getSamples), base);
  line('create (POST, dataDir + fdatasync)', stats(durableCreate), base);
  line('update (PATCH, dataDir + fdatasync)', stats(durablePatch), base);
}

function readWatch(url: string, until: (count: number) => boolean): { done: Promise<{ events: number; ms: number }>; abort: () => void } {
  const controller = new AbortController();
  const t0 = performance.now();
  const done = (async () => {
    const { ca, headers } = tls(url);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      // Its own connection: a watch must not hold the keep-alive socket of the other calls.
      request(url, { ca, headers, agent: false, signal: controller.signal }, resolve).on('error', reject).end();
    });
    let events = 0;
    let tail = '';
    const decoder = new TextDecoder();
    for await (const value of res as AsyncIterable<Buffer>) {
      const text = tail + decoder.decode(value, { stream: true });
      const parts = text.split('\n');
      tail = parts.pop()!;
      events += parts.length;
      if (until(events)) break;
    }
    const ms = performance.now() - t0;
    controller.abort();
    return { events, ms };
  })();
  return { done, abort: () => controller.abort() };
}

async function bulk(): Promise<void> {
  const heapBefore = heapMb();
  const cluster: Cluster = await startCluster({ watchHistory: 50_000 });
  trusting(cluster);
  cluster.apply(CRD);
  const coll = `${cluster.url}/apis/bench.bdr.dev/v1alpha1/namespaces/default/gadgets`;
  const heapEmpty = heapMb();
  const tCreate = performance.now();
  for (let i = 0; i < BULK; i++) {
    const r = await call(coll, 'POST', JSON.stringify(gadget(`b${i}`, i)));
    if (r.status !== 201) throw new Error(`create ${r.status}`);
  }
  const createAll = performance.now() - tCreate;
  const heapFull = heapMb();

  // A live watcher (in this same process, so it competes for the CPU) while every object is updated.
  const live = readWatch(`${coll}?watch=true&resourceVersion=${cluster.resourceVersion()}`, (n) => n >= BULK);
  const tUpdate = performance.now();
  for (let i = 0; i < BULK; i++) {
    const r = await call(`${coll}/b${i}`, 'PATCH', JSON.stringify({ spec: { size: i + 1 } }), 'application/merge-patch+json');
    if (r.status !== 200) throw new Error(`patch ${r.status}`);
  }
  const updateAll = performance.now() - tUpdate;
  const liveResult = await live.done;

  const listTimes: number[] = [];
  let listBytes = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = await call(coll, 'GET');
    const parsed = JSON.parse(r.body) as { items: unknown[] };
    if (parsed.items.length !== BULK) throw new Error(`list returned ${parsed.items.length}`);
    listTimes.push(performance.now() - t0);
    listBytes = r.body.length;
  }
  const selTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    await call(`${coll}?labelSelector=shard%3D3`, 'GET');
    selTimes.push(performance.now() - t0);
  }
  const initialWatch = await readWatch(`${coll}?watch=true`, (n) => n >= BULK).done;
  const replayWatch = await readWatch(`${coll}?watch=true&resourceVersion=${cluster.resourceVersion() - BULK}`, (n) => n >= BULK).done;

  // Baselines: serialising the same 10,000 objects from a Map, and an echo server sending that payload.
  const items = [...Array(BULK).keys()].map((i) => gadget(`b${i}`, i));
  const mapList: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    JSON.parse(JSON.stringify({ items }));
    mapList.push(performance.now() - t0);
  }
  await cluster.stop();

  const median = (xs: number[]): number => percentile(xs, 50);
  console.log(`\nList and watch of ${BULK.toLocaleString('en')} objects`);
  console.log(`  create ${BULK} sequentially              ${createAll.toFixed(0)} ms (${(BULK / (createAll / 1000)).toFixed(0)} objects/s)`);
  console.log(`  update ${BULK} sequentially, 1 live watcher ${updateAll.toFixed(0)} ms (${(BULK / (updateAll / 1000)).toFixed(0)} objects/s); the watcher had all ${liveResult.events} MODIFIED after ${liveResult.ms.toFixed(0)} ms`);
  console.log(`  list (GET, parse), median of 5          ${median(listTimes).toFixed(1)} ms, ${(listBytes / 1024 / 1024).toFixed(1)} MiB   ×${(median(listTimes) / median(mapList)).toFixed(1)} vs Map JSON round trip ${median(mapList).toFixed(1)} ms`);
  console.log(`  list with labelSelector (1/10 match)    ${median(selTimes).toFixed(1)} ms`);
  console.log(`  watch from RV 0: ${initialWatch.events} synthetic ADDED   ${initialWatch.ms.toFixed(0)} ms`);
  console.log(`  watch replay of ${replayWatch.events} events from RV    ${replayWatch.ms.toFixed(0)} ms`);
  console.log(`  heap: empty cluster +${(heapEmpty - heapBefore).toFixed(1)} MiB, ${BULK} objects +${(heapFull - heapEmpty).toFixed(1)} MiB (${(((heapFull - heapEmpty) * 1024 * 1024) / BULK / 1024).toFixed(2)} KiB/object incl. watch history)${(globalThis as { gc?: unknown }).gc ? '' : '  [run with --expose-gc for stable figures]'}`);
  console.log(`  rss now ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MiB`);
}

console.log(`bdr embedded cluster benchmark — node ${process.version}, ${new Date().toISOString()}`);
await latency();
await bulk();
agent.destroy();
