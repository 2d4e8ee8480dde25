import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../../nodes/local.ts';
import { firstResolvedAddress, routeSource, sourceAddressFor } from '../../nodes/source-address.ts';

describe('the address a machine connects out from', () => {
  it('reads the src of ip route get and the first answer of getent ahosts', () => {
    expect(routeSource('10.0.0.9 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0 \\    cache ')).toBe('10.0.0.5');
    expect(routeSource('local 127.0.0.1 dev lo src 127.0.0.1 uid 0 \\    cache <local> ')).toBe('127.0.0.1');
    expect(routeSource('fd00::9 from :: via fe80::1 dev eth0 proto ra src fd00::5 metric 1024 pref medium')).toBe('fd00::5');
    expect(routeSource('RTNETLINK answers: Network is unreachable')).toBeUndefined();
    expect(routeSource('10.0.0.9 dev eth0 src $(reboot) uid 0')).toBeUndefined();
    expect(firstResolvedAddress('192.0.2.7      STREAM vault01\n192.0.2.7      DGRAM  \n')).toBe('192.0.2.7');
    expect(firstResolvedAddress('')).toBeUndefined();
  });

  it('asks the machine itself: loopback to 127.0.0.1, and a name it resolves', async () => {
    const conn = new LocalConnection();
    expect(await sourceAddressFor(conn, '127.0.0.1')).toEqual({ address: '127.0.0.1' });
    const byName = await sourceAddressFor(conn, 'localhost');
    expect(['127.0.0.1', '::1']).toContain('address' in byName ? byName.address : byName.problem);
    const nowhere = await sourceAddressFor(conn, 'no-such-host.invalid');
    expect(nowhere).toEqual({ problem: 'local cannot resolve no-such-host.invalid (getent ahosts)' });
  });
});
