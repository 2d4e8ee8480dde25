import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authorizeKey,
  AuthorizedKeysConflictError,
  listEntries,
  ownerOf,
  parseEntry,
  removeEntries,
  renderEntry,
  revokeKey,
  upsertEntry,
  type AuthorizedKeyEntry,
} from '../../nodes/authorized-keys.ts';
import { LocalConnection } from '../../nodes/local.ts';
import { generateKeyPair, TestBed, type KeyPair, type TestMachine } from '../testbed/index.ts';

const bed = new TestBed();
let machine: TestMachine;
let keyA: KeyPair;
let keyB: KeyPair;

beforeAll(async () => {
  machine = await bed.machine('keys');
  [keyA, keyB] = await Promise.all([generateKeyPair(machine.sshd.dir, 'vec-a'), generateKeyPair(machine.sshd.dir, 'vec-b')]);
});
afterAll(() => bed.cleanup());

const FOREIGN = [
  '# managed by hand, keep me',
  '',
  'from="10.0.0.1",no-pty ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 admin@laptop',
  '   ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA   spaced@host  ',
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB bdr:vector=looks-like-ours-but-no-slash',
];

describe('authorized_keys editing (pure)', () => {
  it('adds, replaces in place and removes only its own entries', () => {
    const base = `${FOREIGN.join('\n')}\n`;
    const a1 = upsertEntry(base, { publicKey: keyA.publicKeyNoComment, owner: 'bdr:vector=ns/a' });
    expect(a1).toBe(`${base}${keyA.publicKeyNoComment} bdr:vector=ns/a\n`);
    const ab = upsertEntry(a1, { publicKey: keyB.publicKeyNoComment, owner: 'bdr:vector=ns/b', options: ['restrict'] });
    // Rotating a's key replaces its line where it was, b stays after it.
    const rotated = upsertEntry(ab, { publicKey: keyB.publicKeyNoComment, owner: 'bdr:vector=ns/a' });
    expect(listEntries(rotated).map((e) => e.owner)).toEqual(['bdr:vector=ns/a', 'bdr:vector=ns/b']);
    expect(listEntries(rotated)[0]?.line).toBe(`${keyB.publicKeyNoComment} bdr:vector=ns/a`);
    expect(upsertEntry(rotated, { publicKey: keyB.publicKeyNoComment, owner: 'bdr:vector=ns/a' })).toBe(rotated);
    expect(removeEntries(removeEntries(rotated, 'bdr:vector=ns/a'), 'bdr:vector=ns/b')).toBe(base);
    expect(removeEntries(base, 'bdr:vector=ns/a')).toBe(base);
  });

  it('never touches foreign lines (property)', () => {
    const foreignLine = fc
      .string({ maxLength: 80 })
      .map((s) => s.replace(/\n/g, ' '))
      .filter((s) => ownerOf(s) === undefined);
    fc.assert(
      fc.property(fc.array(foreignLine, { maxLength: 12 }), fc.nat(3), (lines, n) => {
        const content = lines.length > 0 ? `${lines.join('\n')}\n` : '';
        let edited = content;
        for (let i = 0; i < n; i++) edited = upsertEntry(edited, { publicKey: keyA.publicKeyNoComment, owner: `bdr:vector=ns/v${i}` });
        const foreignAfter = edited.split('\n').slice(0, -1).filter((l) => ownerOf(l) === undefined);
        expect(foreignAfter).toEqual(lines);
        let removed = edited;
        for (let i = 0; i < n; i++) removed = removeEntries(removed, `bdr:vector=ns/v${i}`);
        expect(removed).toBe(content);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects malformed owners, keys and options', () => {
    expect(() => renderEntry({ publicKey: keyA.publicKeyNoComment, owner: 'vector=ns/a' })).toThrow(/owner tag/);
    expect(() => renderEntry({ publicKey: 'ssh-ed25519 AAAA"; rm -rf /', owner: 'bdr:vector=ns/a' })).toThrow(/public key/);
    expect(() =>
      renderEntry({ publicKey: keyA.publicKeyNoComment, owner: 'bdr:vector=ns/a', options: ['command="x",permitopen="*:*"'] }),
    ).toThrow(/option/);
    for (const owner of ['bdr:vector-=ns/a', 'bdr:-vector=ns/a', 'bdr:vector--next=ns/a', 'bdr:Vector=ns/a']) {
      expect(() => renderEntry({ publicKey: keyA.publicKeyNoComment, owner })).toThrow(/owner tag/);
    }
  });

  it("keeps a rotation's two entries of one vector apart: the incoming key has its own tag", () => {
    const both = upsertEntry(upsertEntry('', { publicKey: keyA.publicKeyNoComment, owner: 'bdr:vector=ns/a' }), {
      publicKey: keyB.publicKeyNoComment,
      owner: 'bdr:vector-next=ns/a',
    });
    expect(listEntries(both).map((e) => e.owner)).toEqual(['bdr:vector=ns/a', 'bdr:vector-next=ns/a']);
    expect(listEntries(removeEntries(both, 'bdr:vector-next=ns/a')).map((e) => e.owner)).toEqual(['bdr:vector=ns/a']);
  });
});

/** Lines crafted to be mistaken for bdr's (all with key B and the tag of vector ns/a). */
function lookalikes(keyB: string): string[] {
  const tag = 'bdr:vector=ns/a';
  return [
    `${keyB} evil ${tag}`,
    `${keyB} ${tag} trailing`,
    `${keyB} ${tag} `,
    ` ${keyB} ${tag}`,
    `${keyB}  ${tag}`,
    `${keyB} ${tag}\r`,
    `${keyB}\t${tag}`,
    `# ${keyB} ${tag}`,
    `#restrict ${keyB} ${tag}`,
    `permitopen="*:*",restrict ${keyB} ${tag}`,
    `restrict,permitopen="*:*" ${keyB} ${tag}`,
    `environment="LD_PRELOAD=/tmp/x.so" ${keyB} ${tag}`,
    `restrict,pty ${keyB} ${tag}`,
    `restrict,port-forwarding ${keyB} ${tag}`,
    `restrict,restrict ${keyB} ${tag}`,
    `command="a\\"b" ${keyB} ${tag}`,
    `command="/bin/sh",command="/bin/false" ${keyB} ${tag}`,
    `from="10.0.0.1" restrict ${keyB} ${tag}`,
    `RESTRICT ${keyB} ${tag}`,
    `tunnel="0",restrict ${keyB} ${tag}`,
    `sk-ssh-ed25519@openssh.com ${keyB.split(' ')[1]} ${tag}`,
    `ssh-rsa ${keyB.split(' ')[1]} ${tag}`,
    `${keyB} ${tag}:x`,
    `${keyB} bdr:vector=ns/a/b`,
    `${keyB} bdr:vector=NS/a`,
  ];
}

describe('recognising bdr\'s own lines exactly', () => {
  it('never takes a lookalike line for bdr\'s, and never rewrites or removes it', () => {
    const foreign = lookalikes(keyB.publicKeyNoComment);
    for (const line of foreign) expect(ownerOf(line), line).toBeUndefined();
    const content = `${foreign.join('\n')}\n`;
    expect(listEntries(content)).toEqual([]);
    // Authorizing vector ns/a appends bdr's own line; revoking removes exactly that line.
    const entry = { publicKey: keyA.publicKeyNoComment, owner: 'bdr:vector=ns/a', options: ['restrict', 'command="/bin/false"'] };
    const added = upsertEntry(content, entry);
    expect(added).toBe(`${content}${renderEntry(entry)}\n`);
    expect(listEntries(added)).toEqual([{ owner: 'bdr:vector=ns/a', line: renderEntry(entry) }]);
    expect(removeEntries(added, 'bdr:vector=ns/a')).toBe(content);
    expect(removeEntries(content, 'bdr:vector=ns/a')).toBe(content);
  });

  it('recognises every line it renders, and the entry round-trips (property)', () => {
    const option = fc.constantFrom('restrict', 'no-pty', 'no-port-forwarding', 'no-agent-forwarding', 'no-X11-forwarding', 'no-user-rc');
    const command = fc.stringMatching(/^[A-Za-z0-9 _.:/@=+,-]{1,40}$/).map((c) => `command="${c}"`);
    const from = fc.array(fc.constantFrom('10.0.0.1', '10.*', '192.168.0.0/16', '!10.0.0.9', 'host.example', 'fe80::1'), { minLength: 1, maxLength: 3 })
      .filter((ps) => ps.some((p) => !p.startsWith('!')))
      .map((ps) => `from="${ps.join(',')}"`);
    const owner = fc.tuple(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/), fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?$/))
      .map(([ns, name]) => `bdr:vector=${ns}/${name}`);
    fc.assert(
      fc.property(fc.uniqueArray(option), fc.option(command), fc.option(from), owner, (flags, cmd, frm, o) => {
        const options = [...flags, ...(cmd ? [cmd] : []), ...(frm ? [frm] : [])];
        const entry: AuthorizedKeyEntry = { publicKey: keyA.publicKeyNoComment, owner: o, ...(options.length > 0 ? { options } : {}) };
        const line = renderEntry(entry);
        expect(parseEntry(line)).toEqual(entry);
        expect(ownerOf(`${line} `)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('refuses to authorize a key that a foreign line already authorizes, naming the line', () => {
    const content = `# admin\nno-pty ${keyA.publicKeyNoComment} admin@laptop\n`;
    const error = (() => {
      try {
        upsertEntry(content, { publicKey: keyA.publicKeyNoComment, owner: 'bdr:vector=ns/a' });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(AuthorizedKeysConflictError);
    expect(error).toMatchObject({ owner: 'bdr:vector=ns/a', lines: [2] });
    expect(String(error)).toMatch(/line 2 of authorized_keys, not bdr's, holds the same key/);
  });
});

describe('authorized_keys on a machine', () => {
  it('rewrites atomically with the same mode, keeps foreign lines and is idempotent', async () => {
    const connection = machine.connect();
    const path = machine.sshd.authorizedKeysPath;
    const operatorLine = (await readFile(path, 'utf8')).trim();
    const original = `${FOREIGN.join('\n')}\n${operatorLine}\n`;
    await writeFile(path, original);
    await chmod(path, 0o640);

    const entry = { publicKey: keyA.publicKeyNoComment, owner: 'bdr:vector=ns/a', options: ['restrict', 'command="/bin/false"'] };
    expect(await authorizeKey(connection, entry, path)).toBe(true);
    const afterAdd = await readFile(path, 'utf8');
    expect(afterAdd).toBe(`${original}${renderEntry(entry)}\n`);
    const statAfterAdd = await stat(path);
    expect(statAfterAdd.mode & 0o777).toBe(0o640);

    // Same entry again: no write at all (same inode, same mtime).
    expect(await authorizeKey(connection, entry, path)).toBe(false);
    const statAgain = await stat(path);
    expect(statAgain.ino).toBe(statAfterAdd.ino);
    expect(statAgain.mtimeMs).toBe(statAfterAdd.mtimeMs);

    expect(await revokeKey(connection, 'bdr:vector=ns/a', path)).toBe(true);
    expect(await readFile(path, 'utf8')).toBe(original);
    expect(await revokeKey(connection, 'bdr:vector=ns/a', path)).toBe(false);
    // The operator key (a foreign line) still works.
    expect((await machine.connect().exec(['echo', 'ok'])).stdout).toBe('ok\n');
  });

  it('keeps crafted lookalike lines byte for byte on the machine, and reports a revocation a foreign line defeats', async () => {
    const path = `${machine.sshd.dir}/lookalike_keys`;
    const foreign = `${lookalikes(keyB.publicKeyNoComment).join('\n')}\n`;
    await writeFile(path, foreign, { mode: 0o600 });
    const entry = { publicKey: keyA.publicKeyNoComment, owner: 'bdr:vector=ns/a', options: ['restrict'] };
    expect(await authorizeKey(machine.connect(), entry, path)).toBe(true);
    expect(await revokeKey(machine.connect(), 'bdr:vector=ns/a', path)).toBe(true);
    expect(await readFile(path)).toEqual(Buffer.from(foreign));
    expect(await revokeKey(machine.connect(), 'bdr:vector=ns/b', path)).toBe(false);
    expect(await readFile(path)).toEqual(Buffer.from(foreign));

    // Someone copied bdr's key into a line of their own: bdr removes its entry but says the key still works.
    await authorizeKey(machine.connect(), entry, path);
    await writeFile(path, `${await readFile(path, 'utf8')}no-pty ${keyA.publicKeyNoComment} copied-by-hand\n`);
    await expect(revokeKey(machine.connect(), 'bdr:vector=ns/a', path)).rejects.toThrow(/line 26 of authorized_keys, not bdr's, still authorizes its key/);
    expect(await readFile(path, 'utf8')).toBe(`${foreign}no-pty ${keyA.publicKeyNoComment} copied-by-hand\n`);
  });

  it('creates a missing file (and its directory) with private permissions, locally too', async () => {
    const path = `${machine.sshd.dir}/home/.ssh/authorized_keys`;
    const local = new LocalConnection();
    expect(await revokeKey(local, 'bdr:vector=ns/a', path)).toBe(false);
    expect(await authorizeKey(local, { publicKey: keyB.publicKeyNoComment, owner: 'bdr:vector=ns/b' }, path)).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(`${machine.sshd.dir}/home/.ssh`)).mode & 0o777).toBe(0o700);
    expect(await readFile(path, 'utf8')).toBe(`${keyB.publicKeyNoComment} bdr:vector=ns/b\n`);
  });

  it('serialises concurrent edits from separate connections without losing any', async () => {
    // Separate connections stand in for separate bdr processes: only the lock on the machine orders them.
    const path = `${machine.sshd.dir}/concurrent_keys`;
    await writeFile(path, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA keep\n', { mode: 0o600 });
    await Promise.all(
      Array.from({ length: 6 }, (_, i) => authorizeKey(machine.connect(), { publicKey: keyA.publicKeyNoComment, owner: `bdr:vector=ns/c${i}` }, path)),
    );
    const owners = listEntries(await readFile(path, 'utf8')).map((e) => e.owner).sort();
    expect(owners).toEqual(Array.from({ length: 6 }, (_, i) => `bdr:vector=ns/c${i}`));
    expect(await readFile(path, 'utf8')).toMatch(/^ssh-ed25519 \S+ keep\n/);
  });
});
