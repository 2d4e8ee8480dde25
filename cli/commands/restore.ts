/**
 * `bdr restore`: clones one restore point of a Dataset into a new writable dataset (`zfs clone -p`), ready to
 * mount or boot. A clone costs the same whichever restore point it starts from, so the time does not grow with
 * the number of restore points: with `--snapshot` the one snapshot is checked (one `zfs get`), with `--at` the
 * dataset's own snapshots are listed once (`zfs get -d 1`, never other datasets' snapshots) and the newest at
 * or before the time is chosen. Nothing but the new clone (and missing parents of it) is ever written.
 */
import { Command, Option } from 'commander';
import { nameProblem } from '../../api/names.ts';
import type { Dataset, Machine } from '../../api/types.ts';
import { datasetAccess, storageAreasOf } from '../../planning/dataset-grants.ts';
import { mountpointProblem } from '../../planning/tenancy.ts';
import { datasetSnapshots, OWNER_PROPERTY, poolOf } from '../../controllers/dataset-snapshots.ts';
import { instantOfSnapshotName, type DatasetSnapshot } from '../../planning/dataset-plan.ts';
import { parseZfsGet } from '../../zfs/inventory.ts';
import { ZfsError, type ZfsErrorKind } from '../../zfs/errors.ts';
import type { ZfsMachine } from '../../zfs/machine.ts';
import { EXIT, UserError } from '../errors.ts';
import { connectionError, DEFAULT_NAMESPACE, notDeclared, openObjectSource, type ObjectSource } from '../object-source.ts';
import { isoSeconds, parseTimeArg } from '../time-arg.ts';

export type RestoreChoice = { snapshot: string } | { at: number };

export interface RestoreRequest {
  /** The ZFS dataset whose restore point is cloned. */
  dataset: string;
  choice: RestoreChoice;
  /** The new dataset; must not exist, must be in the same pool. */
  target: string;
  /** For messages: "Machine nas01". */
  where?: string;
  /** Set on the clone at creation (`zfs clone -o`): a replica's clone gets readonly=off and its own mountpoint. */
  properties?: Record<string, string>;
  /**
   * A replica: its snapshots carry no dev.bdr:owner (received streams do not), so a bdr-<UTC> name alone gives the
   * restore point's instant, as the Vector controller reads it (controllers/vector-sync.ts `snapshotsOf`).
   */
  replica?: boolean;
}

/** A replica's point stands for its bdr-<UTC> name's instant, not for when it was received. */
function asReplica(req: RestoreRequest, points: DatasetSnapshot[]): DatasetSnapshot[] {
  if (!req.replica) return points;
  return points.map((p) => ({ ...p, createdAt: instantOfSnapshotName(p.name.slice(p.name.indexOf('@') + 1)) ?? p.createdAt }));
}

export interface RestoreResult {
  /** Full name of the restore point cloned. */
  snapshot: string;
  /** The instant it stands for (bdr's name instant, or ZFS creation for snapshots bdr did not take). */
  createdAt: number;
  /** Taken by bdr (dev.bdr:owner=bdr, bdr-<UTC> name). */
  ownedByBdr: boolean;
  target: string;
  /** The clone's mountpoint property ("none", "legacy" or a path). */
  mountpoint: string;
  /** How many snapshots of the dataset were listed (0 with an explicit snapshot). */
  listed: number;
}

const PROPS = `creation,createtxg,${OWNER_PROPERTY}`;
/** Failures of the connection rather than of ZFS (nodes/errors.ts). */
const TRANSPORT = new Set<ZfsErrorKind>(['hostKeyMismatch', 'authenticationFailed', 'connectFailed', 'connectionLost', 'timeout', 'aborted', 'invalidConfig']);

/**
 * The checks that need no machine: names and pool. Throws a UserError that says what to do; returns the full
 * snapshot name for `--snapshot`.
 */
