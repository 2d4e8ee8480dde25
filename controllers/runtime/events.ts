/**
 * Kubernetes Events for what users should see in `kubectl describe`. Repeats of the same (object, type, reason,
 * message) within the window update one Event's count instead of creating new ones, as the kubelet's
 * recorder does; a failure to record is logged, never fatal.
 */
import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from '../../metrics/log.ts';
import { systemClock, type Clock } from './clock.ts';
import type { KubeClient, KubeObject } from './kube.ts';

export type EventType = 'Normal' | 'Warning';

const WINDOW_MS = 10 * 60_000;
const MAX_MESSAGE = 1024;

interface Seen {
  name: string;
  namespace: string;
  count: number;
  last: number;
}

export class EventRecorder {
  private readonly seen = new Map<string, Seen>();

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    /** Namespace for events about cluster-scoped objects. */
    private readonly defaultNamespace: string,
    private readonly log: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  async record(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message;
    const key = `${obj.metadata.uid}\0${type}\0${reason}\0${text}`;
    // What users see in `kubectl describe` also goes to the log, so `bdr up` on a terminal shows the work.
    const fields = { kind: obj.kind, name: obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name, reason };
    if (type === 'Warning') this.log.warn(text, fields);
    else this.log.info(text, fields);
    const now = this.clock.now();
    const at = new Date(now);
    const prev = this.seen.get(key);
    try {
      if (prev && now - prev.last < WINDOW_MS) {
        prev.count++;
        prev.last = now;
        await this.client.patchEvent(prev.namespace, prev.name, { count: prev.count, lastTimestamp: at.toISOString() });
        return;
      }
      const namespace = obj.metadata.namespace ?? this.defaultNamespace;
      const name = `${obj.metadata.name}.${randomBytes(8).toString('hex')}`;
      const event: CoreV1Event = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.metadata.name,
          namespace: obj.metadata.namespace,
          uid: obj.metadata.uid,
          resourceVersion: obj.metadata.resourceVersion,
        },
        type,
        reason,
        message: text,
        count: 1,
        firstTimestamp: at,
        lastTimestamp: at,
        source: { component: this.component },
        reportingComponent: this.component,
      };
      await this.client.createEvent(namespace, event);
      this.seen.set(key, { name, namespace, count: 1, last: now });
      this.prune(now);
    } catch (err) {
      this.log.warn('could not record event', { reason, object: obj.metadata.name, error: err as Error });
    }
  }

  private prune(now: number): void {
    if (this.seen.size < 1000) return;
    for (const [k, v] of this.seen) if (now - v.last >= WINDOW_MS) this.seen.delete(k);
  }
}
