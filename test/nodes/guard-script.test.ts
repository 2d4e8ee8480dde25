import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderEntry } from '../../nodes/authorized-keys.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { guardOptions, guardScript, vectorHoldTag, vectorKeyEntry, type GuardScriptOptions } from '../../nodes/guard.ts';
import { probeCapabilities } from '../../zfs/capabilities.ts';
import { parsePropertyTable } from '../../zfs/replica-policy.ts';
import { run, runOk, TestBed, type TestPool } from '../testbed/index.ts';

/**
 * The guard script on its own: shellcheck finds nothing in either variant, and run by dash (the strictest
 * common /bin/sh) against a real zfs-fuse pool it executes what a vector needs and refuses the rest
 * before any zfs command runs. The "options" variant (OpenZFS: receive -o, get -t, overlay, SELinux contexts,
 * keylocation) cannot run on zfs-fuse: it is generated and checked by shellcheck and dash, and run here only with
 * this machine's property list, where zfs-fuse refuses its receive options.
 */
const bed = new TestBed();
let pool: TestPool;
let prefix: string;
let dir: string;
const tag = 'bdr:vector:ns:vec';
const leaf = 'rep';
/** What OpenZFS 2.2's `zfs get` table lists of the properties the guard may force (written out from its source). */
const OPENZFS_PROPERTIES = [
  'canmount', 'mountpoint', 'sharenfs', 'sharesmb', 'readonly', 'setuid', 'exec', 'devices', 'reservation', 'refreservation',
  'zoned', 'overlay', 'context', 'fscontext', 'defcontext', 'rootcontext', 'keylocation', 'mlslabel', 'volmode',
];
let variants: Record<'set' | 'options' | 'openzfs', GuardScriptOptions>;

beforeAll(async () => {
  pool = await bed.pool();
  dir = join(pool.dir, 'guard');
  await mkdir(dir, { recursive: true });
  const here = guardOptions(await probeCapabilities(new LocalConnection()));
  variants = {
    set: here,
    options: { ...here, receiveProperties: true },
    openzfs: { receiveProperties: true, getTypeFilter: true, datasetProperties: OPENZFS_PROPERTIES },
  };
  for (const [name, options] of Object.entries(variants)) {
    await writeFile(join(dir, `zfs-guard-${name}`), guardScript(options));
    await chmod(join(dir, `zfs-guard-${name}`), 0o755);
  }
  prefix = `${pool.name}/vec`;
  await runOk(['zfs', 'create', '-o', 'canmount=off', prefix]);
  await runOk(['zfs', 'create', `${pool.name}/other`]);
  await runOk(['zfs', 'create', `${pool.name}/src`]);
  await runOk(['zfs', 'snapshot', `${pool.name}/src@s1`]);
  // The stream's properties are what a compromised primary chooses.
  for (const p of ['canmount=on', 'sharesmb=on', 'setuid=on', 'exec=on', 'devices=on', 'readonly=off']) await runOk(['zfs', 'set', p, `${pool.name}/src`]);
  await runOk(['zfs', 'snapshot', `${pool.name}/src@s2`]);
}, 120_000);
afterAll(() => bed.cleanup());

/** The guard run by dash as sshd would run it, with `command` as the client's request. */
function guard(command: string, options: { variant?: 'set' | 'options'; stdinFrom?: string; args?: string[] } = {}) {
  const script = join(dir, `zfs-guard-${options.variant ?? 'set'}`);
  const args = options.args ?? [prefix, tag, leaf];
  const body = options.stdinFrom
    ? 'f=$1 c=$2; shift 2; zfs send -p "$f" | SSH_ORIGINAL_COMMAND="$c" dash "$@"'
    : 'f=$1 c=$2; shift 2; SSH_ORIGINAL_COMMAND="$c" dash "$@" </dev/null';
  return run(['sh', '-c', body, 'sh', options.stdinFrom ?? '', command, script, ...args], { timeoutMs: 120_000 });
}

