import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commandLine, shellQuote } from '../../nodes/quote.ts';

/** Runs `printf '%s\0' <quoted args>` in a real shell and returns the arguments it received. */
function throughShell(shell: string, args: readonly string[]): string[] {
  const line = commandLine(['printf', '%s\\0', ...args]);
  const out = execFileSync(shell, ['-c', line], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

const arg = fc.string({ unit: 'binary', maxLength: 24 }).map((s) => s.replace(/\0/g, ''));
const nasty = fc.constantFrom("'", '"', '$(id)', '`id`', '\\', '\n', '*', '~', '!', '#x', 'a b', '-n', '${HOME}', "'\\''", '%s', '');

describe('commandLine quoting', () => {
  for (const shell of ['/bin/sh', '/bin/bash', '/usr/bin/dash']) {
    it(`round-trips any argument list through ${shell}`, () => {
      fc.assert(
        fc.property(fc.array(fc.oneof(arg, nasty), { minLength: 1, maxLength: 6 }), (args) => {
          expect(throughShell(shell, args)).toEqual(args);
        }),
        // Each run starts a real shell; 60 per shell keeps the file under ~10 s on a loaded 2-core box.
        { numRuns: 60 },
      );
    });
  }

  it('leaves plain words readable and refuses NUL', () => {
    expect(commandLine(['zfs', 'send', '-I', 'tank/a@s1', 'tank/a@s2'])).toBe('zfs send -I tank/a@s1 tank/a@s2');
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('a=b')).toBe(`'a=b'`);
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
    expect(() => commandLine([])).toThrow(/empty/);
  });
});
