import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import type { Registry } from './crd-registry.ts';
import { aggregatedDiscovery, AGGREGATED_CONTENT_TYPE, apiGroup, apiGroupList, apiResourceList, apiVersions, wantsAggregated } from './discovery.ts';
import { serverSideApply } from './apply.ts';
import { bearerMatches } from './credentials.ts';
import { ApiError, badRequest, invalid, methodNotAllowed, unsupportedMediaType } from './errors.ts';
import type { Faults } from './faults.ts';
import type { OpenApi } from './openapi.ts';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.ts';
import { decodeProtobufObject, PROTOBUF_CONTENT_TYPE } from './protobuf.ts';
import { apiVersionOf, fieldLabels, fieldValue, present, type ResourceType } from './resources.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import type { FieldValidation, Store, WriteOptions } from './store.ts';
import { buildTable, TABLE_CONTENT_TYPE, wantsTable } from './table.ts';
import { isJsonObject, type Json, type JsonObject, type KubeObject } from './types.ts';
import type { WatchHub } from './watch.ts';

export interface HttpContext {
  registry: Registry;
  store: Store;
  openapi: OpenApi;
  watches: WatchHub;
  faults: Faults;
  serverAddress: () => string;
  /** The bearer token every request must carry, except those for PUBLIC_PATHS. */
  token: string;
  onRequest?: (entry: RequestLogEntry) => void;
}

export interface RequestLogEntry {
  method: string;
  /** Path and query, as sent. */
  url: string;
  contentType?: string;
  accept?: string;
  /** The request body as text ('' when there is none; base64 for protobuf bodies). */
  body: string;
}

const VERSION_INFO = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-bdr',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
/**
 * What a create or update body may be, as kube-apiserver accepts (less CBOR, which no client here sends).
 * Anything else is 415: in particular the text/plain, form and multipart bodies a web page can send across
 * origins without a preflight.
 */
const OBJECT_TYPES = ['application/json', 'application/yaml', PROTOBUF_CONTENT_TYPE];
/** DeleteOptions bodies: the same minus protobuf, which this server does not decode for them. */
const DELETE_OPTIONS_TYPES = ['application/json', 'application/yaml'];

/**
 * What kube-apiserver's default RBAC (system:public-info-viewer) lets anyone GET without credentials.
 * Everything else needs the token.
 */
const PUBLIC_PATHS = new Set(['/healthz', '/livez', '/readyz', '/version']);

const UNAUTHORIZED = new ApiError(401, 'Unauthorized', 'Unauthorized');

interface Reply {
  code: number;
  body: Json;
  contentType?: string;
  warnings?: string[];
}

function json(code: number, body: Json, extra: Partial<Reply> = {}): Reply {
  return { code, body, ...extra };
}

function send(res: ServerResponse, reply: Reply): void {
  const text = JSON.stringify(reply.body);
  const headers: Record<string, string | string[]> = {
    'Content-Type': reply.contentType ?? 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
  };
  if (reply.warnings?.length) headers.Warning = reply.warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(reply.code, headers);
  res.end(text);
}

const bodies = new WeakMap<IncomingMessage, Promise<Buffer>>();

/** Reads the body once; the request log and the handlers share the same bytes. */
function readRawBody(req: IncomingMessage): Promise<Buffer> {
  let body = bodies.get(req);
  if (!body) {
    body = (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    })();
    bodies.set(req, body);
  }
  return body;
}

async function readBody(req: IncomingMessage): Promise<string> {
  return (await readRawBody(req)).toString('utf8');
}

/** The object a POST or PUT carries: JSON (or YAML), or protobuf for the built-ins kubectl sends that way. */
async function readObjectBody(req: IncomingMessage): Promise<KubeObject> {
  const type = contentTypeOf(req);
  if (!OBJECT_TYPES.includes(type)) throw unsupportedMediaType(type, OBJECT_TYPES);
  if (type === PROTOBUF_CONTENT_TYPE) return asObject(decodeProtobufObject(await readRawBody(req)));
  return asObject(parseBody(await readBody(req), type === 'application/yaml'));
}