describe('guard script', () => {
  it('passes shellcheck (Debian package) and parses under dash in every variant', async () => {
    for (const name of ['set', 'options', 'openzfs']) {
      const file = join(dir, `zfs-guard-${name}`);
      const r = await run(['shellcheck', '--shell=sh', '--severity=style', file]);
      expect({ name, stdout: r.stdout, code: r.code }).toEqual({ name, stdout: '', code: 0 });
      expect(await run(['dash', '-n', file])).toEqual({ code: 0, stdout: '', stderr: '' });
    }
  });

  it('is generated with exactly the protective properties the machine has', async () => {
    // The probe reads `zfs get`'s property table: zfs-fuse lists zoned and mlslabel, not overlay, contexts or keylocation.
    expect(variants.set.datasetProperties).toEqual(expect.arrayContaining(['canmount', 'reservation', 'refreservation', 'zoned', 'mlslabel', 'origin']));
    for (const absent of ['overlay', 'context', 'fscontext', 'defcontext', 'rootcontext', 'keylocation', 'volmode', 'userquota']) {
      expect(variants.set.datasetProperties, absent).not.toContain(absent);
    }
    // OpenZFS prints its rows as "\t%-22s " then YES/NO twice (cmd/zfs/zfs_main.c); the @-rows are not properties.
    expect(parsePropertyTable([
      '\tPROPERTY       EDIT  INHERIT   VALUES',
      '\tcanmount               YES       NO   on | off | noauto',
      '\tkeylocation            YES       NO   prompt | <file URI> | <https URL> | <http URL>',
      '\tavailable               NO       NO   <size>',
      '\tuserquota@...   YES       NO   <size> | none',
      'Sizes are specified in bytes with standard units such as K, M, G, etc.',
    ].join('\n'))).toEqual(['canmount', 'keylocation', 'available']);
    // zfs-fuse: zoned, but no overlay, SELinux contexts, keylocation; mlslabel is listed but never forced.
    const here = guardScript(variants.set);
    expect(here).toContain(
      `"$ZFS" get -H -r -o name,property,value,source origin,canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,zoned,dev.bdr:received "$PREFIX" </dev/null`,
    );
    expect(here).not.toMatch(/overlay|context|keylocation|mlslabel/);
    expect(here).toContain("OVERRIDE='set'");
    const openzfs = guardScript(variants.openzfs);
    expect(openzfs).toContain(
      `"$ZFS" get -H -r -t filesystem,volume -o name,property,value,source origin,canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,zoned,overlay,context,fscontext,defcontext,rootcontext,keylocation,dev.bdr:received "$PREFIX" </dev/null`,
    );
    expect(openzfs).toContain('    keylocation) case $value in none|prompt|-) ;; *) fix=prompt ;; esac ;;');
    expect(openzfs).toContain('    reservation) local_is none 0 || fix=none ;;');
    expect(openzfs).toContain('    canmount) local_is noauto off || fix=noauto ;;');
    expect(openzfs).toContain('    rootcontext) local_is none || fix=none ;;');
    expect(openzfs).not.toContain('mlslabel');
    expect(openzfs).toContain(
      '( trap - HUP INT TERM PIPE; exec "$ZFS" "$@" -o canmount=noauto -o mountpoint=none -o sharenfs=off -o sharesmb=off -o readonly=on -o setuid=off -o exec=off -o devices=off -o volmode=none "$target" )',
    );
    // Without a probed property table only what every ZFS has is forced.
    expect(guardScript()).toContain('origin,canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,dev.bdr:received "$PREFIX"');
  });

  it('refuses, under dash, every request outside what a vector needs, before running zfs', async () => {
    const refused: [string, RegExp][] = [
      ['', /no command given/],
      ['sh', /only zfs receive/],
      ['sh -c id', /only zfs commands/],
      ['zfs', /only zfs receive/],
      ['zpool list', /only zfs commands/],
      ['zfs destroy -r ' + prefix, /zfs destroy is not allowed/],
      ['zfs rollback -r ' + prefix + '/x@s1', /zfs rollback is not allowed/],
      ['zfs set mountpoint=/root/.ssh ' + prefix + '/x', /zfs set is not allowed/],
      ['zfs inherit -S mountpoint ' + prefix + '/x', /zfs inherit is not allowed/],
      ['zfs mount ' + prefix + '/x', /zfs mount is not allowed/],
      ['zfs receive -u -F ' + prefix + '/x', /zfs receive -F is not allowed/],
      ['zfs recv -F -u ' + prefix + '/x', /zfs recv -F is not allowed/],
      ['zfs receive -uF ' + prefix + '/x', /option -uF is not allowed/],
      ['zfs receive ' + prefix + '/rep', /must use -u/],
      ['zfs receive -u -o mountpoint=/root/.ssh ' + prefix + '/x', /option -o is not allowed/],
      ['zfs receive -u -x readonly ' + prefix + '/x', /option -x is not allowed/],
      ['zfs receive -u -d ' + prefix, /option -d is not allowed/],
      ['zfs receive -u -e ' + prefix, /option -e is not allowed/],
      ['zfs receive -u -- ' + prefix + '/x', /option -- is not allowed/],
      ['zfs receive -u ' + prefix, /itself is not allowed/],
      ['zfs receive -u ' + prefix + '@s1', /itself is not allowed/],
      ['zfs receive -u ' + pool.name + '/other/x', /outside/],
      ['zfs receive -u ' + prefix + 'x/y', /outside/],
      ['zfs receive -u ' + prefix + '/../other/x', /outside/],
      ['zfs receive -u ' + prefix + '/-F', /outside/],
      ['zfs receive -u ' + prefix + '/a ' + prefix + '/b', /exactly one target/],
      ['zfs receive -A ' + prefix + '/rep@s1', /-A takes only a dataset/],
      ['zfs receive -u ' + prefix + '/x', /receive target .*\/vec\/x is not this key's replica .*\/vec\/rep\n/],
      ['zfs receive -u ' + prefix + '/rep/child', /is not this key's replica/],
      ['zfs receive -u ' + prefix + '/repx', /is not this key's replica/],
      ['zfs receive -u ' + prefix + '/x@s1', /is not this key's replica/],
      ['zfs receive -A ' + prefix + '/x', /is not this key's replica/],
      ['zfs receive -u ' + prefix + '/x;id', /characters outside/],
      ['zfs receive -u ' + prefix + '/$(id)', /characters outside/],
      ["zfs receive -u '" + prefix + "/x'", /characters outside/],
      ['zfs receive -u ' + prefix + '/x\tid', /characters outside/],
      ['zfs list -H -o name', /must name datasets/],
      ['zfs list -H -o name ' + pool.name, /outside/],
      ['zfs list -r ' + prefix + ' ' + pool.name + '/other', /outside/],
      ['zfs list -o name,mountpoint -r -d', /lacks its argument/],
      ['zfs list -d x ' + prefix, /invalid depth/],
      ['zfs list -Hr ' + prefix, /option -Hr is not allowed/],
      ['zfs list -o ' + prefix + ' ' + pool.name, /invalid list argument/],
      ['zfs get all ' + pool.name + '/other', /outside/],
      ['zfs get -o name all', /must name datasets/],
      ['zfs get -o name ' + pool.name + '/other', /invalid property list/],
      ['zfs get mountpoint=/x ' + prefix, /invalid property list/],
      ['zfs hold other-tag ' + prefix + '/x@s1', /tag other-tag is not allowed/],
      ['zfs release other-tag ' + prefix + '/x@s1', /tag other-tag is not allowed/],
      ['zfs release -r ' + tag + ' ' + prefix + '/x@s1', /tag -r is not allowed/],
      ['zfs hold ' + tag + ' ' + pool.name + '/other@s1', /outside/],
      ['zfs hold ' + tag + ' ' + prefix + '/x', /not a snapshot/],
      ['zfs holds -r ' + pool.name + '/src@s1', /outside/],
      ['zfs receive -u ' + prefix + '/x +hold', /\+hold needs a snapshot/],
      ['zfs receive -u ' + prefix + '/x +hold ' + pool.name + '/other@s1', /\+hold .* is outside/],
      ['zfs receive -u ' + prefix + '/x +release ' + prefix + '/x', /not a snapshot/],
      ['zfs receive -u ' + prefix + '/x +release ' + prefix + '/../other/x@s1', /outside/],
      ['zfs receive -u ' + prefix + '/x +hold +release ' + prefix + '/x@s1', /\+hold \+release: not a snapshot/],
      ['zfs receive -u ' + prefix + '/x +destroy ' + prefix + '/x@s1', /exactly one target/],
      ['zfs receive -u +destroy', /outside/],
      ['zfs receive -A ' + prefix + '/rep +release ' + prefix + '/rep@s1', /-A takes only a dataset/],
      ['zfs hold +hold ' + prefix + '/x@s1', /tag \+hold is not allowed/],
      ['zfs receive -u -F ' + prefix + '/x +hold ' + prefix + '/x@s1', /-F is not allowed/],
      ['zfs ' + 'list '.repeat(13200) + prefix, /longer than 65536/],
    ];
    for (const [command, message] of refused) {
      const r = await guard(command);
      expect({ command, code: r.code, stdout: r.stdout }).toEqual({ command, code: 1, stdout: '' });
      expect(r.stderr, command).toMatch(new RegExp(`^bdr-guard: refused: .*${message.source}`));
    }
    // Without a tag argument the key may not hold, release or receive at all (the receive marks with the tag).
    const untagged = await guard(`zfs hold x ${prefix}/x@s1`, { args: [prefix] });
    expect(untagged.stderr).toMatch(/this key has no hold tag/);
    const untaggedMove = await guard(`zfs receive -u ${prefix}/x +release ${prefix}/x@s1`, { args: [prefix] });
    expect(untaggedMove.stderr).toMatch(/\+release is not allowed: this key has no hold tag/);
    expect((await guard(`zfs receive -u ${prefix}/rep`, { args: [prefix] })).stderr).toBe('bdr-guard: refused: zfs receive is not allowed: this key has no hold tag\n');
    // Without a leaf (an entry written before leaves existed) nothing can be received.
    expect((await guard(`zfs receive -u ${prefix}/rep`, { args: [prefix, tag] })).stderr).toBe('bdr-guard: refused: zfs receive is not allowed: this key has no replica leaf\n');
    expect((await guard(`zfs receive -A ${prefix}/rep`, { args: [prefix, tag] })).stderr).toBe('bdr-guard: refused: zfs receive is not allowed: this key has no replica leaf\n');
    expect(await guard(`zfs list -H -o name ${prefix}`, { args: [prefix, tag] })).toMatchObject({ code: 0, stdout: `${prefix}\n` });
    expect((await guard('zfs list ' + prefix, { args: ['-rf'] })).stderr).toMatch(/without a valid dataset prefix/);
    expect((await guard('zfs list ' + prefix, { args: [prefix, '-x'] })).stderr).toMatch(/invalid hold tag/);
    for (const bad of ['a/b', '..', '-x', '.x', 'a@b', 'a b']) {
      expect((await guard('zfs list ' + prefix, { args: [prefix, tag, bad] })).stderr, bad).toBe('bdr-guard: refused: the guard was installed with an invalid replica leaf\n');
    }
    // Nothing of the above reached zfs.
    expect(await runOk(['zfs', 'list', '-H', '-r', '-t', 'all', '-o', 'name', prefix])).toBe(`${prefix}\n`);
  });

  it('runs under dash what a vector needs, exactly as asked', async () => {
    expect(await guard(`zfs list -H -o name ${prefix}`)).toMatchObject({ code: 0, stdout: `${prefix}\n` });
    // The login environment's PATH and the client's locale do not matter: the guard sets its own.
    const env = await run(
      ['sh', '-c', 'PATH=/nonexistent LANG=de_DE.UTF-8 LC_ALL=de_DE.UTF-8 SSH_ORIGINAL_COMMAND="$1" /usr/bin/dash "$2" "$3" "$4" </dev/null', 'sh', `zfs list -H -o name ${prefix}`, join(dir, 'zfs-guard-set'), prefix, tag],
    );
    expect(env).toMatchObject({ code: 0, stdout: `${prefix}\n` });
    const accented = await run(
      ['sh', '-c', 'LANG=de_DE.UTF-8 LC_ALL=de_DE.UTF-8 SSH_ORIGINAL_COMMAND="$1" /usr/bin/dash "$2" "$3" "$4" </dev/null', 'sh', `zfs list ${prefix}/\u00e9`, join(dir, 'zfs-guard-set'), prefix, tag],
    );
    expect(accented).toMatchObject({ code: 1, stdout: '' });
    expect(accented.stderr).toMatch(/characters outside/);
    // Repeated spaces do not make empty words.
    expect(await guard(`zfs  get   -H -o value  canmount ${prefix} `)).toMatchObject({ code: 0, stdout: 'off\n' });

    const received = await guard(`zfs receive -u ${prefix}/rep`, { stdinFrom: `${pool.name}/src@s1` });
    expect(received).toMatchObject({ code: 0, stderr: '' });
    const incremental = await run(
      ['sh', '-c', 'zfs send -p -i @s1 "$1" | SSH_ORIGINAL_COMMAND="$2" dash "$3" "$4" "$5" "$6"', 'sh', `${pool.name}/src@s2`, `zfs recv -u ${prefix}/rep`, join(dir, 'zfs-guard-set'), prefix, tag, leaf],
      { timeoutMs: 120_000 },
    );
    expect(incremental).toMatchObject({ code: 0, stderr: '' });
    // The stream said canmount=on, sharesmb=on, setuid=on …; the guard's local values win, and it marked the replica.
    const props = await runOk(['zfs', 'get', '-H', '-o', 'property,value,source',
      'canmount,mountpoint,sharenfs,sharesmb,readonly,setuid,exec,devices,reservation,refreservation,zoned,dev.bdr:received', `${prefix}/rep`]);
    expect(props).toBe([
      'canmount\tnoauto\tlocal', 'mountpoint\tnone\tlocal', 'sharenfs\toff\tlocal', 'sharesmb\toff\tlocal', 'readonly\ton\tlocal',
      'setuid\toff\tlocal', 'exec\toff\tlocal', 'devices\toff\tlocal', 'reservation\tnone\tlocal', 'refreservation\tnone\tlocal',
      'zoned\toff\tlocal', `dev.bdr:received\t${tag}\tlocal`, '',
    ].join('\n'));

    expect(await guard(`zfs hold ${tag} ${prefix}/rep@s1 ${prefix}/rep@s2`)).toMatchObject({ code: 0 });
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', `${prefix}/rep@s2`])).trim()).toBe('1');
    expect(await guard(`zfs release ${tag} ${prefix}/rep@s1 ${prefix}/rep@s2`)).toMatchObject({ code: 0 });
    expect((await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', `${prefix}/rep@s2`])).trim()).toBe('0');
  });

  it("moves its own tag's hold after a receive (+hold, +release, in order), only once the receive succeeded", async () => {
    const userrefs = async (snapshot: string) => (await runOk(['zfs', 'get', '-H', '-o', 'value', 'userrefs', snapshot])).trim();
    const into = `${prefix}/mv`;
    const args = [prefix, tag, 'mv'];
    const full = await guard(`zfs receive -u ${into} +hold ${into}@s1`, { stdinFrom: `${pool.name}/src@s1`, args });
    expect(full).toMatchObject({ code: 0, stderr: '' });
    expect(await userrefs(`${into}@s1`)).toBe('1');
    const incremental = (command: string, from: string, to: string) =>
      run(['sh', '-c', 'zfs send -i "$1" "$2" | SSH_ORIGINAL_COMMAND="$3" dash "$4" "$5" "$6" "$7"', 'sh', from, to, command, join(dir, 'zfs-guard-set'), ...args], { timeoutMs: 120_000 });
    expect(await incremental(`zfs receive -u ${into} +hold ${into}@s2 +release ${into}@s1`, '@s1', `${pool.name}/src@s2`)).toMatchObject({ code: 0, stderr: '' });
    expect([await userrefs(`${into}@s1`), await userrefs(`${into}@s2`)]).toEqual(['0', '1']);
    // The tag is the key's own, never one the client names: the hold is released by that tag alone.
    expect(await guard(`zfs release ${tag} ${into}@s2`)).toMatchObject({ code: 0 });
    expect(await userrefs(`${into}@s2`)).toBe('0');
    expect(await guard(`zfs hold ${tag} ${into}@s2`)).toMatchObject({ code: 0 });
    // A receive that fails (no stream, only garbage) moves nothing.
    const again = await run(['sh', '-c', 'printf garbage | SSH_ORIGINAL_COMMAND="$1" dash "$2" "$3" "$4" "$5"', 'sh', `zfs receive -u ${into} +release ${into}@s2`, join(dir, 'zfs-guard-set'), ...args]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).not.toMatch(/bdr-guard/);
    expect(await userrefs(`${into}@s2`)).toBe('1');
    // A hold already there and a release of a hold already gone are what was asked for; the received tree is inert.
    await runOk(['zfs', 'snapshot', `${pool.name}/src@s3`]);
    expect(await incremental(`zfs receive -u ${into} +hold ${into}@s2 +release ${into}@s1 +hold ${into}@s3 +release ${into}@s2`, '@s2', `${pool.name}/src@s3`)).toMatchObject({ code: 0, stderr: '' });
    expect([await userrefs(`${into}@s1`), await userrefs(`${into}@s2`), await userrefs(`${into}@s3`)]).toEqual(['0', '0', '1']);
    expect(await runOk(['zfs', 'get', '-H', '-o', 'value,source', 'readonly', into])).toBe('on\tlocal\n');
    // A move that fails after the receive fails the request, saying the stream arrived.
    await runOk(['zfs', 'snapshot', `${pool.name}/src@s4`]);
    const missing = await incremental(`zfs receive -u ${into} +hold ${into}@nosuch`, '@s3', `${pool.name}/src@s4`);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(new RegExp(`^bdr-guard: received into ${into}, but zfs hold ${tag} ${into}@nosuch failed: .*does not exist`));
    expect(await runOk(['zfs', 'list', '-H', '-o', 'name', `${into}@s4`])).toBe(`${into}@s4\n`);
  });

  it('lets nothing through that names a dataset outside the prefix, uses -F, -o, -x or another tag (property)', async () => {
    const words = [
      '-u', '-F', '-s', '-v', '-A', '-o', '-x', '-d', '-e', '-H', '-p', '-r', '-t', '-uF', 'all', 'name', 'mountpoint=/root/.ssh', '1',
      prefix, `${prefix}/rep`, `${prefix}/rep@s1`, `${prefix}/new`, `${prefix}x`, `${prefix}/../other`, `${pool.name}/other`, pool.name,
      `${pool.name}/src@s1`, tag, 'other-tag', '+hold', '+release',
    ];
    const subs = ['receive', 'recv', 'list', 'get', 'hold', 'release', 'holds', 'destroy', 'set', 'rollback', 'send'];
    const underPrefix = (w: string): boolean => (w === prefix || w.startsWith(`${prefix}/`) || w.startsWith(`${prefix}@`)) && !w.includes('..');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...subs), fc.array(fc.constantFrom(...words), { maxLength: 5 }), async (sub, args) => {
        const r = await guard(['zfs', sub, ...args].join(' '));
        if (/^bdr-guard: refused: /.test(r.stderr)) {
          expect(r.code).toBe(1);
          return;
        }
        // It reached zfs: then it was one of the allowed shapes.
        expect(['receive', 'recv', 'list', 'get', 'hold', 'release', 'holds']).toContain(sub);
        // Where zfs reads a dataset: not an option's argument (list and get: -o -t -s -S -d), not get's property
        // list (its first other word), not hold's or release's tag. The pool's own name there must not pass;
        // elsewhere it is only a word (a property list, say) that names no dataset.
        const datasetWords = new Set<number>();
        let skipNext = false;
        let leadingWord = sub === 'get' || sub === 'hold' || sub === 'release';
        args.forEach((w, i) => {
          if (skipNext) skipNext = false;
          else if (['-o', '-t', '-s', '-S', '-d'].includes(w) && (sub === 'list' || sub === 'get')) skipNext = true;
          else if (w.startsWith('-')) return;
          else if (leadingWord) leadingWord = false;
          else datasetWords.add(i);
        });
        for (const [i, w] of args.entries()) {
          if (w.includes('/') || (w === pool.name && datasetWords.has(i))) expect(underPrefix(w), `${sub} ${args.join(' ')}`).toBe(true);
          expect(['-F', '-x', '-e', '-uF', '-d'].includes(w) && (sub === 'receive' || sub === 'recv'), `${sub} ${args.join(' ')}`).toBe(false);
          if (w === 'other-tag') expect(['hold', 'release']).not.toContain(sub);
        }
        if (sub === 'receive' || sub === 'recv') {
          expect(args).not.toContain('-o');
          // A receive reaches zfs only for the key's own replica (the words after +hold/+release are snapshots to move).
          const targets = args.filter((w, i) => !w.startsWith('-') && !w.startsWith('+') && !['+hold', '+release'].includes(args[i - 1] ?? ''));
          for (const t of targets) expect([`${prefix}/rep`, `${prefix}/rep@s1`], `${sub} ${args.join(' ')}`).toContain(t);
        }
      }),
      { numRuns: 200 },
    );
    // Whatever got through, nothing outside the prefix changed and the replica kept its snapshots.
    expect(await runOk(['zfs', 'list', '-H', '-r', '-t', 'all', '-o', 'name', `${pool.name}/other`])).toBe(`${pool.name}/other\n`);
    expect(await runOk(['zfs', 'list', '-H', '-r', '-t', 'snapshot', '-o', 'name', `${prefix}/rep`])).toBe(`${prefix}/rep@s1\n${prefix}/rep@s2\n`);
  });

  it('adds the protective receive options itself where ZFS has them (OpenZFS variant)', async () => {
    // zfs-fuse has no receive -o: its refusal shows the guard passed -o although the client did not.
    const r = await guard(`zfs receive -u ${prefix}/opts`, { variant: 'options', stdinFrom: `${pool.name}/src@s1`, args: [prefix, tag, 'opts'] });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/invalid option 'o'/);
    // The failed receive still went through the protect step, which had nothing to fix and said nothing.
    expect(r.stderr).not.toMatch(/bdr-guard/);
    expect((await run(['zfs', 'list', `${prefix}/opts`])).code).not.toBe(0);
    expect(guardScript(variants.options)).toContain(
      '( trap - HUP INT TERM PIPE; exec "$ZFS" "$@" -o canmount=noauto -o mountpoint=none -o sharenfs=off -o sharesmb=off -o readonly=on -o setuid=off -o exec=off -o devices=off -o volmode=none "$target" )',
    );
  });
});

describe('vector key entry', () => {
  const publicKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
  const base = { publicKey, owner: 'bdr:vector=prod/db-offsite', prefix: 'tank/replicas/prod/db-offsite', leaf: 'db' };

  it('passes prefix, the vector\'s own hold tag and the replica\'s leaf to the guard, and from= when the primary is known', () => {
    expect(vectorHoldTag('bdr:vector=prod/db-offsite')).toBe('bdr:vector:prod:db-offsite');
    expect(renderEntry(vectorKeyEntry(base))).toBe(
      `restrict,command="/usr/local/libexec/bdr/zfs-guard tank/replicas/prod/db-offsite bdr:vector:prod:db-offsite db" ${publicKey} bdr:vector=prod/db-offsite`,
    );
    expect(renderEntry(vectorKeyEntry({ ...base, leaf: 'pg_data.2024:a', holdTag: 'keep_1', from: ['10.0.0.5', '192.168.0.0/16', '!10.0.0.9', 'fd00::/8'] }))).toBe(
      `restrict,command="/usr/local/libexec/bdr/zfs-guard tank/replicas/prod/db-offsite keep_1 pg_data.2024:a",from="10.0.0.5,192.168.0.0/16,!10.0.0.9,fd00::/8" ${publicKey} bdr:vector=prod/db-offsite`,
    );
  });

  it.each([
    [{ from: ['10.0.0.1,0.0.0.0/0'] }, /invalid from pattern/],
    [{ from: ['10.0.0.1"'] }, /invalid from pattern/],
    [{ from: ['*" ,permitopen="*:*'] }, /invalid from pattern/],
    [{ from: [''] }, /invalid from pattern/],
    [{ from: ['10.0.0.0/33'] }, /prefix length too long/],
    [{ from: ['!10.0.0.1'] }, /at least one positive pattern/],
    [{ holdTag: '-r' }, /invalid hold tag/],
    [{ holdTag: 'a b' }, /invalid hold tag/],
    [{ prefix: 'tank/../etc' }, /invalid ZFS dataset name/],
    [{ prefix: 'tank/x y' }, /invalid ZFS dataset name/],
    [{ guardPath: '/usr/bin/guard;id' }, /unsafe guard path/],
    [{ owner: 'bdr:vector=ns/x evil' }, /owner tag/],
    [{ leaf: '' }, /invalid replica leaf/],
    [{ leaf: 'a/b' }, /invalid replica leaf/],
    [{ leaf: '..' }, /invalid replica leaf/],
    [{ leaf: '-F' }, /invalid replica leaf/],
    [{ leaf: 'a b' }, /invalid replica leaf/],
    [{ leaf: 'a@b' }, /invalid replica leaf/],
    [{ leaf: 'x"; id #' }, /invalid replica leaf/],
  ])('refuses %j', (override, message) => {
    expect(() => vectorKeyEntry({ ...base, ...override })).toThrow(message);
  });
});
