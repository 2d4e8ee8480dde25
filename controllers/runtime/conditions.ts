/**
 * Conditions the kstatus way (Flux's rules): Ready is always present; Reconciling and Stalled only while True;
 * each carries the generation it describes. Pure functions over plain arrays; lastTransitionTime changes only
 * when a condition's status changes, so rewriting the same state is a no-op and causes no API write.
 */
import type { Condition } from '../../api/types.ts';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/** Kubernetes caps condition messages at 32 KiB; status must never carry unbounded command output. */
const MAX_MESSAGE = 1024;

export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  observedGeneration: number,
  now: Date,
): Condition[] {
  const message = input.message.length > MAX_MESSAGE ? `${input.message.slice(0, MAX_MESSAGE - 1)}…` : input.message;
  const existing = findCondition(conditions, input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    observedGeneration,
    lastTransitionTime:
      existing && existing.status === input.status ? existing.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    reason: input.reason,
    message,
  };
  const rest = (conditions ?? []).filter((c) => c.type !== input.type);
  return sortConditions([...rest, next]);
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

// Ready first, then the other kstatus conditions, then domain conditions alphabetically: stable output means
// equal states compare equal and `kubectl get -o yaml` reads the same every time.
const ORDER = ['Ready', 'Reconciling', 'Stalled'];
function sortConditions(conditions: Condition[]): Condition[] {
  const rank = (t: string) => {
    const i = ORDER.indexOf(t);
    return i < 0 ? ORDER.length : i;
  };
  return conditions.sort((a, b) => rank(a.type) - rank(b.type) || a.type.localeCompare(b.type));
}

/** The outcome of one reconcile, which summarize() turns into the standard conditions. */
export type Outcome =
  | { state: 'ready'; reason?: string; message: string }
  | { state: 'progressing'; reason: string; message: string }
  | { state: 'failed'; reason: string; message: string }
  | { state: 'stalled'; reason: string; message: string };

/**
 * Sets Ready, Reconciling and Stalled from one outcome:
 * ready → Ready=True; progressing → Ready=Unknown + Reconciling=True; failed (will retry) → Ready=False +
 * Reconciling=True; stalled (needs a human) → Ready=False + Stalled=True.
 */
export function summarize(conditions: readonly Condition[] | undefined, outcome: Outcome, generation: number, now: Date): Condition[] {
  let out = [...(conditions ?? [])];
  const set = (type: string, status: ConditionStatus, reason: string, message: string) => {
    out = setCondition(out, { type, status, reason, message }, generation, now);
  };
  switch (outcome.state) {
    case 'ready':
      set('Ready', 'True', outcome.reason ?? 'Succeeded', outcome.message);
      out = removeCondition(removeCondition(out, 'Reconciling'), 'Stalled');
      break;
    case 'progressing':
      set('Ready', 'Unknown', outcome.reason, outcome.message);
      set('Reconciling', 'True', outcome.reason, outcome.message);
      out = removeCondition(out, 'Stalled');
      break;
    case 'failed':
      set('Ready', 'False', outcome.reason, outcome.message);
      set('Reconciling', 'True', 'ProgressingWithRetry', outcome.message);
      out = removeCondition(out, 'Stalled');
      break;
    case 'stalled':
      set('Ready', 'False', outcome.reason, outcome.message);
      set('Stalled', 'True', outcome.reason, outcome.message);
      out = removeCondition(out, 'Reconciling');
      break;
  }
  return out;
}