export function checkRestoreNames(dataset: string, choice: RestoreChoice, target: string): string | undefined {
  const datasetProblem = nameProblem('dataset', dataset);
  if (datasetProblem) throw new UserError(`the Dataset's spec.name ${JSON.stringify(dataset)}: ${datasetProblem}; fix the Dataset`, EXIT.invalid);
  const targetProblem = nameProblem('dataset', target);
  if (targetProblem) {
    throw new UserError(`--to ${JSON.stringify(target)}: ${targetProblem}; give a full ZFS dataset name such as ${poolOf(dataset)}/restore/${dataset.split('/').at(-1) ?? 'copy'}`, EXIT.invalid);
  }
  if (poolOf(target) !== poolOf(dataset)) {
    throw new UserError(
      `--to ${target} is in pool ${poolOf(target)}, but ${dataset} is in pool ${poolOf(dataset)}: a clone stays in its snapshot's pool; ` +
        `choose a target under ${poolOf(dataset)}/ (to copy to another pool, use zfs send | zfs receive)`,
      EXIT.invalid,
    );
  }
  if (target === dataset) throw new UserError(`--to ${target} is the dataset itself; choose a new name such as ${dataset}-restored`, EXIT.invalid);
  if (!('snapshot' in choice)) return undefined;
  let short = choice.snapshot;
  if (short.includes('@')) {
    const problem = nameProblem('snapshot', short);
    if (problem) throw new UserError(`--snapshot ${JSON.stringify(short)}: ${problem}`, EXIT.invalid);
    const [ds = '', rest = ''] = short.split('@');
    if (ds !== dataset) throw new UserError(`--snapshot ${short} is not a snapshot of ${dataset}; give ${dataset}@NAME or just NAME`, EXIT.invalid);
    short = rest;
  }
  const problem = nameProblem('snapshotShortName', short);
  if (problem) throw new UserError(`--snapshot ${JSON.stringify(short)}: ${problem}; give a name such as bdr-20261126T090000Z`, EXIT.invalid);
  return `${dataset}@${short}`;
}

const where = (req: RestoreRequest): string => (req.where ? ` on ${req.where}` : '');

/** True when `name` exists on the machine; one `zfs list` of that one name. */
async function exists(zfs: ZfsMachine, name: string): Promise<boolean> {
  try {
    await zfs.run(['zfs', 'list', '-H', '-o', 'name', name]);
    return true;
  } catch (err) {
    if (err instanceof ZfsError && err.kind === 'notFound') return false;
    throw err;
  }
}

/** The snapshots of `dataset` itself (not its children's), from one listing, each with its restore-point instant. */
async function listRestorePoints(zfs: ZfsMachine, req: RestoreRequest): Promise<DatasetSnapshot[]> {
  let stdout: string;
  try {
    // -d 1 lists the dataset, its snapshots and its direct children (without theirs); zfs-fuse has no -t for get.
    stdout = (await zfs.run(['zfs', 'get', '-H', '-p', '-d', '1', '-o', 'name,property,value,source', PROPS, req.dataset])).stdout;
  } catch (err) {
    if (err instanceof ZfsError && err.kind === 'notFound') throw new UserError(`${req.dataset} does not exist${where(req)}; check the Dataset's spec.name`, EXIT.invalid);
    throw err;
  }
  const parsed = parseZfsGet(stdout, [OWNER_PROPERTY]);
  return asReplica(req, datasetSnapshots({ ...parsed, pools: [], takenAt: Date.now() }, req.dataset));
}

async function oneRestorePoint(zfs: ZfsMachine, req: RestoreRequest, snapshot: string): Promise<DatasetSnapshot> {
  let stdout: string;
  try {
    stdout = (await zfs.run(['zfs', 'get', '-H', '-p', '-o', 'name,property,value,source', PROPS, snapshot])).stdout;
  } catch (err) {
    if (err instanceof ZfsError && err.kind === 'notFound') {
      throw new UserError(`restore point ${snapshot} does not exist${where(req)}; list them with bdr plan -v, or use --at TIME`, EXIT.invalid);
    }
    throw err;
  }
  const parsed = parseZfsGet(stdout, [OWNER_PROPERTY]);
  const found = asReplica(req, datasetSnapshots({ ...parsed, pools: [], takenAt: Date.now() }, req.dataset)).find((s) => s.name === snapshot);
  if (!found) throw new UserError(`restore point ${snapshot} does not exist${where(req)}`, EXIT.invalid);
  return found;
}

/** The newest restore point at or before `at`; among equal instants, the one ZFS created last. */
export function newestAtOrBefore(points: readonly DatasetSnapshot[], at: number): DatasetSnapshot | undefined {
  let best: DatasetSnapshot | undefined;
  for (const p of points) if (p.createdAt <= at && (best === undefined || p.createdAt >= best.createdAt)) best = p;
  return best;
}

