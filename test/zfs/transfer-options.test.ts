import { describe, expect, it } from 'vitest';
import { LocalConnection } from '../../nodes/local.ts';
import { capabilitiesFromUsage } from '../../zfs/capabilities.ts';
import { assertSshOptions, directTransferArgv, ZfsMachine, type DirectRoute } from '../../zfs/index.ts';

// No command runs here: the machines only build argument lists from known capabilities.
const caps = capabilitiesFromUsage({ zfsUsage: '', zpoolUsage: '', version: undefined, receiveNoMountAccepted: true });
const machine = new ZfsMachine(new LocalConnection(), { capabilities: caps });
const route: DirectRoute = { host: '10.0.0.5', port: 22, user: 'root', identityFile: '/var/lib/bdr/v/id', knownHostsFile: '/var/lib/bdr/v/known_hosts' };
const argv = (sshOptions: string[]) => directTransferArgv(machine, { snapshot: 'tank/d@s1' }, { ...route, sshOptions }, 'backup/v/d', { noMount: true }, machine);

describe('DirectRoute.sshOptions', () => {
  it('accepts tuning options with valid values, in ssh_config spelling', () => {
    expect(
      assertSshOptions([
        'Compression=yes', 'ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com', 'MACs=hmac-sha2-256-etm@openssh.com',
        'KexAlgorithms=+curve25519-sha256', 'ServerAliveInterval=30', 'ServerAliveCountMax=4', 'ConnectTimeout=10',
        'ConnectionAttempts=3', 'TCPKeepAlive=no', 'IPQoS=af21,cs1', 'AddressFamily=inet', 'BindAddress=10.0.0.7', 'RekeyLimit=1G', 'LogLevel=ERROR',
      ]),
    ).toEqual([
      'Compression=yes', 'Ciphers=aes128-gcm@openssh.com,chacha20-poly1305@openssh.com', 'MACs=hmac-sha2-256-etm@openssh.com',
      'KexAlgorithms=+curve25519-sha256', 'ServerAliveInterval=30', 'ServerAliveCountMax=4', 'ConnectTimeout=10',
      'ConnectionAttempts=3', 'TCPKeepAlive=no', 'IPQoS=af21,cs1', 'AddressFamily=inet', 'BindAddress=10.0.0.7', 'RekeyLimit=1G', 'LogLevel=ERROR',
    ]);
  });

  it.each([
    'ProxyCommand=nc %h %p', 'proxycommand=sh', 'LocalCommand=id', 'PermitLocalCommand=yes', 'ProxyJump=evil', 'KnownHostsCommand=/bin/sh',
    'Include=/tmp/x', 'Match=all', 'StrictHostKeyChecking=no', 'UserKnownHostsFile=/dev/null', 'IdentityFile=/root/.ssh/id_rsa',
    'GlobalKnownHostsFile=/dev/null', 'ControlPath=/tmp/s', 'ControlMaster=yes', 'RemoteCommand=sh', 'ForwardAgent=yes',
    'LocalForward=1:h:2', 'RemoteForward=1:h:2', 'DynamicForward=1080', 'SendEnv=LD_PRELOAD', 'SetEnv=A=b', 'PKCS11Provider=/tmp/x.so',
    'SecurityKeyProvider=/tmp/x.so', 'BatchMode=no', 'Tunnel=yes', 'Hostname=evil',
  ])('refuses %s with a RangeError naming the option', (option) => {
    const name = option.slice(0, option.indexOf('='));
    expect(() => assertSshOptions([option])).toThrow(RangeError);
    expect(() => assertSshOptions([option])).toThrow(`ssh option "${name}" is not allowed`);
  });

  it.each([
    ['Compression=maybe', 'Compression'], ['ServerAliveInterval=-1', 'ServerAliveInterval'], ['ServerAliveInterval=99999', 'ServerAliveInterval'],
    ['ConnectTimeout=0', 'ConnectTimeout'], ['Ciphers=aes;id', 'Ciphers'], ['Ciphers=', 'Ciphers'], ['IPQoS=af21,cs1,ef', 'IPQoS'],
    ['IPQoS=$(id)', 'IPQoS'], ['BindAddress=host name', 'BindAddress'], ['LogLevel=DEBUG3', 'LogLevel'], ['Compression', 'Compression'],
  ])('refuses %s: invalid value of %s', (option, name) => {
    expect(() => assertSshOptions([option])).toThrow(new RegExp(`^ssh option ${name}: invalid value`));
  });

  it('puts the route options first (ssh keeps the first value) and bdr\'s security options after them', async () => {
    const [, , script = ''] = await argv(['ServerAliveInterval=60', 'Compression=no']);
    expect(script.replace(/'/g, '')).toContain("-o ServerAliveInterval=60 -o Compression=no -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes");
    await expect(argv(['ProxyCommand=sh -c id'])).rejects.toThrow(/ssh option "ProxyCommand" is not allowed/);
  });
});
