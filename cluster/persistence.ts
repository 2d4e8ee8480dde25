import { closeSync, existsSync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeObject } from './types.ts';

/** One acknowledged write: the object as stored after it (put) or its removal (del). */
export type LogRecord =
  | { rv: number; op: 'put'; sk: string; object: KubeObject }
  | { rv: number; op: 'del'; sk: string; ns: string; name: string };

export interface StoredObject {
  sk: string;
  object: KubeObject;
}

export interface LoadedState {
  resourceVersion: number;
  objects: StoredObject[];
}

interface Snapshot {
  format: 1;
  resourceVersion: number;
  objects: StoredObject[];
}

function objectKey(sk: string, ns: string, name: string): string {
  return `${sk}|${ns}|${name}`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Durable state in a directory: `snapshot.json` (replaced only by atomic rename) and `wal.jsonl`, an
 * append-only log written with one `write` + `fdatasync` per record before the write is acknowledged.
 * A crash can only leave a partial last line, which was never acknowledged and is dropped on load.
 * Records at or below the snapshot's resourceVersion are skipped, so a crash between writing a new
 * snapshot and truncating the log replays nothing twice.
 */
export class DiskPersistence {
  private fd: number | undefined;
  private records = 0;
  private readonly snapshotPath: string;
  private readonly logPath: string;

  private readonly lockPath: string;

  constructor(
    readonly dir: string,
    private readonly compactAfter = 50_000,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.snapshotPath = join(dir, 'snapshot.json');
    this.logPath = join(dir, 'wal.jsonl');
    this.lockPath = join(dir, 'lock');
    this.lock();
  }

  /** Two servers appending to one log would interleave records: refuse a directory a live process holds. */
  private lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockPath, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = Number(readFileSync(this.lockPath, 'utf8').trim());
        if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
          throw new Error(`the data directory ${this.dir} is in use by process ${holder}`);
        }
        // The holder is gone (it crashed): take the lock over.
        rmSync(this.lockPath, { force: true });
      }
    }
    throw new Error(`cannot lock the data directory ${this.dir}`);
  }

  load(): LoadedState {
    let resourceVersion = 0;
    const objects = new Map<string, StoredObject>();
    if (existsSync(this.snapshotPath)) {
      const snap = JSON.parse(readFileSync(this.snapshotPath, 'utf8')) as Snapshot;
      resourceVersion = snap.resourceVersion;
      for (const so of snap.objects) {
        objects.set(objectKey(so.sk, so.object.metadata.namespace ?? '', so.object.metadata.name ?? ''), so);
      }
    }
    if (existsSync(this.logPath)) {
      const text = readFileSync(this.logPath, 'utf8');
      const lines = text.split('\n');
      // The last element is '' after a complete final line; anything else is a torn, unacknowledged write.
      lines.pop();
      for (const line of lines) {
        let record: LogRecord;
        try {
          record = JSON.parse(line) as LogRecord;
        } catch {
          break;
        }
        if (record.rv <= resourceVersion) continue;
        resourceVersion = record.rv;
        if (record.op === 'put') {
          const m = record.object.metadata;
          objects.set(objectKey(record.sk, m.namespace ?? '', m.name ?? ''), { sk: record.sk, object: record.object });
        } else {
          objects.delete(objectKey(record.sk, record.ns, record.name));
        }
      }
    }
    const state = { resourceVersion, objects: [...objects.values()] };
    this.compact(state);
    return state;
  }

  /** Writes a fresh snapshot atomically, then empties the log. */
  compact(state: LoadedState): void {
    const tmp = `${this.snapshotPath}.tmp`;
    const snap: Snapshot = { format: 1, resourceVersion: state.resourceVersion, objects: state.objects };
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(snap));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.snapshotPath);
    fsyncDir(this.dir);
    if (this.fd === undefined) this.fd = openSync(this.logPath, 'a', 0o600);
    ftruncateSync(this.fd);
    fsyncSync(this.fd);
    this.records = 0;
  }

  append(record: LogRecord): void {
    if (this.fd === undefined) this.fd = openSync(this.logPath, 'a', 0o600);
    writeSync(this.fd, `${JSON.stringify(record)}\n`);
    fdatasyncSync(this.fd);
    this.records++;
  }

  /** True when the log has grown enough that the caller should compact with its current state. */
  wantsCompaction(): boolean {
    return this.records >= this.compactAfter;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    rmSync(this.lockPath, { force: true });
  }
}
