import { ApiError, badRequest } from './errors.ts';
import { deepClone, isJsonObject, jsonEqual, setOwn, type Json, type JsonObject } from './types.ts';

/** RFC 7386: objects merge recursively, `null` deletes, everything else (lists included) replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isJsonObject(patch)) return deepClone(patch);
  const result: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else setOwn(result, key, mergePatch(Object.prototype.hasOwnProperty.call(result, key) ? result[key] : undefined, value));
  }
  return result;
}

/**
 * Strategic merge patch for the built-in kinds this server stores (namespaces, secrets, configmaps,
 * events, leases). None of them have list fields with merge keys that clients patch, so this is a merge
 * patch that honours the `$patch` and `$retainKeys` directives and drops `$setElementOrder`.
 */
export function strategicMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isJsonObject(patch)) return deepClone(patch);
  const directive = patch.$patch;
  if (directive === 'replace') {
    const rest = { ...patch };
    delete rest.$patch;
    return deepClone(rest);
  }
  if (directive === 'delete') return null;
  let result: JsonObject = isJsonObject(target) ? { ...target } : {};
  const retain = patch.$retainKeys;
  if (Array.isArray(retain)) {
    const keep = new Set(retain.filter((k): k is string => typeof k === 'string'));
    result = Object.fromEntries(Object.entries(result).filter(([k]) => keep.has(k)));
  }
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/') || key.startsWith('$deleteFromPrimitiveList/')) {
      continue;
    }
    if (value === null) delete result[key];
    else {
      const merged = strategicMergePatch(Object.prototype.hasOwnProperty.call(result, key) ? result[key] : undefined, value);
      if (merged === null) delete result[key];
      else setOwn(result, key, merged);
    }
  }
  return result;
}

function decodePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw badRequest(`JSON pointer "${pointer}" must start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, tokens: string[], op: string): { parent: JsonObject | Json[]; key: string } {
  let node: Json = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(node)) node = node[Number(token)] as Json;
    else if (isJsonObject(node)) node = node[token] as Json;
    else node = undefined as unknown as Json;
    if (node === undefined || node === null || typeof node !== 'object') {
      throw patchFailure(`${op} operation does not apply: doc is missing path: /${tokens.join('/')}`);
    }
  }
  return { parent: node as JsonObject | Json[], key: tokens[tokens.length - 1]! };
}

function patchFailure(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

function arrayIndex(arr: Json[], key: string, allowEnd: boolean, op: string): number {
  if (key === '-' && allowEnd) return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(key)) throw patchFailure(`${op} operation does not apply: invalid array index ${key}`);
  const i = Number(key);
  if (i > arr.length || (!allowEnd && i === arr.length)) {
    throw patchFailure(`${op} operation does not apply: index ${i} out of bounds`);
  }
  return i;
}

function getAt(doc: Json, pointer: string, op: string): Json {
  let node: Json | undefined = doc;
  for (const token of decodePointer(pointer)) {
    if (Array.isArray(node)) node = node[Number(token)];
    else if (isJsonObject(node)) node = node[token];
    else node = undefined;
    if (node === undefined) throw patchFailure(`${op} operation does not apply: doc is missing path: ${pointer}`);
  }
  return node;
}

function removeAt(doc: Json, pointer: string, op: string): Json {
  const tokens = decodePointer(pointer);
  if (tokens.length === 0) throw patchFailure(`${op} operation does not apply: cannot remove the root`);
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, false, op);
    return parent.splice(i, 1)[0]!;
  }
  if (!Object.prototype.hasOwnProperty.call(parent, key)) {
    throw patchFailure(`${op} operation does not apply: doc is missing path: ${pointer}`);
  }
  const old = parent[key]!;
  delete parent[key];
  return old;
}

function addAt(doc: Json, pointer: string, value: Json, op: string, replace: boolean): Json {
  const tokens = decodePointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = parentOf(doc, tokens, op);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, !replace, op);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else {
    if (replace && !Object.prototype.hasOwnProperty.call(parent, key)) {
      throw patchFailure(`${op} operation does not apply: doc is missing key: ${pointer}`);
    }
    parent[key] = value;
  }
  return doc;
}

/** RFC 6902 JSON patch, `test` included; any failing operation fails the whole patch. */
export function jsonPatch(target: Json, operations: Json): Json {
  if (!Array.isArray(operations)) throw badRequest('json patch must be an array of operations');
  let doc = deepClone(target);
  for (const raw of operations) {
    if (!isJsonObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw badRequest(`invalid json patch operation: ${JSON.stringify(raw)}`);
    }
    const { op, path } = raw;
    switch (op) {
      case 'add':
        doc = addAt(doc, path, deepClone(raw.value ?? null), op, false);
        break;
      case 'replace':
        doc = addAt(doc, path, deepClone(raw.value ?? null), op, true);
        break;
      case 'remove':
        removeAt(doc, path, op);
        break;
      case 'move': {
        if (typeof raw.from !== 'string') throw badRequest('move operation requires "from"');
        const value = removeAt(doc, raw.from, op);
        doc = addAt(doc, path, value, op, false);
        break;
      }
      case 'copy': {
        if (typeof raw.from !== 'string') throw badRequest('copy operation requires "from"');
        doc = addAt(doc, path, deepClone(getAt(doc, raw.from, op)), op, false);
        break;
      }
      case 'test': {
        const actual = getAt(doc, path, op);
        if (!jsonEqual(actual, raw.value)) {
          throw patchFailure(`testing value ${path} failed: test operation does not apply`);
        }
        break;
      }
      default:
        throw badRequest(`unexpected json patch operation "${op}"`);
    }
  }
  return doc;
}
