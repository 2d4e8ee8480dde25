/**
 * `bdr restore`: clones one restore point of a Dataset into a new writable dataset (`zfs clone -p`), ready to
 * mount or boot. A clone costs the same whichever restore point it starts from, so the time does not grow with
 * the number of restore points: with `--snapshot` the one snapshot is checked (one `zfs get`), with `--at` the
 * dataset's own snapshots are listed once (`zfs get -d 1`, never other datasets' snapshots) and the newest at
 * or before the time is chosen. Nothing but the new clone (and missing parents of it) is ever written.
 */
import { Command, Option } from 'commander';
import { nameProblem } from '../../api/names.ts';
import type { Dataset } from '../../api/types.ts';
import { datasetSnapshots, OWNER_PROPERTY, poolOf } from '../../controllers/dataset-snapshots.ts';
import type { DatasetSnapshot } from '../../planning/dataset-plan.ts';
import { parseZfsGet } from '../../zfs/inventory.ts';
import { ZfsError, type ZfsErrorKind } from '../../zfs/errors.ts';
import type { ZfsMachine } from '../../zfs/machine.ts';
import { EXIT, UserError } from '../errors.ts';
import { connectionError, DEFAULT_NAMESPACE, notDeclared, openObjectSource } from '../object-source.ts';
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
  return datasetSnapshots({ ...parsed, pools: [], takenAt: Date.now() }, req.dataset);
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
  const found = datasetSnapshots({ ...parsed, pools: [], takenAt: Date.now() }, req.dataset).find((s) => s.name === snapshot);
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
    await zfs.clone(chosen.point.name, req.target, { parents: true });
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

interface RestoreOptions {
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
  throw new UserError(`${JSON.stringify(ref)} is not a Dataset reference: give NAMESPACE/NAME (the Kubernetes object, not the ZFS name)`, EXIT.usage);
}

export function restoreCommand(): Command {
  return new Command('restore')
    .description('clone a restore point of a Dataset into a new writable dataset, ready to mount or boot')
    .argument('<dataset>', 'the Dataset object, NAMESPACE/NAME (NAME alone means namespace "default")')
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

Exit codes: 0 cloned · 1 refused (invalid name, target exists or is in another pool, no such restore
point) · 2 usage error · 3 the machine or the cluster could not be reached

Examples:
  bdr restore prod/web01 --at 2026-11-26T09:30:00Z --to tank/restore/web01 --repo ./gitops
  bdr restore prod/web01 --at -1d --to tank/restore/web01-yesterday
  bdr restore prod/web01 --snapshot bdr-20261126T090000Z --to tank/restore/web01 -o json`,
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
        const ds: Dataset | undefined = await source.dataset(namespace, name);
        if (!ds) {
          showProblems();
          throw new UserError(notDeclared(source, `Dataset ${namespace}/${name}`), EXIT.invalid);
        }
        // Pool and names first: refusals need no machine.
        checkRestoreNames(ds.spec.name, choice, opts.to);
        const machine = await source.machine(ds.spec.machineRef.name);
        if (!machine) {
          showProblems();
          throw new UserError(notDeclared(source, `Machine ${ds.spec.machineRef.name}`), EXIT.invalid);
        }
        const handle = await source.connect(machine);
        let result: RestoreResult;
        try {
          result = await restore(handle.zfs, { dataset: ds.spec.name, choice, target: opts.to, where: `Machine ${machine.metadata.name}` });
        } catch (err) {
          if (err instanceof UserError) throw err;
          if (err instanceof ZfsError && TRANSPORT.has(err.kind)) throw connectionError(machine.metadata.name, err);
          throw new UserError(`restore failed on Machine ${machine.metadata.name}: ${(err as Error).message}`, EXIT.runtime);
        }
        if (opts.output === 'json') {
          process.stdout.write(
            `${JSON.stringify(
              {
                dataset: `${namespace}/${name}`,
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
        process.stdout.write(`restore point ${result.snapshot} (${isoSeconds(result.createdAt)}, ${result.ownedByBdr ? 'taken by bdr' : 'not taken by bdr'}${how})\n`);
        const mount =
          result.mountpoint === 'none' || result.mountpoint === 'legacy' || result.mountpoint === '-'
            ? `not mounted (mountpoint=${result.mountpoint}): zfs set mountpoint=/PATH ${result.target}`
            : `mountpoint ${result.mountpoint}`;
        process.stdout.write(`cloned into ${result.target} on Machine ${machine.metadata.name}: writable, ${mount}\n`);
      } finally {
        await source.close();
      }
    });
}
