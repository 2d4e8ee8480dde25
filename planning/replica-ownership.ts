/**
 * bdr destroys and changes only what it made. A vector's dataset on the storage machine carries the vector's
 * ownership mark from creation (a local user property holding the Vector's uid), and every file system its key
 * received carries the receive mark (its hold tag), set by the guard or by the operator's own receive. Both are
 * local values: a stream can bring received values of the same properties, and children inherit the parent's,
 * but neither is local.
 *
 * Pure decisions: may the vector use an existing dataset (`containerVerdict`), and what its deletion may
 * destroy (`replicaDestroyPlan`): only subtrees made entirely by this vector, never a file system created or
 * received there by anyone else, nor anything above one.
 */

/** The vector's ownership mark on its dataset: value `vector/<uid>`. */
export const OWNER_MARK = 'dev.bdr:replica-of';

/** The receive mark the guard (and the operator's own receives) set on what a vector's key received: its hold tag. */
export { RECEIVED_MARK } from '../zfs/replica-policy.ts';

export const ownerMarkValue = (uid: string): string => `vector/${uid}`;

/** A property as `zfs get -o value,source` reports it. */
export interface MarkValue {
  readonly value: string;
  readonly source: string;
}

export interface OwnedFileSystem {
  readonly name: string;
  /** The OWNER_MARK property; undefined when the listing did not carry it. */
  readonly owner?: MarkValue;
  /** The receive mark (the guard's `dev.bdr:received`). */
  readonly received?: MarkValue;
}

const localIs = (m: MarkValue | undefined, value: string) => m?.source === 'local' && m.value === value;

export type ContainerVerdict =
  | { readonly kind: 'create' }
  | { readonly kind: 'owned' }
  /** Not marked, but the vector may take it (an explicit adoption, or a dataset an earlier bdr made for it). */
  | { readonly kind: 'adopt'; readonly why: string }
  | { readonly kind: 'refuse'; readonly message: string };

export const ADOPT_ANNOTATION = 'bdr.dev/adopt-replica';

/**
 * May the vector use `dataset` (its replica's container) as it finds it? `found` undefined: it does not exist.
 * `adoptAnnotation` is the Vector's bdr.dev/adopt-replica annotation; `madeBefore` is true when the Vector's
 * own status already records this dataset on this machine (it was created by a bdr without marks).
 */
export function containerVerdict(input: {
  dataset: string;
  uid: string;
  found: OwnedFileSystem | undefined;
  adoptAnnotation: string | undefined;
  madeBefore: boolean;
}): ContainerVerdict {
  const { dataset, uid, found } = input;
  if (!found) return { kind: 'create' };
  if (localIs(found.owner, ownerMarkValue(uid))) return { kind: 'owned' };
  const marked = found.owner?.source === 'local' && found.owner.value !== '' && found.owner.value !== '-';
  if (marked) {
    return { kind: 'refuse', message: `${dataset} belongs to another object (${OWNER_MARK}=${found.owner?.value}); give this vector its own target dataset` };
  }
  if (input.adoptAnnotation === dataset) return { kind: 'adopt', why: `annotation ${ADOPT_ANNOTATION}=${dataset}` };
  if (input.madeBefore) return { kind: 'adopt', why: 'the Vector\'s status records it as its replica, made before bdr marked replicas' };
  return {
    kind: 'refuse',
    message: `${dataset} exists and bdr did not make it for this vector; bdr writes, sets quotas on and destroys only datasets it made. To use it anyway, annotate the Vector ${ADOPT_ANNOTATION}=${dataset}, or target a dataset that does not exist yet`,
  };
}

export interface DestroyPlan {
  /** Top-most subtrees to destroy recursively: every file system in them is this vector's. */
  readonly destroy: readonly string[];
  /** File systems kept because someone else made them, with their ancestors that must stay for them. */
  readonly kept: readonly string[];
  /** Why nothing is destroyed at all, when the container is not the vector's. */
  readonly refused?: string;
}

/**
 * What a Delete may destroy below `container`, from a listing of every file system at or below it. A file system
 * is this vector's when it is the container with the vector's owner mark, or carries the receive mark `tag`
 * locally below it. A subtree is destroyed whole only when all of it is the vector's; a foreign file system keeps
 * itself and its ancestors.
 */
export function replicaDestroyPlan(container: string, uid: string, tag: string, listing: readonly OwnedFileSystem[]): DestroyPlan {
  const top = listing.find((f) => f.name === container);
  if (!top) return { destroy: [], kept: [] };
  if (!localIs(top.owner, ownerMarkValue(uid))) {
    return { destroy: [], kept: [container], refused: `${container} does not carry this vector's ownership mark (${OWNER_MARK}=${ownerMarkValue(uid)}): bdr did not make it, so it is kept` };
  }
  const below = listing.filter((f) => f.name.startsWith(`${container}/`));
  const foreign = below.filter((f) => !localIs(f.received, tag)).map((f) => f.name);
  const taints = (name: string) => foreign.some((x) => x === name || x.startsWith(`${name}/`));
  if (!taints(container)) return { destroy: [container], kept: [] };
  const kept = [container, ...below.filter((f) => taints(f.name)).map((f) => f.name)];
  const clean = below.filter((f) => !taints(f.name)).map((f) => f.name);
  // Top-most clean subtrees only: a recursive destroy of the parent takes the children with it.
  const destroy = clean.filter((name) => !clean.some((other) => name.startsWith(`${other}/`)));
  return { destroy, kept: kept.sort() };
}
