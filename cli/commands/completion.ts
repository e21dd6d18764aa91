/** `ferry completion`: a shell completion script for bash or zsh, generated from the program itself. */
import type { Command } from 'commander';
import { bashCompletion, zshCompletion } from '../help';

export function addCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('Print a shell completion script for bash or zsh.')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(bashCompletion(program));
      else if (shell === 'zsh') process.stdout.write(zshCompletion(program));
      else {
        const error = new Error(`completion is for bash or zsh, not "${shell}"`) as Error & { exitCode: number };
        error.exitCode = 2;
        throw error;
      }
    });
}
