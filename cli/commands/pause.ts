/** `ferry pause`: running batches (and a verification pass under way) finish, no new ones start; taken even while no worker runs. */
import type { Command } from 'commander';
import { settingsOf, withClient, withNoteOptions, type NoteOptions } from '../context';
import { requestedBy } from '../identity';
import { operatorModule } from '../lazy';

export function addPauseCommand(program: Command): void {
  withNoteOptions(
    program
      .command('pause')
      .description('Pause a migration: running batches and a verification pass under way finish; no new ones start, and nothing is repaired. Taken even while no worker runs.')
      .argument('<migration-id>', 'the migration'),
  ).action(async (migrationId: string, note: NoteOptions, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      await operatorModule().pauseMigration(client, migrationId, { ...note, by: requestedBy(note.by) });
      console.log(`pause requested for ${migrationId}; \`ferry status ${migrationId}\` shows when it has taken effect`);
    });
  });
}
