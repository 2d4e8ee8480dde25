import { builtin, events as coreEvents } from './builtins.ts';
import { badRequest } from './errors.ts';
import { apiVersionOf, type ResourceType } from './resources.ts';
import type { KubeObject } from './types.ts';

/** events.k8s.io/v1 field ↔ core v1 field: the two APIs are views of the same stored events. */
const RENAMES: Array<[string, string]> = [
  ['regarding', 'involvedObject'],
  ['note', 'message'],
  ['reportingController', 'reportingComponent'],
  ['deprecatedSource', 'source'],
  ['deprecatedFirstTimestamp', 'firstTimestamp'],
  ['deprecatedLastTimestamp', 'lastTimestamp'],
  ['deprecatedCount', 'count'],
];
const SHARED = ['reason', 'type', 'action', 'related', 'eventTime', 'series', 'reportingInstance'];

function copyFields(from: KubeObject, pairs: Array<[string, string]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [src, dst] of pairs) if (from[src] !== undefined) out[dst] = from[src];
  for (const key of SHARED) if (from[key] !== undefined) out[key] = from[key];
  return out;
}

/** events.k8s.io/v1 Event, stored as (and interchangeable with) core v1 Event, as in kube-apiserver. */
export const eventsV1: ResourceType = {
  ...builtin({
    group: 'events.k8s.io',
    version: 'v1',
    plural: 'events',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
    schema: {
      type: 'object',
      description: 'Event is a report of an event somewhere in the cluster.',
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: { $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' },
        regarding: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        note: { type: 'string' },
        reason: { type: 'string' },
        type: { type: 'string' },
        action: { type: 'string' },
        eventTime: { type: 'string' },
        reportingController: { type: 'string' },
        reportingInstance: { type: 'string' },
        series: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      },
    },
    table: coreEvents.table,
    // Field selectors are evaluated against the stored (core) form.
    extraFieldLabels: {
      'regarding.kind': 'involvedObject.kind',
      'regarding.namespace': 'involvedObject.namespace',
      'regarding.name': 'involvedObject.name',
      'regarding.uid': 'involvedObject.uid',
      'regarding.apiVersion': 'involvedObject.apiVersion',
      'regarding.resourceVersion': 'involvedObject.resourceVersion',
      'regarding.fieldPath': 'involvedObject.fieldPath',
      reason: 'reason',
      reportingController: 'reportingComponent',
      type: 'type',
    },
  }),
  storageKey: coreEvents.storageKey,
  conversion: {
    storage: coreEvents,
    toStorage(object) {
      if (object.kind !== 'Event' || object.apiVersion !== 'events.k8s.io/v1') {
        throw badRequest(`the API version in the data (${String(object.apiVersion)}) does not match the expected API version (events.k8s.io/v1)`);
      }
      return { apiVersion: apiVersionOf(coreEvents), kind: 'Event', metadata: object.metadata, ...copyFields(object, RENAMES) };
    },
    fromStorage(object) {
      const back = RENAMES.map(([a, b]): [string, string] => [b, a]);
      return { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: object.metadata, ...copyFields(object, back) };
    },
  },
};
