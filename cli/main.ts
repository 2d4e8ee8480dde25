import { Command, CommanderError } from 'commander';
import { EXIT, UserError } from './errors.ts';
import { commands } from './commands/index.ts';

const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    invalid input or a failed check (bdr validate found errors)
  2    usage error (unknown command or option)
  3    runtime failure (a machine, the cluster or a file could not be reached)
  130  interrupted`;

export function buildProgram(): Command {
  const program = new Command('bdr')
    .description('GitOps operator for ZFS backup and disaster recovery')
    .version(process.env.npm_package_version ?? '0.1.0', '--version', 'print the bdr version')
    .addHelpText('after', EXIT_CODES_HELP)
    .showSuggestionAfterError(true)
    .exitOverride();
  for (const make of commands) program.addCommand(make().exitOverride());
  return program;
}

/** Runs the CLI and returns the process exit code; never calls process.exit itself. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed the message (or the help text).
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return EXIT.ok;
      }
      return EXIT.usage;
    }
    if (err instanceof UserError) {
      process.stderr.write(`bdr: ${err.message}\n`);
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`bdr: unexpected error: ${message}\n`);
    return EXIT.runtime;
  }
}
