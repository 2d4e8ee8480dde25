/**
 * The address a machine connects out from when it reaches another host: what the storage machine's sshd sees
 * as a vector key's client, so the key's authorized_keys line can carry from="<it>" without the user declaring
 * spec.outboundAddresses. Asked of the machine itself: `getent ahosts` resolves the host as the machine
 * would (a hostname may mean another address there than here), and `ip route get` names the source address
 * of the route it would take. Linux only; anything else (or NAT between the two, which this cannot see) is
 * for spec.outboundAddresses to say.
 */
import type { NodeConnection } from './connection.ts';

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/;
const IPV6 = /^[0-9A-Fa-f:]+(?::[0-9.]+)?$/;

export const isAddress = (text: string): boolean => IPV4.test(text) || (text.includes(':') && IPV6.test(text));

/** The first address of `getent ahosts` output (one "ADDRESS TYPE [NAME]" line per answer). */
export function firstResolvedAddress(getent: string): string | undefined {
  const first = getent.split('\n')[0]?.trim().split(/\s+/)[0] ?? '';
  return isAddress(first) ? first : undefined;
}

/** The `src` of `ip -o route get` output ("127.0.0.1 via … dev lo src 127.0.0.1 uid 0 \\ cache"). */
export function routeSource(ipRoute: string): string | undefined {
  const m = /\bsrc\s+(\S+)/.exec(ipRoute);
  return m?.[1] !== undefined && isAddress(m[1]) ? m[1] : undefined;
}

/**
 * The source address `connection`'s machine uses to reach `host`, or why it could not be found. `host` comes
 * from a validated Machine spec (a hostname or an address literal) and is passed as one argument.
 */
export async function sourceAddressFor(connection: NodeConnection, host: string, signal?: AbortSignal): Promise<{ address: string } | { problem: string }> {
  const options = signal ? { signal } : {};
  let target = host;
  if (!isAddress(host)) {
    const resolved = await connection.exec(['getent', 'ahosts', host], options);
    const address = resolved.code === 0 ? firstResolvedAddress(resolved.stdout) : undefined;
    if (!address) return { problem: `${connection.description} cannot resolve ${host} (getent ahosts)` };
    target = address;
  }
  const route = await connection.exec(['ip', '-o', 'route', 'get', target], options);
  const address = route.code === 0 ? routeSource(route.stdout) : undefined;
  if (!address) return { problem: `${connection.description} has no route to ${target} whose source address ip route get names${route.stderr ? `: ${route.stderr.trim().slice(0, 200)}` : ''}` };
  return { address };
}