/** Clones the chosen restore point of `req.dataset` into `req.target`. Names are checked before any command. */
export async function restore(zfs: ZfsMachine, req: RestoreRequest): Promise<RestoreResult> {
  const explicit = checkRestoreNames(req.dataset, req.choice, req.target);
  const choose = async (): Promise<{ point: DatasetSnapshot; listed: number }> => {
    if (explicit !== undefined) return { point: await oneRestorePoint(zfs, req, explicit), listed: 0 };
    const at = (req.choice as { at: number }).at;
    const points = await listRestorePoints(zfs, req);
    const point = newestAtOrBefore(points, at);
    if (!point) {
      const oldest = points.reduce<DatasetSnapshot | undefined>((o, p) => (o === undefined || p.createdAt < o.createdAt ? p : o), undefined);
      throw new UserError(
        oldest
          ? `${req.dataset} has no restore point at or before ${isoSeconds(at)}; the oldest is ${oldest.name} (${isoSeconds(oldest.createdAt)}): give a later --at`
          : `${req.dataset} has no restore points yet${where(req)}; nothing to restore`,
        EXIT.invalid,
      );
    }
    return { point, listed: points.length };
  };
  const [targetExists, chosen] = await Promise.all([exists(zfs, req.target), choose()]);
  if (targetExists) throw refuseExisting(req.target);
  try {
    await zfs.clone(chosen.point.name, req.target, { parents: true, ...(req.properties ? { properties: req.properties } : {}) });
  } catch (err) {
    if (err instanceof ZfsError && err.kind === 'exists') throw refuseExisting(req.target);
    throw err;
  }
  const mountpoint = (await zfs.run(['zfs', 'get', '-H', '-o', 'value', 'mountpoint', req.target])).stdout.trim();
  return { snapshot: chosen.point.name, createdAt: chosen.point.createdAt, ownedByBdr: chosen.point.owned, target: req.target, mountpoint, listed: chosen.listed };
}

function refuseExisting(target: string): UserError {
  return new UserError(`--to ${target} already exists; bdr restore never overwrites: choose a new name (or destroy it first with zfs destroy)`, EXIT.invalid);
}

/** What a clone of a replica mounts with unless --trusted: the primary's content may not run as root here. */
export const UNTRUSTED_CONTENT: Readonly<Record<string, string>> = { setuid: 'off', exec: 'off', devices: 'off' };

interface RestoreOptions {
  replica?: boolean;
  trusted?: boolean;
  mountpoint?: string;
  at?: string;
  snapshot?: string;
  to: string;
  repo?: string;
  kubeconfig?: string;
  output: 'text' | 'json';
}