function parseBody(text: string, allowYaml: boolean): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (err) {
    if (allowYaml) {
      try {
        return parseYaml(text) as Json;
      } catch {
        // fall through to the JSON error, which is what clients send
      }
    }
    throw badRequest(`error decoding request body: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function asObject(body: Json): KubeObject {
  if (!isJsonObject(body)) throw badRequest('the request body must be a JSON object');
  if (body.metadata !== undefined && !isJsonObject(body.metadata)) throw badRequest('metadata must be an object');
  return { ...body, metadata: (body.metadata as JsonObject | undefined) ?? {} } as unknown as KubeObject;
}

function fieldValidationOf(q: URLSearchParams): FieldValidation | undefined {
  const v = q.get('fieldValidation');
  if (v === null || v === '') return undefined;
  if (v === 'Strict' || v === 'Warn' || v === 'Ignore') return v;
  throw badRequest(`fieldValidation must be one of "Ignore", "Warn" or "Strict", got "${v}"`);
}

function writeOptions(q: URLSearchParams): WriteOptions {
  const dryRun = q.getAll('dryRun');
  if (dryRun.some((d) => d !== 'All')) throw badRequest(`unsupported dry run value: ${dryRun.join(',')}`);
  return { dryRun: dryRun.length > 0, fieldValidation: fieldValidationOf(q) };
}

/**
 * The media type of the body; none means JSON, as kube-apiserver assumes. (A browser can send a body without
 * one, so the 415 rule is a second line: the token is what keeps web pages out.)
 */
function contentTypeOf(req: IncomingMessage): string {
  return (req.headers['content-type'] || 'application/json').split(';')[0]!.trim().toLowerCase();
}

function isPublic(method: string, pathname: string): boolean {
  if (method !== 'GET') return false;
  const path = `/${pathname.split('/').filter((s) => s.length > 0).join('/')}`;
  return PUBLIC_PATHS.has(path);
}

interface ResourcePath {
  group: string;
  version: string;
  namespace?: string;
  plural: string;
  name?: string;
  subresource?: string;
}

/** Splits `/api/v1/...` and `/apis/{group}/{version}/...` into the resource they address. */
function parseResourcePath(segments: string[]): ResourcePath | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === 'api' && segments.length >= 3) {
    group = '';
    version = segments[1]!;
    rest = segments.slice(2);
  } else if (segments[0] === 'apis' && segments.length >= 4) {
    group = segments[1]!;
    version = segments[2]!;
    rest = segments.slice(3);
  } else {
    return undefined;
  }
  const namespaceSub = rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize');
  if (rest[0] === 'namespaces' && rest.length >= 3 && !namespaceSub) {
    return { group, version, namespace: rest[1], plural: rest[2]!, name: rest[3], subresource: rest[4] };
  }
  return { group, version, plural: rest[0]!, name: rest[1], subresource: rest[2] };
}

const NOT_FOUND = new ApiError(404, 'NotFound', 'the server could not find the requested resource');

export class ApiHandler {
  constructor(private readonly ctx: HttpContext) {}

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = (req.method ?? 'GET').toUpperCase();
    const isWatch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    // Before anything reads the body: an unauthenticated client gets nothing but this answer.
    if (!isPublic(method, url.pathname) && !bearerMatches(req.headers.authorization, this.ctx.token)) {
      send(res, json(401, UNAUTHORIZED.toStatus()));
      return;
    }
    try {
      if (this.ctx.onRequest) {
        const raw = method === 'GET' ? Buffer.alloc(0) : await readRawBody(req);
        const body = contentTypeOf(req) === PROTOBUF_CONTENT_TYPE ? raw.toString('base64') : raw.toString('utf8');
        this.ctx.onRequest({ method, url: req.url ?? '/', contentType: req.headers['content-type'], accept: req.headers.accept, body });
      }
      const fault = this.ctx.faults.take(method, url.pathname, isWatch);
      if (fault.delayMs > 0) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.status !== undefined) throw injected(fault.status);
      const reply = await this.route(req, res, url, method, isWatch);
      if (reply) send(res, reply);
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : new ApiError(500, 'InternalError', `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`);
      if (res.headersSent) {
        res.end();
        return;
      }
      send(res, json(apiErr.code, apiErr.toStatus()));
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, method: string, isWatch: boolean): Promise<Reply | undefined> {
    const segments = url.pathname.split('/').filter((s) => s.length > 0).map(decodeURIComponent);
    const accept = req.headers.accept;
    const { registry, openapi } = this.ctx;
    const path = `/${segments.join('/')}`;
    if (method === 'GET') {
      if (path === '/version') return json(200, VERSION_INFO);
      if (path === '/healthz' || path === '/livez' || path === '/readyz') return { code: 200, body: 'ok', contentType: 'text/plain' };
      if (path === '/api') {
        return wantsAggregated(accept)
          ? json(200, aggregatedDiscovery(registry, true), { contentType: AGGREGATED_CONTENT_TYPE })
          : json(200, apiVersions(this.ctx.serverAddress()));
      }
      if (path === '/apis') {
        return wantsAggregated(accept)
          ? json(200, aggregatedDiscovery(registry, false), { contentType: AGGREGATED_CONTENT_TYPE })
          : json(200, apiGroupList(registry));
      }
      if (segments[0] === 'api' && segments.length === 2) return found(apiResourceList(registry, '', segments[1]!));
      if (segments[0] === 'apis' && segments.length === 2) return found(apiGroup(registry, segments[1]!));
      if (segments[0] === 'apis' && segments.length === 3) return found(apiResourceList(registry, segments[1]!, segments[2]!));
      if (path === '/openapi/v3') return json(200, openapi.index());
      if (segments[0] === 'openapi' && segments[1] === 'v3') return found(openapi.document(segments.slice(2).join('/')));
    }
    const rp = parseResourcePath(segments);
    if (!rp) throw NOT_FOUND;
    const rt = registry.get(rp.group, rp.version, rp.plural);
    if (!rt) throw NOT_FOUND;
    if (rp.namespace !== undefined && !rt.namespaced) throw NOT_FOUND;
    if (rp.subresource !== undefined && !(rp.subresource === 'status' && rt.statusSubresource)) throw NOT_FOUND;
    if (rp.name === undefined) return this.collection(req, res, rt, rp, url.searchParams, method, isWatch);
    if (rt.namespaced && rp.namespace === undefined) throw NOT_FOUND;
    return this.item(req, rt, rp, rp.name, url.searchParams, method);
  }

  private matcher(rt: ResourceType, q: URLSearchParams): (o: KubeObject) => boolean {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), fieldLabels(rt));
    return (o) => labels(o.metadata.labels) && fields((f) => fieldValue(rt, o, f));
  }

  private render(rt: ResourceType, object: KubeObject): JsonObject {
    return present(rt, object);
  }

  /** Where a write lands: the type itself, or the storage type of a converted API (events.k8s.io). */
  private target(rt: ResourceType, body: KubeObject): { rt: ResourceType; body: KubeObject } {
    return rt.conversion ? { rt: rt.conversion.storage, body: rt.conversion.toStorage(body) } : { rt, body };
  }

  private async collection(req: IncomingMessage, res: ServerResponse, rt: ResourceType, rp: ResourcePath, q: URLSearchParams, method: string, isWatch: boolean): Promise<Reply | undefined> {
    const { store } = this.ctx;
    const table = wantsTable(req.headers.accept);
    if (method === 'GET' && isWatch) {
      const timeout = Number(q.get('timeoutSeconds') ?? '0');
      this.ctx.watches.serve(
        {
          rt,
          namespace: rp.namespace,
          matches: this.matcher(rt, q),
          resourceVersion: q.get('resourceVersion') ?? undefined,
          allowBookmarks: q.get('allowWatchBookmarks') === 'true',
          timeoutSeconds: Number.isFinite(timeout) ? timeout : 0,
          table,
          sendInitialEvents: q.get('sendInitialEvents') === 'true',
        },
        res,
      );
      return undefined;
    }
    if (method === 'GET' || method === 'DELETE') {
      const matches = this.matcher(rt, q);
      const items = store
        .list(rt.storageKey, rp.namespace)
        .filter(matches)
        .sort(byNamespaceAndName);
      if (method === 'DELETE') {
        const opts = await this.deleteOptions(req, q);
        const deleted = items.map((o) => this.ctx.store.delete(rt.conversion?.storage ?? rt, o.metadata.namespace, o.metadata.name ?? '', opts).object);
        return json(200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata: { resourceVersion: String(store.resourceVersion) }, items: deleted.map((o) => this.render(rt, o)) });
      }
      const rv = String(store.resourceVersion);
      const page = paginate(items, q);
      const listMeta: JsonObject = { resourceVersion: rv };
      if (page.continueToken) {
        listMeta.continue = page.continueToken;
        listMeta.remainingItemCount = page.remaining;
      }
      if (table) {
        const t = buildTable(rt.table, page.items, rv);
        t.metadata = listMeta;
        return json(200, t, { contentType: TABLE_CONTENT_TYPE });
      }
      return json(200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata: listMeta, items: page.items.map((o) => this.render(rt, o)) });
    }
    if (method === 'POST') {
      if (rt.namespaced && rp.namespace === undefined) throw methodNotAllowed(`POST is not supported on all-namespaces ${rt.plural}`);
      const t = this.target(rt, await readObjectBody(req));
      const result = store.create(t.rt, rp.namespace, t.body, writeOptions(q));
      return json(201, this.render(rt, result.object), { warnings: result.warnings });
    }
    throw methodNotAllowed(`${method} is not supported on a collection`);
  }

  private async deleteOptions(req: IncomingMessage, q: URLSearchParams): Promise<{ dryRun: boolean; propagationPolicy?: string; preconditions?: { uid?: string; resourceVersion?: string } }> {
    const text = await readBody(req);
    const type = contentTypeOf(req);
    if (text.trim() && !DELETE_OPTIONS_TYPES.includes(type)) throw unsupportedMediaType(type, DELETE_OPTIONS_TYPES);
    const body = text.trim() ? parseBody(text, type === 'application/yaml') : {};
    const opts = isJsonObject(body) ? body : {};
    const pre = isJsonObject(opts.preconditions) ? opts.preconditions : undefined;
    const dryRun = q.getAll('dryRun').includes('All') || (Array.isArray(opts.dryRun) && opts.dryRun.includes('All'));
    let propagationPolicy = q.get('propagationPolicy') ?? (typeof opts.propagationPolicy === 'string' ? opts.propagationPolicy : undefined);
    if (propagationPolicy === undefined && (q.get('orphanDependents') === 'true' || opts.orphanDependents === true)) propagationPolicy = 'Orphan';
    return {
      dryRun,
      propagationPolicy,
      preconditions: pre
        ? { uid: typeof pre.uid === 'string' ? pre.uid : undefined, resourceVersion: typeof pre.resourceVersion === 'string' ? pre.resourceVersion : undefined }
        : undefined,
    };
  }

  private async item(req: IncomingMessage, rt: ResourceType, rp: ResourcePath, name: string, q: URLSearchParams, method: string): Promise<Reply> {
    const { store } = this.ctx;
    const sub = rp.subresource === 'status' ? 'status' : 'main';
    const ns = rp.namespace;
    switch (method) {
      case 'GET': {
        const object = store.get(rt.storageKey, ns, name);
        if (!object) throw notFoundFor(rt, name);
        if (wantsTable(req.headers.accept)) {
          return json(200, buildTable(rt.table, [object], object.metadata.resourceVersion ?? ''), { contentType: TABLE_CONTENT_TYPE });
        }
        return json(200, this.render(rt, object));
      }
      case 'PUT': {
        const t = this.target(rt, await readObjectBody(req));
        const result = store.update(t.rt, ns, name, t.body, writeOptions(q), sub);
        return json(200, this.render(rt, result.object), { warnings: result.warnings });
      }
      case 'PATCH':
        return this.patch(req, rt, ns, name, q, sub);
      case 'DELETE': {
        if (sub === 'status') throw methodNotAllowed('DELETE is not supported on the status subresource');
        const result = store.delete(rt.conversion?.storage ?? rt, ns, name, await this.deleteOptions(req, q));
        if (result.kind === 'marked' || rt.plural === 'namespaces') return json(200, this.render(rt, result.object));
        return json(200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { name, group: rt.group, kind: rt.plural, uid: result.object.metadata.uid ?? '' },
        });
      }
      default:
        throw methodNotAllowed(`${method} is not supported`);
    }
  }

  private async patch(req: IncomingMessage, rt: ResourceType, ns: string | undefined, name: string, q: URLSearchParams, sub: 'main' | 'status'): Promise<Reply> {
    const { store } = this.ctx;
    const type = contentTypeOf(req);
    const accepted = rt.builtin ? [...PATCH_TYPES, 'application/strategic-merge-patch+json'] : PATCH_TYPES;
    if (!accepted.includes(type)) throw unsupportedMediaType(type, accepted);
    const isApply = type === 'application/apply-patch+yaml';
    const patch = parseBody(await readBody(req), isApply);
    const options = writeOptions(q);
    const existing = store.get(rt.storageKey, ns, name);
    if (isApply) {
      const manager = q.get('fieldManager');
      if (!manager) {
        throw invalid(rt.kind, rt.group, name, [{ reason: 'FieldValueRequired', field: 'fieldManager', message: 'Required value: is required for apply patch' }]);
      }
      if (!existing && sub === 'status') throw notFoundFor(rt, name);
      const config = asObject(patch);
      if (config.metadata.name && config.metadata.name !== name) {
        throw badRequest(`the name of the object (${config.metadata.name}) does not match the name on the URL (${name})`);
      }
      config.metadata = { ...config.metadata, name };
      const object = serverSideApply({
        existing: existing ? (this.render(rt, existing) as unknown as KubeObject) : undefined,
        config,
        manager,
        force: q.get('force') === 'true',
        apiVersion: apiVersionOf(rt),
        subresource: sub,
        statusSubresource: rt.statusSubresource,
        subject: rt,
      });
      const t = this.target(rt, object);
      const applyOptions = { ...options, keepManagedFields: true };
      if (!existing) {
        const created = store.create(t.rt, ns, t.body, applyOptions);
        return json(201, this.render(rt, created.object), { warnings: created.warnings });
      }
      const updated = store.update(t.rt, ns, name, t.body, applyOptions, sub);
      return json(200, this.render(rt, updated.object), { warnings: updated.warnings });
    }
    if (!existing) throw notFoundFor(rt, name);
    const current = this.render(rt, existing);
    let patched: Json;
    if (type === 'application/json-patch+json') patched = jsonPatch(current, patch);
    else if (type === 'application/strategic-merge-patch+json') patched = strategicMergePatch(current, patch);
    else {
      if (!isJsonObject(patch)) throw badRequest('a merge patch must be a JSON object');
      patched = mergePatch(current, patch);
    }
    const t = this.target(rt, asObject(patched));
    const result = store.update(t.rt, ns, name, t.body, options, sub);
    return json(200, this.render(rt, result.object), { warnings: result.warnings });
  }
}

/**
 * `limit`/`continue` paging in key order. The token names the last key served, so a later page starts
 * after it in the current state (kube-apiserver would serve the snapshot of the first page instead).
 */
function paginate(items: KubeObject[], q: URLSearchParams): { items: KubeObject[]; continueToken?: string; remaining: number } {
  let start = 0;
  const token = q.get('continue');
  if (token) {
    let after: { ns: string; name: string };
    try {
      after = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { ns: string; name: string };
    } catch {
      throw badRequest('continue key is not valid: illegal base64 data');
    }
    const probe = { metadata: { namespace: after.ns || undefined, name: after.name } } as KubeObject;
    start = items.findIndex((o) => byNamespaceAndName(o, probe) > 0);
    if (start < 0) start = items.length;
  }
  const limit = Number(q.get('limit') ?? '0');
  if (!Number.isInteger(limit) || limit <= 0 || start + limit >= items.length) return { items: items.slice(start), remaining: 0 };
  const pageItems = items.slice(start, start + limit);
  const last = pageItems[pageItems.length - 1]!;
  const continueToken = Buffer.from(JSON.stringify({ ns: last.metadata.namespace ?? '', name: last.metadata.name ?? '' })).toString('base64url');
  return { items: pageItems, continueToken, remaining: items.length - start - limit };
}

/** etcd key order (namespace, then name), with byte comparison like etcd rather than locale rules. */
function byNamespaceAndName(a: KubeObject, b: KubeObject): number {
  const an = a.metadata.namespace ?? '';
  const bn = b.metadata.namespace ?? '';
  if (an !== bn) return an < bn ? -1 : 1;
  const a2 = a.metadata.name ?? '';
  const b2 = b.metadata.name ?? '';
  return a2 < b2 ? -1 : a2 > b2 ? 1 : 0;
}

function found(body: JsonObject | undefined): Reply {
  if (!body) throw NOT_FOUND;
  return json(200, body);
}

function notFoundFor(rt: ResourceType, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${rt.group ? `${rt.plural}.${rt.group}` : rt.plural} "${name}" not found`, { name, group: rt.group, kind: rt.plural });
}

function injected(status: number): ApiError {
  const reasons: Record<number, string> = { 409: 'Conflict', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout' };
  const messages: Record<number, string> = {
    409: 'Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected fault)',
    500: 'Internal error occurred: injected fault',
  };
  return new ApiError(status, reasons[status] ?? 'InternalError', messages[status] ?? `injected fault (HTTP ${status})`);
}
