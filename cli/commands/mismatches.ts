/** `ferry mismatches`: the differences the latest verification found, by category, with examples. */
import type { Command } from 'commander';
import { settingsOf, wholeNumber, withClient } from '../context';
import { operatorModule, renderModule } from '../lazy';

export function addMismatchesCommand(program: Command): void {
  program
    .command('mismatches')
    .description('The differences the latest verification found (of a running or an ended migration), by category, with examples; values as found, redacted unless --show-values.')
    .argument('<migration-id>', 'the migration')
    .option('--show-values', 'show the source and target values of the examples (they are then kept in the workflow history)', false)
    .option('--limit <n>', 'examples at most', '20')
    .option('--json', 'print as JSON', false)
    .action(async (migrationId: string, options: { showValues: boolean; limit: string; json: boolean }, command: Command) => {
      const limit = wholeNumber('--limit', options.limit);
      await withClient(settingsOf(command), async (client) => {
        const operator = operatorModule();
        const { runState, taskQueue } = await operator.runStateOf(client, migrationId);
        const report =
          runState === 'running'
            ? await operator.mismatches(client, migrationId, { showValues: options.showValues, limit })
            : await operator.endedMismatches(client, await operator.endedMigration(client, migrationId, taskQueue, runState), { showValues: options.showValues, limit });
        console.log(options.json ? JSON.stringify(report, null, 2) : renderModule().formatMismatches(report));
      });
    });
}
