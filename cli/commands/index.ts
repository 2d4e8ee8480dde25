import type { Command } from 'commander';
import { clusterCommand } from './cluster.ts';
import { crdsCommand } from './crds.ts';
import { planCommand } from './plan.ts';
import { restoreCommand } from './restore.ts';
import { runCommand } from './run.ts';
import { statusCommand } from './status.ts';
import { upCommand } from './up.ts';
import { validateCommand } from './validate.ts';

/** Every `bdr` subcommand, in the order `bdr --help` lists them. Each module exports one factory. */
export const commands: Array<() => Command> = [validateCommand, crdsCommand, clusterCommand, upCommand, runCommand, planCommand, restoreCommand, statusCommand];
