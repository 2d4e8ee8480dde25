/**
 * Transfer paths side by side, in one process, on the real test bed (zfs-fuse pools, private sshd):
 *
 *   local   raw `zfs send | zfs recv` on one machine: the physical limit, every ratio is relative to it
 *   direct  the primary's own OpenSSH pipes into the secondary (`zfs send | ssh … zfs receive`), through
 *           the secondary's forced-command guard with a vector key: bdr's intended default
 *   relay   ssh2 to both machines, the stream flowing through this Node process (relay())
 *
 * and the per-command latency of `zfs list` on a reused ssh2 connection versus a fresh one per command.
 *
 *   npx tsx bench/zfs-transfer.ts [--mib 210] [--reps 3]
 *
 * Figures only, no assertions. Both "machines" share this host's CPUs and zfs-fuse daemon (see
 * ../shared/reference/perf-limits.md): read the ratios, not the absolute MB/s.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { authorizeKey } from '../nodes/authorized-keys.ts';
import { installGuard, vectorKeyEntry } from '../nodes/guard.ts';
import { LocalConnection } from '../nodes/local.ts';
import { installVectorIdentity } from '../nodes/identity.ts';
import { SshConnection } from '../nodes/ssh.ts';
import { directTransfer, relay, ZfsMachine } from '../zfs/index.ts';
import { generateKeyPair, runOk, TestBed } from '../test/testbed/index.ts';
import { median, numberArg } from './bed.ts';

const MIB = numberArg('mib', 210);
const REPS = numberArg('reps', 3);

async function main(): Promise<void> {
  const bed = new TestBed();
  try {
    const poolMb = Math.ceil(MIB * 1.3) + 128;
    const [source, target, primary, secondary] = await Promise.all([
      bed.pool({ mounted: true, sizeMb: poolMb }),
      bed.pool({ sizeMb: poolMb }),
      bed.machine('bench-primary'),
      bed.machine('bench-secondary'),
    ]);
    const local = new ZfsMachine(new LocalConnection());
    const a = new ZfsMachine(primary.connect());
    const b = new ZfsMachine(secondary.connect());
    const dataset = `${source.name}/data`;
    await local.createDataset(dataset);
    // Incompressible data, written in 8 MiB pieces so memory stays flat.
    const file = await open(join(source.mountpoint ?? '', 'data', 'random'), 'w');
    for (let written = 0; written < MIB; written += 8) await file.write(randomBytes(Math.min(8, MIB - written) * 1024 * 1024));
    await file.close();
    await local.snapshot([`${dataset}@s1`]);
    const streamBytes = Number(
      (await runOk(['sh', '-c', 'zfs send "$1" | wc -c', 'sh', `${dataset}@s1`], { timeoutMs: 600_000 })).trim(),
    );

    // The direct path: a vector key on the secondary, forced through the guard, used by the primary's ssh.
    const prefix = `${target.name}/vec`;
    await b.createDataset(prefix);
    const vectorKey = await generateKeyPair(primary.sshd.dir, 'vector_ed25519');
    const guardPath = await installGuard(secondary.connect(), { path: join(secondary.sshd.dir, 'zfs-guard') });
    await authorizeKey(
      secondary.connect(),
      // The key receives into one replica only: each method's is destroyed after its run, so the name repeats.
      vectorKeyEntry({ publicKey: vectorKey.publicKeyNoComment, owner: 'bdr:vector=bench/vec', prefix, leaf: 'direct', guardPath }),
      secondary.sshd.authorizedKeysPath,
    );
    const identity = await installVectorIdentity(primary.connect(), {
      dir: join(primary.sshd.dir, 'vector'),
      privateKey: vectorKey.privateKey,
      host: secondary.sshd.host,
      port: secondary.sshd.port,
      hostKey: secondary.sshd.hostKey,
    });
    const route = { host: secondary.sshd.host, port: secondary.sshd.port, user: 'root', ...identity };

    const methods: Record<string, (into: string) => Promise<void>> = {
      local: async (into) => {
        await runOk(['sh', '-c', 'zfs send "$1" | zfs receive -u "$2"', 'sh', `${dataset}@s1`, into], { timeoutMs: 600_000 });
      },
      direct: async (into) => {
        await directTransfer(a, { snapshot: `${dataset}@s1` }, route, into, { noMount: true }, b);
      },
      relay: async (into) => {
        await relay(a, { snapshot: `${dataset}@s1` }, b, into, { noMount: true });
      },
    };

    const seconds: Record<string, number[]> = { local: [], direct: [], relay: [] };
    const ratios: Record<string, number[]> = { direct: [], relay: [] };
    for (let rep = 0; rep < REPS; rep++) {
      // Rotate the order so that no method always runs first (cold caches) or last.
      const names = Object.keys(methods);
      const order = names.map((_, i) => names[(i + rep) % names.length] ?? 'local');
      const thisRep: Record<string, number> = {};
      for (const name of order) {
        const into = `${prefix}/${name}`;
        const started = performance.now();
        await methods[name]?.(into);
        const s = (performance.now() - started) / 1000;
        thisRep[name] = s;
        seconds[name]?.push(s);
        await runOk(['zfs', 'destroy', '-r', into], { timeoutMs: 300_000 });
      }
      for (const name of ['direct', 'relay']) ratios[name]?.push((thisRep.local ?? NaN) / (thisRep[name] ?? NaN));
    }

    // Without ssh2's native crypto binding the relay runs at about half speed (perf-limits.md).
    const binding = (createRequire(import.meta.url)('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean }).bindingAvailable;
    console.log(`full stream ${(streamBytes / 1e6).toFixed(0)} MB (${MIB} MiB urandom), ${REPS} reps, ssh2 native binding: ${binding}`);
    console.log('method  median s  MB/s   ratio to local pipe (paired per rep)');
    for (const name of ['local', 'direct', 'relay']) {
      const s = median(seconds[name] ?? []);
      const ratio = name === 'local' ? 1 : median(ratios[name] ?? []);
      console.log(`${name.padEnd(7)} ${s.toFixed(2).padStart(8)}  ${(streamBytes / 1e6 / s).toFixed(0).padStart(5)}  ${ratio.toFixed(2)}`);
    }

    // Per-command latency: one reused ssh2 connection versus a new connection for every command.
    const argv = ['zfs', 'list', '-H', '-o', 'name', source.name];
    const time = async (label: string, once: () => Promise<unknown>, n = 20): Promise<void> => {
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        const started = performance.now();
        await once();
        ms.push(performance.now() - started);
      }
      console.log(`${label.padEnd(34)} median ${median(ms).toFixed(1)} ms  (min ${Math.min(...ms).toFixed(1)}, max ${Math.max(...ms).toFixed(1)})`);
    };
    console.log('\nper-command latency of `zfs list -H -o name <pool>`, 20 sequential calls');
    const localConnection = new LocalConnection();
    await time('local (execa, no ssh)', () => localConnection.exec(argv));
    const reused = primary.connect();
    await reused.exec(['true']);
    await time('ssh2, one reused connection', () => reused.exec(argv));
    await time('ssh2, fresh connection per command', async () => {
      const fresh = new SshConnection(primary.target);
      await fresh.exec(argv);
      await fresh.close();
    });
  } finally {
    await bed.cleanup();
  }
}

await main();
