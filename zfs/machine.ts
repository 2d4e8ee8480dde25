import { assertName, nameProblem } from '../api/names.ts';
import type { ExecResult, NodeConnection, RunningCommand } from '../nodes/connection.ts';
import { probeCapabilities, type ZfsCapabilities } from './capabilities.ts';
import { asZfsError, ZfsError, zfsCommandError } from './errors.ts';
import { parseResumeTokenContents, type ResumeTokenContents } from './resume-token.ts';
import {
  BDR_USER_PROPERTIES,
  INVENTORY_PROPERTIES,
  parseZfsGet,
  parseZpoolList,
  type Inventory,
} from './inventory.ts';
import { assertHoldTag, assertUserProperty, assertUserPropertyValue, datasetOf } from './validate.ts';

export interface ZfsPrograms {
  zfs: string;
  zpool: string;
}

/** The kinds of a zfs command that ran and failed (the rest are the connection's). */
const ZFS_COMMAND_FAILURES: ReadonlySet<string> = new Set(['notFound', 'busy', 'exists', 'noSpace', 'permissionDenied', 'unsupported', 'conflict', 'invalidName', 'failed']);

export interface CommandOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface SnapshotResult {
  /** True when all snapshots were taken by one ZFS command (same transaction group). */
  atomic: boolean;
  created: string[];
  failed: { name: string; error: ZfsError }[];
}

export type DestroyResult = { snapshot: string; destroyed: true } | { snapshot: string; destroyed: false; error: ZfsError };

export interface SendOptions {
  /** Snapshot to send ("pool/ds@snap"). */
  snapshot: string;
  /** Incremental base: a snapshot of the same dataset (full name or "@short"), or a bookmark "pool/ds#bm". */
  from?: string;
  /** With `from`: -I (all intermediate snapshots) instead of -i (just the difference). */
  intermediates?: boolean;
  /** Send properties (-p). */
  properties?: boolean;
  raw?: boolean;
  compressed?: boolean;
  largeBlocks?: boolean;
  embedded?: boolean;
}

export interface ReceiveOptions {
  /** Roll the target back to its newest snapshot first (-F). */
  force?: boolean;
  /** Do not mount the received file system (-u). */
  noMount?: boolean;
  /** Keep a partial receive resumable (-s); needs the resumeTokens capability. */
  resumable?: boolean;
}

export interface TransferResult {
  bytes: number;
  ms: number;
}

/** Default per-command time limit for metadata commands; streams have none unless asked. */
const DEFAULT_TIMEOUT_MS = 10 * 60_000;
/** Snapshots per `zfs destroy ds@a,b,c`, keeping command lines well below ARG_MAX. */
const DESTROY_BATCH = 64;

/**
 * ZFS on one machine, through a NodeConnection. Every name is validated (api/names.ts) before it is put
 * into an argument array, so no caller input reaches a command line unchecked. Failed commands throw
 * ZfsError with a `kind` parsed from stderr.
 */
export class ZfsMachine {
  private capabilitiesPromise: Promise<ZfsCapabilities> | undefined;
  private readonly programs: ZfsPrograms;

  /**
   * `capabilities` skips the probe: needed for connections that may not run `zfs -?` (a vector key behind
   * the guard), whose machine was probed over the operator's own connection.
   */
  constructor(
    readonly connection: NodeConnection,
    options: Partial<ZfsPrograms> & { capabilities?: ZfsCapabilities } = {},
  ) {
    this.programs = { zfs: options.zfs ?? 'zfs', zpool: options.zpool ?? 'zpool' };
    if (options.capabilities) this.capabilitiesPromise = Promise.resolve(options.capabilities);
  }

  /** Probed once per ZfsMachine and cached; `refresh` probes again (after an upgrade). */
  capabilities(refresh = false): Promise<ZfsCapabilities> {
    if (refresh || !this.capabilitiesPromise) {
      this.capabilitiesPromise = probeCapabilities(this.connection, this.programs).catch((error: unknown) => {
        this.capabilitiesPromise = undefined;
        throw asZfsError(error);
      });
    }
    return this.capabilitiesPromise;
  }

