import { ApiError } from './errors.ts';
import type { JsonObject } from './types.ts';

/**
 * Decodes the protobuf bodies that kubectl's typed commands send (`kubectl create namespace|secret|
 * configmap`): the `k8s\0` envelope around runtime.Unknown, and the few built-in messages this server
 * stores. Field numbers follow k8s.io/api's generated.proto.
 */

export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';

type Field = { no: number; wire: 0; value: bigint } | { no: number; wire: 2; value: Uint8Array } | { no: number; wire: 1 | 5; value: Uint8Array };

function malformed(why: string): ApiError {
  return new ApiError(400, 'BadRequest', `error decoding protobuf body: ${why}`);
}

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw malformed('truncated varint');
    const byte = buf[pos++]!;
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, pos];
    shift += 7n;
    if (shift > 70n) throw malformed('varint too long');
  }
}

function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, next] = readVarint(buf, pos);
    pos = next;
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [value, after] = readVarint(buf, pos);
      out.push({ no, wire, value });
      pos = after;
    } else if (wire === 2) {
      const [len, after] = readVarint(buf, pos);
      const end = after + Number(len);
      if (end > buf.length) throw malformed('truncated field');
      out.push({ no, wire, value: buf.subarray(after, end) });
      pos = end;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      out.push({ no, wire, value: buf.subarray(pos, pos + size) });
      pos += size;
    } else {
      throw malformed(`unsupported wire type ${wire}`);
    }
  }
  return out;
}

const text = (f: Field): string => (f.wire === 2 ? Buffer.from(f.value).toString('utf8') : '');
const int = (f: Field): number => (f.wire === 0 ? Number(BigInt.asIntN(64, f.value)) : 0);
const bytes = (f: Field): Uint8Array => (f.wire === 2 ? f.value : new Uint8Array());

function mapEntry(f: Field, valueAsBase64: boolean): [string, string] {
  let key = '';
  let value = '';
  for (const e of fields(bytes(f))) {
    if (e.no === 1) key = text(e);
    if (e.no === 2) value = valueAsBase64 ? Buffer.from(bytes(e)).toString('base64') : text(e);
  }
  return [key, value];
}

function time(f: Field): string {
  let seconds = 0;
  for (const e of fields(bytes(f))) if (e.no === 1) seconds = int(e);
  return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function ownerReference(f: Field): JsonObject {
  const ref: JsonObject = {};
  for (const e of fields(bytes(f))) {
    if (e.no === 1) ref.kind = text(e);
    else if (e.no === 3) ref.name = text(e);
    else if (e.no === 4) ref.uid = text(e);
    else if (e.no === 5) ref.apiVersion = text(e);
    else if (e.no === 6) ref.controller = int(e) !== 0;
    else if (e.no === 7) ref.blockOwnerDeletion = int(e) !== 0;
  }
  return ref;
}

function objectMeta(buf: Uint8Array): JsonObject {
  const meta: JsonObject = {};
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const finalizers: string[] = [];
  const owners: JsonObject[] = [];
  for (const f of fields(buf)) {
    switch (f.no) {
      case 1: meta.name = text(f); break;
      case 2: meta.generateName = text(f); break;
      case 3: meta.namespace = text(f); break;
      case 5: meta.uid = text(f); break;
      case 6: meta.resourceVersion = text(f); break;
      case 7: meta.generation = int(f); break;
      case 8: meta.creationTimestamp = time(f); break;
      case 11: { const [k, v] = mapEntry(f, false); labels[k] = v; break; }
      case 12: { const [k, v] = mapEntry(f, false); annotations[k] = v; break; }
      case 13: owners.push(ownerReference(f)); break;
      case 14: finalizers.push(text(f)); break;
      default: break;
    }
  }
  for (const k of Object.keys(meta)) if (meta[k] === '' || meta[k] === 0) delete meta[k];
  if (Object.keys(labels).length) meta.labels = labels;
  if (Object.keys(annotations).length) meta.annotations = annotations;
  if (finalizers.length) meta.finalizers = finalizers;
  if (owners.length) meta.ownerReferences = owners;
  return meta;
}

type Decoder = (buf: Uint8Array) => JsonObject;

const DECODERS: Record<string, Decoder> = {
  'v1/Namespace': (buf) => {
    const out: JsonObject = {};
    for (const f of fields(buf)) {
      if (f.no === 1) out.metadata = objectMeta(bytes(f));
      if (f.no === 2) {
        const finalizers = fields(bytes(f)).filter((e) => e.no === 1).map(text);
        out.spec = finalizers.length ? { finalizers } : {};
      }
    }
    return out;
  },
  'v1/ConfigMap': (buf) => {
    const out: JsonObject = {};
    const data: Record<string, string> = {};
    const binaryData: Record<string, string> = {};
    for (const f of fields(buf)) {
      if (f.no === 1) out.metadata = objectMeta(bytes(f));
      else if (f.no === 2) { const [k, v] = mapEntry(f, false); data[k] = v; }
      else if (f.no === 3) { const [k, v] = mapEntry(f, true); binaryData[k] = v; }
      else if (f.no === 4) out.immutable = int(f) !== 0;
    }
    if (Object.keys(data).length) out.data = data;
    if (Object.keys(binaryData).length) out.binaryData = binaryData;
    return out;
  },
  'v1/Secret': (buf) => {
    const out: JsonObject = {};
    const data: Record<string, string> = {};
    const stringData: Record<string, string> = {};
    for (const f of fields(buf)) {
      if (f.no === 1) out.metadata = objectMeta(bytes(f));
      else if (f.no === 2) { const [k, v] = mapEntry(f, true); data[k] = v; }
      else if (f.no === 3) out.type = text(f);
      else if (f.no === 4) { const [k, v] = mapEntry(f, false); stringData[k] = v; }
      else if (f.no === 5) out.immutable = int(f) !== 0;
    }
    if (Object.keys(data).length) out.data = data;
    if (Object.keys(stringData).length) out.stringData = stringData;
    return out;
  },
};

export function protobufKinds(): string[] {
  return Object.keys(DECODERS);
}

/** Decodes a `k8s\0`-framed protobuf object into its JSON form, or throws 415 for kinds it cannot read. */
export function decodeProtobufObject(body: Buffer): JsonObject {
  if (body.length < 4 || body.readUInt32BE(0) !== 0x6b387300) throw malformed('missing the k8s protobuf envelope');
  let apiVersion = '';
  let kind = '';
  let raw: Uint8Array = new Uint8Array();
  for (const f of fields(body.subarray(4))) {
    if (f.no === 1) {
      for (const t of fields(bytes(f))) {
        if (t.no === 1) apiVersion = text(t);
        if (t.no === 2) kind = text(t);
      }
    } else if (f.no === 2) raw = bytes(f);
  }
  const decoder = DECODERS[`${apiVersion}/${kind}`];
  if (!decoder) {
    throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (protobuf is only understood for ${protobufKinds().join(', ')})`);
  }
  return { apiVersion, kind, ...decoder(raw) };
}