function parseRef(ref: string): { namespace: string; name: string } {
  const parts = ref.split('/');
  if (parts.length === 1 && parts[0]) return { namespace: DEFAULT_NAMESPACE, name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { namespace: parts[0], name: parts[1] };
  throw new UserError(`${JSON.stringify(ref)} is not an object reference: give NAMESPACE/NAME (the Kubernetes object, not the ZFS name)`, EXIT.usage);
}

/** The Dataset `NAMESPACE/NAME` and its Machine. */
async function datasetOf(source: ObjectSource, namespace: string, name: string, showProblems: () => void): Promise<{ machine: Machine; dataset: string }> {
  const ds: Dataset | undefined = await source.dataset(namespace, name);
  if (!ds) {
    showProblems();
    throw new UserError(notDeclared(source, `Dataset ${namespace}/${name}`), EXIT.invalid);
  }
  return { machine: await machineNamed(source, ds.spec.machineRef.name, showProblems), dataset: ds.spec.name };
}

/**
 * The replica the Vector `NAMESPACE/NAME` maintains and its storage machine, from status.pairing (as the Vector
 * controller names it: PAIRING.DATASET/LEAF of the source dataset).
 */
async function replicaOf(source: ObjectSource, namespace: string, name: string, showProblems: () => void): Promise<{ machine: Machine; dataset: string }> {
  const vector = (await source.vectors(namespace)).find((v) => v.metadata.name === name);
  if (!vector) {
    showProblems();
    throw new UserError(notDeclared(source, `Vector ${namespace}/${name}`), EXIT.invalid);
  }
  const pairing = vector.status?.pairing;
  if (!pairing?.machine || !pairing.dataset) {
    throw new UserError(
      `Vector ${namespace}/${name} is not paired yet (no status.pairing${source.description.startsWith('repository') ? '; a repository holds no status: use --kubeconfig' : ''}), so it has no replica to restore from`,
      EXIT.invalid,
    );
  }
  const ref = vector.spec.source.datasetRef;
  if (!ref) throw new UserError(`Vector ${namespace}/${name} replicates another Vector: restore from that chain's first Vector, or clone with zfs clone on ${pairing.machine}`, EXIT.invalid);
  const ds = await source.dataset(namespace, ref.name);
  if (!ds) throw new UserError(notDeclared(source, `Dataset ${namespace}/${ref.name}`), EXIT.invalid);
  const leaf = ds.spec.name.split('/').at(-1) ?? ds.spec.name;
  return { machine: await machineNamed(source, pairing.machine, showProblems), dataset: `${pairing.dataset}/${leaf}` };
}

async function machineNamed(source: ObjectSource, name: string, showProblems: () => void): Promise<Machine> {
  const machine = await source.machine(name);
  if (!machine) {
    showProblems();
    throw new UserError(notDeclared(source, `Machine ${name}`), EXIT.invalid);
  }
  return machine;
}

export function restoreCommand(): Command {
  return new Command('restore')
    .description("clone a restore point of a Dataset (or, with --replica, of a Vector's replica on its storage machine) into a new writable dataset, ready to mount or boot")
    .argument('<object>', 'the Dataset object (the Vector with --replica), NAMESPACE/NAME (NAME alone means namespace "default")')
    .option('--replica', "clone from the Vector's replica on its paired storage machine (status.pairing) instead of the Dataset")
    .option('--mountpoint <path>', "with --replica: mount the clone here (below the storage Machine's spec.mountpointRoot); default: not mounted")
    .option('--trusted', 'with --replica: the content is trusted, so the clone inherits setuid, exec and devices instead of having them off')
    .option('--at <time>', 'the newest restore point at or before TIME: RFC 3339 (2026-11-26T09:30:00Z) or relative (-2h, -1d)')
    .option('--snapshot <name>', 'this restore point: bdr-20261126T090000Z or POOL/DATASET@NAME')
    .requiredOption('--to <dataset>', 'the new dataset, in the same pool (parents are created); must not exist')
    .option('--repo <dir>', 'read the Dataset and its Machine from the manifests in DIR instead of a cluster')
    .option('--kubeconfig <file>', 'read them from this cluster (default: KUBECONFIG, ~/.kube/config, in-cluster)')
    .addOption(new Option('-o, --output <format>', 'text for people, json for scripts').choices(['text', 'json']).default('text'))
    .addHelpText(
      'after',
      `
The clone is a new writable dataset that shares blocks with the restore point (zfs clone -p): it
takes the same time whichever restore point you pick. It stays in the pool of the snapshot (ZFS
clones cannot cross pools). The restore point itself is untouched; while the clone exists, ZFS will
not destroy that snapshot (retention reports it as busy). When done: zfs destroy TARGET, or keep it
and zfs promote TARGET.

Restore points are the dataset's snapshots: bdr's own (named bdr-<UTC time>, whose time is that
name) and any others (whose time is their ZFS creation). --at picks the newest at or before TIME
and says which one it chose.

With --replica NAMESPACE/VECTOR the restore runs on the Vector's paired storage machine (its
status.pairing, so --kubeconfig), through your own connection, from the replica dataset there: the
off-site copy as a running dataset. The clone gets readonly=off and canmount=on (the replica's
readonly=on / canmount=noauto / mountpoint=none are not carried over), and mountpoint=none unless
--mountpoint PATH is given, which the Machine's spec.mountpointRoot rule must allow. The replica's
content came from the primary, so the clone has setuid=off, exec=off and devices=off: a set-uid
program or device node in it cannot act on the storage machine. --trusted lets it inherit them.

--to must lie where the namespace may name datasets on that machine (the Machine's
spec.datasetRoots, or PARENT/NAMESPACE/ of a StorageTarget listing it), as its Datasets must.

Exit codes: 0 cloned · 1 refused (invalid name, target exists or is in another pool, no such restore
point) · 2 usage error · 3 the machine or the cluster could not be reached

Examples:
  bdr restore prod/web01 --at 2026-11-26T09:30:00Z --to tank/restore/web01 --repo ./gitops
  bdr restore prod/web01 --at -1d --to tank/restore/web01-yesterday
  bdr restore prod/web01 --snapshot bdr-20261126T090000Z --to tank/restore/web01 -o json
  bdr restore prod/web01-offsite --replica --at -1d --to backup/restore/web01 --mountpoint /srv/restore/web01`,
    )
    .action(async (ref: string, opts: RestoreOptions) => {
      if ((opts.at === undefined) === (opts.snapshot === undefined)) {
        throw new UserError('give exactly one of --at TIME or --snapshot NAME', EXIT.usage);
      }
      const { namespace, name } = parseRef(ref);
      const choice: RestoreChoice = opts.snapshot !== undefined ? { snapshot: opts.snapshot } : { at: parseTimeArg(opts.at ?? 'now', Date.now()) };
      // The target's name is checked before anything is read: a typo costs nothing.
      const targetProblem = nameProblem('dataset', opts.to);
      if (targetProblem) throw new UserError(`--to ${JSON.stringify(opts.to)}: ${targetProblem}; give a full ZFS dataset name such as tank/restore/${name}`, EXIT.invalid);

      const source = await openObjectSource(opts);
      try {
        // Invalid documents matter only when what we need is missing (it may be one of them).
        const showProblems = () => {
          for (const p of source.problems) process.stderr.write(`${p}\n`);
        };
        const found = opts.replica ? await replicaOf(source, namespace, name, showProblems) : await datasetOf(source, namespace, name, showProblems);
        const { machine, dataset: zfsDataset } = found;
        checkRestoreNames(zfsDataset, choice, opts.to);
        // The clone lands where the namespace may name datasets on that machine, as its Datasets and Vectors do.
        const granted = datasetAccess(machine, namespace, opts.to, storageAreasOf(await source.storageTargets(), machine.metadata.name));
        if (!granted.ok) throw new UserError(`--to: ${granted.message}`, EXIT.invalid);
        let properties: Record<string, string> | undefined;
        if (opts.replica) {
          // The replica's readonly=on, canmount=noauto and mountpoint=none are its own local values, which a clone
          // does not take; set what a running copy needs, and a mountpoint only where the Machine allows one. Its
          // content came from the primary, which bdr does not trust: no set-uid, no programs, no device nodes,
          // unless the user says the content is trusted.
          if (opts.mountpoint !== undefined) {
            const problem = mountpointProblem(opts.mountpoint, machine.spec.mountpointRoot, machine.metadata.name);
            if (problem) throw new UserError(`--mountpoint: ${problem}`, EXIT.invalid);
          }
          properties = { readonly: 'off', canmount: 'on', mountpoint: opts.mountpoint ?? 'none', ...(opts.trusted ? {} : UNTRUSTED_CONTENT) };
        } else if (opts.mountpoint !== undefined || opts.trusted) {
          throw new UserError(`${opts.mountpoint !== undefined ? '--mountpoint' : '--trusted'} goes with --replica (a Dataset's clone inherits its parent's properties)`, EXIT.usage);
        }
        const handle = await source.connect(machine);
        let result: RestoreResult;
        try {
          result = await restore(handle.zfs, { dataset: zfsDataset, choice, target: opts.to, where: `Machine ${machine.metadata.name}`, ...(properties ? { properties, replica: true } : {}) });
        } catch (err) {
          if (err instanceof UserError) throw err;
          if (err instanceof ZfsError && TRANSPORT.has(err.kind)) throw connectionError(machine.metadata.name, err);
          throw new UserError(`restore failed on Machine ${machine.metadata.name}: ${(err as Error).message}`, EXIT.runtime);
        }
        if (opts.output === 'json') {
          process.stdout.write(
            `${JSON.stringify(
              {
                [opts.replica ? 'vector' : 'dataset']: `${namespace}/${name}`,
                ...(opts.replica ? { replica: zfsDataset } : {}),
                machine: machine.metadata.name,
                snapshot: result.snapshot,
                createdAt: isoSeconds(result.createdAt),
                ownedByBdr: result.ownedByBdr,
                ...('at' in choice ? { at: isoSeconds(choice.at), chosenFrom: result.listed } : {}),
                target: result.target,
                mountpoint: result.mountpoint,
              },
              null,
              2,
            )}\n`,
          );
          return;
        }
        const how = 'at' in choice ? `, the newest of ${result.listed} restore point(s) at or before ${isoSeconds(choice.at)}` : '';
        process.stdout.write(`restore point ${result.snapshot} (${isoSeconds(result.createdAt)}, ${opts.replica ? 'on the replica' : result.ownedByBdr ? 'taken by bdr' : 'not taken by bdr'}${how})\n`);
        const mount =
          result.mountpoint === 'none' || result.mountpoint === 'legacy' || result.mountpoint === '-'
            ? `not mounted (mountpoint=${result.mountpoint}): zfs set mountpoint=/PATH ${result.target}`
            : `mountpoint ${result.mountpoint}`;
        process.stdout.write(`cloned ${opts.replica ? `replica ${zfsDataset} ` : ''}into ${result.target} on Machine ${machine.metadata.name}: writable, ${mount}\n`);
      } finally {
        await source.close();
      }
    });
}
