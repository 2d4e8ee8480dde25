/**
 * What every script here shares: the VM that boot.sh started (OZVM_DIR, default /var/tmp/openzfs-vm; OZVM_PORT,
 * default 2222), reached as root with the key boot.sh made and the host key it pinned, and the checks' tally.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const vmDir = process.env.OZVM_DIR ?? '/var/tmp/openzfs-vm';
export const vmPort = Number(process.env.OZVM_PORT ?? '2222');

/** The VM's sshd as an `SshConnection` target. */
export const vmTarget = {
  host: '127.0.0.1',
  port: vmPort,
  user: 'root',
  hostKey: readFileSync(join(vmDir, 'rootfs/etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').split(' ').slice(0, 2).join(' '),
  privateKey: readFileSync(join(vmDir, 'id_ed25519')),
};

let failures = 0;

/** Prints one check's outcome with what was seen. */
export function check(what: string, ok: boolean, detail: unknown): void {
  if (!ok) failures++;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`);
}

/** Prints the tally and exits 1 when a check failed. */
export function finish(): never {
  console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}
