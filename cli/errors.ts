/**
 * Exit codes of the `bdr` command, documented in `bdr --help` and the README.
 * 0 success · 1 the input is invalid or a check failed · 2 usage error · 3 a runtime failure (cannot reach
 * a machine or the cluster, an I/O error) · 130 interrupted.
 */
export const EXIT = { ok: 0, invalid: 1, usage: 2, runtime: 3, interrupted: 130 } as const;

/** An error meant for the user: one line that says what is wrong and what to do. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.runtime,
  ) {
    super(message);
    this.name = 'UserError';
  }
}