  /**
   * Everything on the machine (or below `roots`) in one `zfs get` call, plus one `zpool list` run on the
   * same connection at the same time unless `pools: false` (a caller that needs no pool figures saves the
   * command; `pools` is then empty). zfs-fuse has no `zfs list -p`; `zfs get -Hp` gives exact numbers on
   * both implementations. `properties` adds native properties to the same listing (`DatasetEntry.properties`).
   */
  async inventory(
    options: { roots?: readonly string[]; userProperties?: readonly string[]; properties?: readonly string[]; pools?: boolean } & CommandOptions = {},
  ): Promise<Inventory> {
    const roots = (options.roots ?? []).map((r) => assertName('dataset', r));
    const userProperties = (options.userProperties ?? BDR_USER_PROPERTIES).map(assertUserProperty);
    const native = (options.properties ?? []).map(assertNativeProperty);
    const caps = await this.capabilities();
    const types = caps.getTypeFilter ? ['-t', caps.bookmarks ? 'filesystem,volume,snapshot,bookmark' : 'filesystem,volume,snapshot'] : [];
    const getArgv = [
      this.programs.zfs, 'get', '-H', '-p', ...types, ...(roots.length > 0 ? ['-r'] : []),
      '-o', 'name,property,value,source',
      [...INVENTORY_PROPERTIES, ...native, ...userProperties].join(','),
      ...roots,
    ];
    const pools = [...new Set(roots.map((r) => r.split('/')[0] ?? r))];
    const zpoolArgv = [
      this.programs.zpool, 'list', '-H', ...(caps.zpoolParsable ? ['-p'] : []),
      '-o', 'name,size,allocated,free,health', ...pools,
    ];
    const takenAt = Date.now();
    const [get, zpool] = await Promise.all([this.run(getArgv, options), options.pools === false ? undefined : this.run(zpoolArgv, options)]);
    return { ...parseZfsGet(get.stdout, userProperties, native), pools: zpool ? parseZpoolList(zpool.stdout, caps.zpoolParsable) : [], takenAt };
  }

  async createDataset(
    name: string,
    options: { parents?: boolean; properties?: Record<string, string> } & CommandOptions = {},
  ): Promise<void> {
    assertName('dataset', name);
    await this.run([this.programs.zfs, 'create', ...(options.parents ? ['-p'] : []), ...propertyArgs(options.properties), name], options);
  }

  /**
   * Destroys a file system (never a pool: the name must have a parent), with `recursive` its descendants and
   * snapshots too (-r; never -R, which would reach clones elsewhere). Returns false when it did not exist.
   */
  async destroyDataset(name: string, options: { recursive?: boolean } & CommandOptions = {}): Promise<boolean> {
    assertName('dataset', name);
    if (!name.includes('/')) throw new ZfsError('invalidName', `refusing to destroy ${name}: it is a pool`);
    try {
      await this.run([this.programs.zfs, 'destroy', ...(options.recursive ? ['-r'] : []), name], options);
      return true;
    } catch (error) {
      if (error instanceof ZfsError && error.kind === 'notFound') return false;
      throw error;
    }
  }

  /**
   * Takes snapshots (a name given twice is taken once). Where ZFS allows several names in one command (OpenZFS)
   * they are taken atomically; zfs-fuse takes one name per command, so there they are taken one after the other
   * and `atomic` is false, as they are on OpenZFS when two name one file system or the atomic command fails
   * (each name then fails or succeeds on its own).
   * With `recursive`, each name snapshots its dataset and all descendants atomically (-r), on both.
   */
  async snapshot(
    names: readonly string[],
    options: { recursive?: boolean; properties?: Record<string, string> } & CommandOptions = {},
  ): Promise<SnapshotResult> {
    for (const n of names) assertName('snapshot', n);
    const unique = [...new Set(names)];
    if (unique.length === 0) return { atomic: true, created: [], failed: [] };
    const base = [this.programs.zfs, 'snapshot', ...(options.recursive ? ['-r'] : []), ...propertyArgs(options.properties)];
    if (unique.length === 1) {
      await this.run([...base, ...unique], options);
      return { atomic: true, created: unique, failed: [] };
    }
    const caps = await this.capabilities();
    // OpenZFS takes the list in one atomic command, all or nothing: it refuses two snapshots of one file system
    // in it ("multiple snapshots of same fs not allowed", 2.2.2), and one bad name fails every other. Then each
    // goes on its own, so one Dataset's problem fails only its own snapshot.
    const fileSystems = new Set(unique.map((n) => n.slice(0, n.indexOf('@'))));
    if (caps.multiSnapshot && fileSystems.size === unique.length && !options.signal?.aborted) {
      try {
        await this.run([...base, ...unique], options);
        return { atomic: true, created: unique, failed: [] };
      } catch (error) {
        if (options.signal?.aborted) throw error;
      }
    }
    const result: SnapshotResult = { atomic: false, created: [], failed: [] };
    for (const name of unique) {
      try {
        await this.run([...base, name], options);
        result.created.push(name);
      } catch (error) {
        result.failed.push({ name, error: asZfsError(error) });
      }
    }
    return result;
  }

