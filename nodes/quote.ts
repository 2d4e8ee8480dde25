/**
 * The one place where an argument array becomes a command line for a POSIX shell (the remote side of an
 * SSH exec always goes through the login shell). Every argument is single-quoted, so no character in it
 * is special; a single quote inside is closed, escaped and reopened.
 *
 * Names are validated (api/names.ts) before they get here; quoting is the second, independent wall.
 */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new TypeError('a command argument must not contain NUL');
  // Plain words need no quotes; keeping them bare makes logged command lines readable.
  if (/^[A-Za-z0-9_@+:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Joins an argument array into a shell command line; the inverse of what `sh -c` splits. */
export function commandLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new TypeError('empty command');
  return argv.map(shellQuote).join(' ');
}
