import { badRequest, invalid, type StatusCause } from './errors.ts';
import { validateCommonMetadata, validateSubdomain, type ResourceType } from './resources.ts';
import { normalize, validateAgainst } from './schema.ts';
import type { WriteOptions } from './store.ts';
import type { JsonObject, KubeObject } from './types.ts';

/** Schema pruning, defaulting and validation, plus the kind's own rules: what every write goes through. */
export function admit(rt: ResourceType, object: KubeObject, old: KubeObject | undefined, options: WriteOptions): { object: KubeObject; warnings: string[] } {
  rt.normalize?.(object, old);
  let admitted = object;
  const warnings: string[] = [];
  const causes: StatusCause[] = [];
  if (rt.schema) {
    const { object: pruned, unknownFields } = normalize(object as unknown as JsonObject, rt.schema);
    admitted = pruned as unknown as KubeObject;
    const mode = options.fieldValidation ?? 'Warn';
    if (unknownFields.length > 0 && mode === 'Strict') {
      const list = unknownFields.map((f) => `unknown field "${f}"`).join(', ');
      throw badRequest(`${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: strict decoding error: ${list}`);
    }
    if (mode === 'Warn') for (const f of unknownFields) warnings.push(`unknown field "${f}"`);
    causes.push(...validateAgainst(admitted as unknown as JsonObject, rt.schema));
  }
  const name = admitted.metadata.name ?? '';
  if (rt.plural !== 'namespaces') causes.push(...validateSubdomain(name, 'metadata.name'));
  causes.push(...validateCommonMetadata(admitted));
  causes.push(...(rt.validate?.(admitted, old) ?? []));
  if (old?.metadata.deletionTimestamp) {
    const before = new Set(old.metadata.finalizers ?? []);
    const added = (admitted.metadata.finalizers ?? []).filter((f) => !before.has(f));
    if (added.length > 0) {
      causes.push({
        reason: 'FieldValueForbidden',
        field: 'metadata.finalizers',
        message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(', ')}}`,
      });
    }
  }
  if (causes.length > 0) throw invalid(rt.kind, rt.group, name, causes);
  return { object: admitted, warnings };
}