  /**
   * Destroys snapshots (never file systems: every name must be a snapshot) and reports each one. Batches per
   * dataset where ZFS supports `ds@a,b,c`; a failed batch is retried one by one so that a held snapshot only
   * fails itself. Never passes -d, -R or -f: a held or cloned snapshot stays.
   */
  async destroySnapshots(names: readonly string[], options: CommandOptions = {}): Promise<DestroyResult[]> {
    for (const n of names) assertName('snapshot', n);
    const caps = await this.capabilities();
    const results = new Map<string, DestroyResult>();
    const one = async (snapshot: string): Promise<void> => {
      try {
        await this.run([this.programs.zfs, 'destroy', snapshot], options);
        results.set(snapshot, { snapshot, destroyed: true });
      } catch (error) {
        results.set(snapshot, { snapshot, destroyed: false, error: asZfsError(error) });
      }
    };
    const byDataset = new Map<string, string[]>();
    for (const n of new Set(names)) {
      const ds = datasetOf(n);
      byDataset.set(ds, [...(byDataset.get(ds) ?? []), n]);
    }
    for (const [dataset, snapshots] of byDataset) {
      if (!caps.batchDestroy || snapshots.length === 1) {
        for (const s of snapshots) await one(s);
        continue;
      }
      for (let i = 0; i < snapshots.length; i += DESTROY_BATCH) {
        const chunk = snapshots.slice(i, i + DESTROY_BATCH);
        const spec = `${dataset}@${chunk.map((s) => s.slice(s.indexOf('@') + 1)).join(',')}`;
        try {
          await this.run([this.programs.zfs, 'destroy', spec], options);
          for (const s of chunk) results.set(s, { snapshot: s, destroyed: true });
        } catch (error) {
          const e = asZfsError(error);
          if (e.details.retriable === false && e.kind !== 'busy') {
            for (const s of chunk) results.set(s, { snapshot: s, destroyed: false, error: e });
          } else {
            for (const s of chunk) await one(s);
          }
        }
      }
    }
    return names.map((n) => results.get(n) ?? { snapshot: n, destroyed: false, error: new ZfsError('failed', `${n}: not attempted`) });
  }

  /** Places a user hold `tag` on each snapshot (one command). A held snapshot cannot be destroyed. */
  async hold(tag: string, snapshots: readonly string[], options: CommandOptions = {}): Promise<void> {
    assertHoldTag(tag);
    for (const s of snapshots) assertName('snapshot', s);
    if (snapshots.length > 0) await this.run([this.programs.zfs, 'hold', tag, ...snapshots], options);
  }

  async release(tag: string, snapshots: readonly string[], options: CommandOptions = {}): Promise<void> {
    assertHoldTag(tag);
    for (const s of snapshots) assertName('snapshot', s);
    if (snapshots.length > 0) await this.run([this.programs.zfs, 'release', tag, ...snapshots], options);
  }

  /**
   * The command of a hold or release of one snapshot, for a caller that runs it inside a larger script (the
   * stream's session: zfs/metered-transfer.ts), with the same checks as `hold` and `release`.
   */
  holdArgv(op: 'hold' | 'release', tag: string, snapshot: string): string[] {
    assertHoldTag(tag);
    assertName('snapshot', snapshot);
    return [this.programs.zfs, op, tag, snapshot];
  }

