/** `ferry abort`: stop copying, roll the flags back to the last state that loses no write, record why. */
import type { Command } from 'commander';
import { byHelp, settingsOf, withClient } from '../context';
import { unstoppedShardsNote } from '../../lib/status';
import { requestedBy } from '../identity';
import { operatorModule } from '../lazy';
import { say } from '../output';

export function addAbortCommand(program: Command): void {
  program
    .command('abort')
    .description('Abort a migration: stop copying, roll the flags back to the last state that loses no write, record why.')
    .argument('<migration-id>', 'the migration')
    .requiredOption('--reason <text>', 'why, for the record')
    .option('--by <name>', byHelp)
    .option('--json', 'print the abort record as JSON', false)
    .action(async (migrationId: string, options: { by?: string; reason: string; json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const record = await operatorModule().abortMigration(client, migrationId, { reason: options.reason, by: requestedBy(options.by) });
        const unstopped = record ? unstoppedShardsNote(record) : null;
        say(
          options.json,
          { migrationId, aborted: true, abort: record },
          `migration ${migrationId} aborted${record ? ` in phase ${record.phaseReached}: ${record.flagsNote}` : ''}${unstopped ? `; ${unstopped}` : ''}`,
        );
      });
    });
}
