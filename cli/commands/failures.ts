/** `ferry failures`: the rows a migration could not copy, with the reason (values redacted). */
import type { Command } from 'commander';
import { CliError, settingsOf, withClient } from '../context';
import { ExitCode } from '../exit-codes';
import { operatorModule, renderModule } from '../lazy';

export function addFailuresCommand(program: Command): void {
  program
    .command('failures')
    .description('List the rows a migration could not copy, with the reason (values redacted).')
    .argument('<migration-id>', 'the migration')
    .option('--json', 'print as JSON', false)
    .action(async (migrationId: string, options: { json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const report = await operatorModule().migrationReport(client, migrationId);
        if (!report.status) throw new CliError(`migration ${migrationId} ${report.runState}: ${report.failure}`, ExitCode.failed);
        const { rowsFailed, unresolvedFailures, failuresFixed, recentFailures } = report.status;
        console.log(
          options.json
            ? JSON.stringify({ rowsFailed, unresolvedFailures, failuresFixed, recentFailures }, null, 2)
            : renderModule().formatFailures(report.status),
        );
      });
    });
}