  /**
   * Moves hold `tag` forward in one command (one round trip): holds `to`, and only once that hold is in place
   * releases `from`, so there is no moment without one. Idempotent: `to` already held by `tag`, or `from`
   * no longer held (or gone), is what was wanted. A hold that fails for any other reason releases nothing and
   * throws its own classified error; a failed release throws the release's.
   */
  async moveHold(tag: string, to: string, from: string, options: CommandOptions = {}): Promise<void> {
    assertHoldTag(tag);
    assertName('snapshot', to);
    assertName('snapshot', from);
    // Names travel as positional parameters, never inside the script text.
    const script =
      'out=$("$1" hold "$2" "$3" 2>&1) || case $out in *"already exists"*) ;; *) printf "%s\\n" "$out" >&2; exit 90 ;; esac; ' +
      'out=$("$1" release "$2" "$4" 2>&1) || case $out in *"no such tag"*|*"does not exist"*) ;; *) printf "%s\\n" "$out" >&2; exit 91 ;; esac';
    const argv = ['sh', '-c', script, 'sh', this.programs.zfs, tag, to, from];
    let result: ExecResult;
    try {
      result = await this.connection.exec(argv, { timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      throw asZfsError(error, argv);
    }
    if (result.code === 0) return;
    const failed = result.code === 90 ? [this.programs.zfs, 'hold', tag, to] : [this.programs.zfs, 'release', tag, from];
    throw zfsCommandError(failed, result, this.connection.description);
  }

  /** Hold tags per snapshot (OpenZFS). zfs-fuse cannot list them: use `userrefs` from the inventory. */
  async holds(snapshots: readonly string[], options: CommandOptions = {}): Promise<Map<string, string[]>> {
    for (const s of snapshots) assertName('snapshot', s);
    const caps = await this.capabilities();
    if (!caps.listHolds) throw new ZfsError('unsupported', `${this.connection.description}: this ZFS cannot list hold tags`, { retriable: false });
    const result = new Map<string, string[]>(snapshots.map((s) => [s, []]));
    if (snapshots.length === 0) return result;
    const r = await this.run([this.programs.zfs, 'holds', '-H', ...snapshots], options);
    for (const line of r.stdout.split('\n')) {
      const [snap, tag] = line.split('\t');
      if (snap && tag) result.get(snap)?.push(tag);
    }
    return result;
  }

  /** Sets user properties (`dev.bdr:owner=…`), one `zfs set` per property for zfs-fuse's sake. */
  async setUserProperties(dataset: string, properties: Record<string, string>, options: CommandOptions = {}): Promise<void> {
    datasetOrSnapshot(dataset);
    for (const [key, value] of Object.entries(properties)) {
      assertUserProperty(key);
      assertUserPropertyValue(value);
      await this.run([this.programs.zfs, 'set', `${key}=${value}`, dataset], options);
    }
  }

  async inheritUserProperty(dataset: string, property: string, options: CommandOptions = {}): Promise<void> {
    datasetOrSnapshot(dataset);
    assertUserProperty(property);
    await this.run([this.programs.zfs, 'inherit', property, dataset], options);
  }

  /** Starts `zfs send`; the stream is the returned command's stdout. */
  async send(options: SendOptions & CommandOptions): Promise<RunningCommand> {
    return this.connection.spawn(await this.sendArgv(options), options);
  }

  async sendArgv(options: SendOptions): Promise<string[]> {
    assertName('snapshot', options.snapshot);
    const caps = await this.capabilities();
    const flags: string[] = [];
    const need = (wanted: boolean | undefined, have: boolean, flag: string, what: string): void => {
      if (!wanted) return;
      if (!have) throw new ZfsError('unsupported', `${this.connection.description}: zfs send ${flag} (${what}) is not supported here`, { retriable: false });
      flags.push(flag);
    };
    need(options.raw, caps.sendRaw, '-w', 'raw');
    need(options.compressed, caps.sendCompressed, '-c', 'compressed');
    need(options.largeBlocks, caps.sendLargeBlocks, '-L', 'large blocks');
    need(options.embedded, caps.sendEmbedded, '-e', 'embedded data');
    if (options.properties) flags.push('-p');
    if (options.from !== undefined) flags.push(options.intermediates ? '-I' : '-i', this.incrementalBase(options.snapshot, options.from, caps));
    return [this.programs.zfs, 'send', ...flags, options.snapshot];
  }

  /** Starts `zfs receive` into `target`; write the stream to the returned command's stdin. */
  async receive(target: string, options: ReceiveOptions & CommandOptions = {}): Promise<RunningCommand> {
    return this.connection.spawn(await this.receiveArgv(target, options), options);
  }

  async receiveArgv(target: string, options: ReceiveOptions = {}): Promise<string[]> {
    datasetOrSnapshot(target);
    const caps = await this.capabilities();
    const flags: string[] = [];
    if (options.force) flags.push('-F');
    // -u only keeps the result unmounted; where ZFS lacks it, receiving mounted is still correct.
    if (options.noMount && caps.receiveNoMount) flags.push('-u');
    if (options.resumable) {
      if (!caps.receiveResumable) throw new ZfsError('unsupported', `${this.connection.description}: resumable receive (-s) is not supported here`, { retriable: false });
      flags.push('-s');
    }
    return [this.programs.zfs, 'receive', ...flags, target];
  }

  /** The target's receive_resume_token after an interrupted resumable receive, if any. */
  async resumeToken(dataset: string, options: CommandOptions = {}): Promise<string | undefined> {
    assertName('dataset', dataset);
    const caps = await this.capabilities();
    if (!caps.resumeTokens) return undefined;
    const r = await this.run([this.programs.zfs, 'get', '-H', '-p', '-o', 'value', 'receive_resume_token', dataset], options);
    const token = r.stdout.trim();
    return token === '' || token === '-' ? undefined : token;
  }

  /**
   * What the token's interrupted stream was bringing (`zfs send -nvt`, a dry run on this machine), or undefined
   * when it cannot be read: the caller then discards the partial receive rather than guess.
   */
  async describeResumeToken(token: string, options: CommandOptions = {}): Promise<ResumeTokenContents | undefined> {
    await this.sendResumeArgv(token);
    try {
      const r = await this.run([this.programs.zfs, 'send', '-nvt', token], options);
      // The contents go to stdout for a dry run (stderr on some versions): read both.
      return parseResumeTokenContents(`${r.stdout}\n${r.stderr}`);
    } catch (error) {
      // zfs refused the token (corrupt, or a version that cannot decode it): discard it. A lost connection is thrown.
      if (error instanceof ZfsError && ZFS_COMMAND_FAILURES.has(error.kind)) return undefined;
      throw error;
    }
  }

  /**
   * The size ZFS estimates for a stream (`zfs send -n -P`, a dry run: nothing is sent), with the same flags as
   * the stream itself, or of the rest of an interrupted one (`resumeToken`). Undefined where ZFS cannot estimate
   * (zfs-fuse) or refuses the dry run; a lost connection is thrown.
   */
  async sendEstimate(what: SendOptions | { resumeToken: string }, options: CommandOptions = {}): Promise<number | undefined> {
    if (!(await this.capabilities()).sendEstimate) return undefined;
    const argv = 'resumeToken' in what ? await this.sendResumeArgv(what.resumeToken) : await this.sendArgv(what);
    try {
      const r = await this.run([argv[0] ?? this.programs.zfs, 'send', '-n', '-P', ...argv.slice(2)], options);
      return parseSendEstimate(`${r.stdout}\n${r.stderr}`);
    } catch (error) {
      if (error instanceof ZfsError && ZFS_COMMAND_FAILURES.has(error.kind)) return undefined;
      throw error;
    }
  }

  /** Resumes an interrupted send from the receiver's token (`zfs send -t`). */
  async sendResume(token: string, options: CommandOptions = {}): Promise<RunningCommand> {
    return this.connection.spawn(await this.sendResumeArgv(token), options);
  }

  /**
   * `zfs send -t <token>`. The token is read from the receiving machine, so it is checked for its shape before it
   * reaches this machine's command line.
   */
  async sendResumeArgv(token: string): Promise<string[]> {
    if (!/^[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+$/i.test(token)) throw new ZfsError('invalidName', 'malformed resume token', { retriable: false });
    const caps = await this.capabilities();
    if (!caps.resumeTokens) throw new ZfsError('unsupported', `${this.connection.description}: resume tokens are not supported here`, { retriable: false });
    return [this.programs.zfs, 'send', '-t', token];
  }

  async clone(snapshot: string, target: string, options: { parents?: boolean; properties?: Record<string, string> } & CommandOptions = {}): Promise<void> {
    assertName('snapshot', snapshot);
    assertName('dataset', target);
    await this.run([this.programs.zfs, 'clone', ...(options.parents ? ['-p'] : []), ...propertyArgs(options.properties), snapshot, target], options);
  }

  /**
   * Rolls a dataset back to `snapshot`. `destroyNewer` (-r) lets ZFS destroy later snapshots; it still
   * refuses held ones. -R (which destroys clones) is deliberately not offered.
   */
  async rollback(snapshot: string, options: { destroyNewer?: boolean } & CommandOptions = {}): Promise<void> {
    assertName('snapshot', snapshot);
    await this.run([this.programs.zfs, 'rollback', ...(options.destroyNewer ? ['-r'] : []), snapshot], options);
  }

  /** Runs a zfs/zpool command; a non-zero exit becomes a ZfsError classified from stderr. */
  async run(argv: readonly string[], options: CommandOptions = {}): Promise<ExecResult> {
    let result: ExecResult;
    try {
      result = await this.connection.exec(argv, { timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, ...(options.signal ? { signal: options.signal } : {}) });
    } catch (error) {
      throw asZfsError(error, argv);
    }
    if (result.code !== 0) throw zfsCommandError(argv, result, this.connection.description);
    return result;
  }

  private incrementalBase(snapshot: string, from: string, caps: ZfsCapabilities): string {
    const dataset = datasetOf(snapshot);
    if (from.startsWith('@')) {
      assertName('snapshotShortName', from.slice(1));
      return `${dataset}${from}`;
    }
    if (from.includes('#')) {
      // A bookmark is only ever the base of its own dataset's snapshots.
      const [ds = '', bm = '', ...rest] = from.split('#');
      if (ds !== dataset || rest.length > 0 || nameProblem('snapshotShortName', bm) !== undefined) {
        throw new ZfsError('invalidName', `invalid incremental base ${JSON.stringify(from)}: must be a bookmark of ${dataset}`, { retriable: false });
      }
      if (!caps.bookmarks) throw new ZfsError('unsupported', `${this.connection.description}: bookmarks are not supported here`, { retriable: false });
      return from;
    }
    assertName('snapshot', from);
    return from;
  }
}

/** A native property name (`readonly`, `canmount`): lower-case letters only, so it can never be an option. */
function assertNativeProperty(name: string): string {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new ZfsError('invalidName', `invalid property name ${JSON.stringify(name)}`, { retriable: false });
  return name;
}

function datasetOrSnapshot(name: string): string {
  return name.includes('@') ? assertName('snapshot', name) : assertName('dataset', name);
}

/** `-o key=value` pairs for create/clone/snapshot; only properties with validated names and plain values. */
function propertyArgs(properties: Record<string, string> | undefined): string[] {
  const args: string[] = [];
  for (const [key, value] of Object.entries(properties ?? {})) {
    if (!/^[a-z][a-z0-9_.:-]*$/.test(key)) throw new ZfsError('invalidName', `invalid property name ${JSON.stringify(key)}`, { retriable: false });
    assertUserPropertyValue(value);
    args.push('-o', `${key}=${value}`);
  }
  return args;
}

/**
 * The total of a `zfs send -n -P` dry run: its last "size<TAB>bytes" line (OpenZFS prints one "full" or
 * "incremental" line per stream of the package, then the total). Undefined when there is none.
 */
export function parseSendEstimate(output: string): number | undefined {
  let size: number | undefined;
  for (const line of output.split('\n')) {
    const m = /^size\t(\d+)$/.exec(line.trim());
    if (m) size = Number(m[1]);
  }
  return size !== undefined && Number.isSafeInteger(size) ? size : undefined;
}
