import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { allCrdFiles } from '../../api/crd.ts';
import { EXIT, UserError } from '../errors.ts';

export function crdsCommand(): Command {
  return new Command('crds')
    .description("print bdr's CustomResourceDefinitions (kubectl apply -f - installs them)")
    .option('--write <dir>', 'write one file per kind into DIR instead of printing')
    .addHelpText('after', '\nExamples:\n  bdr crds | kubectl apply -f -\n  bdr crds --write crds/')
    .action(async (opts: { write?: string }) => {
      const files = allCrdFiles();
      if (!opts.write) {
        process.stdout.write([...files.values()].map((y) => `---\n${y}`).join(''));
        return;
      }
      try {
        await mkdir(opts.write, { recursive: true });
        for (const [name, text] of files) await writeFile(join(opts.write, name), text);
      } catch (err) {
        throw new UserError(`cannot write CRDs to ${opts.write}: ${(err as Error).message}`, EXIT.runtime);
      }
      process.stderr.write(`wrote ${files.size} CRDs to ${opts.write}\n`);
    });
}
