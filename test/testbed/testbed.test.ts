import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { privateKeyFromSecret } from '../../nodes/secret.ts';
import { SshConnection } from '../../nodes/ssh.ts';
import {
  cleanStaleTestResources,
  ensureZfsFuse,
  run,
  runOk,
  startSshd,
  TEST_PREFIX,
  TESTBED_ROOT,
  TestBed,
  uniqueTestName,
} from './index.ts';

const bed = new TestBed();
afterAll(() => bed.cleanup());

function deadPid(): number {
  const child = spawnSync('sh', ['-c', 'echo $$']);
  return Number(child.stdout.toString().trim());
}

describe('test bed', () => {
  it('cleans pools, directories and sshd daemons of crashed runs, and nothing of live ones', async () => {
    await ensureZfsFuse();
    const live = await bed.pool();
    const stale = `${TEST_PREFIX}${deadPid()}xstale`;
    const dir = join(TESTBED_ROOT, stale);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'pool.img'), '');
    await truncate(join(dir, 'pool.img'), 64 * 1024 * 1024);
    await runOk(['zpool', 'create', '-o', 'cachefile=none', '-m', 'none', stale, join(dir, 'pool.img')]);
    const sshd = await startSshd({ dir });
    const sshdPid = Number((await runOk(['cat', join(dir, 'sshd.pid')])).trim());
    expect(sshdPid).toBeGreaterThan(0);

    await cleanStaleTestResources();

    const pools = (await runOk(['zpool', 'list', '-H', '-o', 'name'])).split('\n');
    expect(pools).not.toContain(stale);
    expect(pools).toContain(live.name);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(live.dir)).toBe(true);
    await expect.poll(() => run(['kill', '-0', String(sshdPid)]).then((r) => r.code), { timeout: 5_000 }).not.toBe(0);
    await sshd.stop();
  });

  it('fails with a clear message when sshd cannot start', async () => {
    await expect(startSshd({ extraConfig: ['NoSuchSshdOption yes'] })).rejects.toThrow(/test bed: .*sshd.*NoSuchSshdOption/s);
  });

  it('names resources uniquely per process and recognisably', () => {
    const names = new Set(Array.from({ length: 50 }, () => uniqueTestName()));
    expect(names.size).toBe(50);
    for (const n of names) expect(n).toMatch(new RegExp(`^${TEST_PREFIX}${process.pid}x[a-z0-9]+$`));
  });

  it('describes a machine as a Machine resource with a Secret that reaches it', async () => {
    const machine = await bed.machine('described', { namespace: 'backup' });
    expect(machine.machine).toEqual({
      apiVersion: 'bdr.dev/v1alpha1',
      kind: 'Machine',
      metadata: { name: 'described', namespace: 'backup' },
      spec: {
        connection: {
          type: 'ssh',
          host: '127.0.0.1',
          port: machine.sshd.port,
          user: 'root',
          hostKey: expect.stringMatching(/^ssh-ed25519 [A-Za-z0-9+/]+=*$/),
          privateKeySecretRef: { name: 'described-ssh', namespace: 'backup', key: 'ssh-privatekey' },
        },
      },
    });
    expect(machine.secret.metadata).toEqual({ name: 'described-ssh', namespace: 'backup' });
    const { connection } = machine.machine.spec;
    const ssh = new SshConnection({
      host: connection.host,
      port: connection.port,
      user: connection.user,
      hostKey: connection.hostKey,
      privateKey: privateKeyFromSecret(machine.secret, connection.privateKeySecretRef.key),
    });
    expect((await ssh.exec(['zfs', 'list', '-H', '-o', 'name', '-d', '0'])).code).toBe(0);
    await ssh.close();
  });

  it('pauses a machine\'s sshd and resumes it on the same port, with the same host key and authorized keys', async () => {
    const machine = await bed.machine('paused');
    const { port } = machine.sshd;
    // The real OpenSSH client, pinned to the host key: it proves port, host key and authorized_keys all survive.
    const known = join(machine.sshd.dir, 'known_hosts');
    await writeFile(known, `[127.0.0.1]:${port} ${machine.sshd.hostKey}\n`);
    const ssh = () =>
      run(['ssh', '-i', machine.operatorKey.privateKeyPath, '-p', String(port), '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${known}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'ConnectTimeout=5', 'root@127.0.0.1', 'echo', 'here']);
    expect((await ssh()).stdout.trim()).toBe('here');
    await machine.sshd.pause();
    const refused = await ssh();
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/Connection refused/);
    await machine.sshd.resume();
    expect(machine.sshd.port).toBe(port);
    expect((await ssh()).stdout.trim()).toBe('here');
  });
});
