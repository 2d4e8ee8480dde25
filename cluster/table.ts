import { evaluateJsonPath, parseJsonPath } from './jsonpath.ts';
import type { Json, JsonObject, KubeObject } from './types.ts';

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

/** How a resource renders as rows of `kubectl get`: the columns after Name, and their cells. */
export interface TableSpec {
  columns: ColumnDefinition[];
  cells(object: KubeObject, now: Date): Json[];
}

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

const NAME_COLUMN: ColumnDefinition = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  priority: 0,
};

/** k8s.io/apimachinery's HumanDuration, which `kubectl get` shows in AGE columns. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${Math.floor(days / 365)}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

export function age(timestamp: unknown, now: Date): Json {
  if (typeof timestamp !== 'string') return '<unknown>';
  const t = Date.parse(timestamp);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now.getTime() - t);
}

export const AGE_COLUMN: ColumnDefinition = {
  name: 'Age',
  type: 'date',
  format: '',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
  priority: 0,
};

/** The table of a custom resource version: its printer columns, or Age alone when it declares none. */
export function printerColumnTable(columns: PrinterColumn[]): TableSpec {
  const effective: PrinterColumn[] =
    columns.length > 0 ? columns : [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }];
  const compiled = effective.map((c) => ({ column: c, path: parseJsonPath(c.jsonPath) }));
  return {
    columns: effective.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath}`,
      priority: c.priority ?? 0,
    })),
    cells(object, now) {
      return compiled.map(({ column, path }) => {
        const results = evaluateJsonPath(path, object as unknown as Json);
        const first = results[0];
        if (first === undefined || first === null) return null;
        if (column.type === 'date') return age(first, now);
        if (typeof first === 'object') return JSON.stringify(first);
        if (column.type === 'string' && typeof first !== 'string') return String(first);
        return first;
      });
    },
  };
}

function partialObjectMetadata(object: KubeObject): JsonObject {
  return {
    kind: 'PartialObjectMetadata',
    apiVersion: 'meta.k8s.io/v1',
    metadata: JSON.parse(JSON.stringify(object.metadata)) as JsonObject,
  };
}

export const TABLE_CONTENT_TYPE = 'application/json;as=Table;v=v1;g=meta.k8s.io';

export function wantsTable(accept: string | undefined): boolean {
  return accept !== undefined && /as=Table/.test(accept);
}

export function buildTable(spec: TableSpec, objects: KubeObject[], resourceVersion: string, now = new Date()): JsonObject {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: [NAME_COLUMN, ...spec.columns] as unknown as Json,
    rows: objects.map((o) => ({
      cells: [o.metadata.name ?? '', ...spec.cells(o, now)],
      object: partialObjectMetadata(o),
    })),
  };
}
