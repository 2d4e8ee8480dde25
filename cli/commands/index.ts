import type { Command } from 'commander';

/** Every `bdr` subcommand, in the order `bdr --help` lists them. Each module exports one factory. */
export const commands: Array<() => Command> = [];
