import { access } from 'node:fs/promises';
import { Command } from 'commander';
import { checkPaths, formatFinding } from '../../gitops/check.ts';
import { EXIT, UserError } from '../errors.ts';

export function validateCommand(): Command {
  return new Command('validate')
    .description('check bdr manifests: schemas, references, duplicate datasets and targets, replication cycles')
    .argument('<path...>', 'YAML files or directories (walked recursively; kustomization.yaml is skipped)')
    .option('-n, --namespace <ns>', 'namespace of objects that name none, as kubectl apply would use', 'default')
    .addHelpText(
      'after',
      `
Every finding is one line, FILE:LINE: Kind/name: field: message. Documents of other kinds
(Secret, Namespace, …) are passed through unchecked.

Exit codes: 0 all valid · 1 findings were printed · 2 usage error · 3 a path cannot be read

Example (in a GitOps repository's CI):
  bdr validate clusters/ infrastructure/`,
    )
    .action(async (paths: string[], opts: { namespace: string }) => {
      for (const p of paths) {
        await access(p).catch(() => {
          throw new UserError(`cannot read ${p}: no such file or directory`, EXIT.runtime);
        });
      }
      const result = await checkPaths(paths, opts.namespace);
      for (const f of result.findings) process.stdout.write(`${formatFinding(f)}\n`);
      const objects = result.valid.length + result.foreign.length;
      if (result.findings.length > 0) {
        process.stderr.write(`bdr: ${result.findings.length} problem(s) in ${result.files.length} file(s); fix them and run bdr validate again\n`);
        process.exitCode = EXIT.invalid;
        return;
      }
      process.stdout.write(`${objects} object(s) in ${result.files.length} file(s) are valid\n`);
    });
}
