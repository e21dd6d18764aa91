/** `ferry resume`: a paused migration copies again. */
import type { Command } from 'commander';
import { settingsOf, withClient, withNoteOptions, type NoteOptions } from '../context';
import { requestedBy } from '../identity';
import { operatorModule } from '../lazy';

export function addResumeCommand(program: Command): void {
  withNoteOptions(program.command('resume').description('Resume a paused migration.').argument('<migration-id>', 'the migration')).action(
    async (migrationId: string, note: NoteOptions, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const checked = await operatorModule().resumeMigration(client, migrationId, { ...note, by: requestedBy(note.by) });
        console.log(
          checked
            ? `resume sent to ${migrationId}, which was paused; \`ferry status ${migrationId}\` shows when it copies again`
            : `resume sent to ${migrationId} (no worker runs it now, so whether it was paused is not known); it takes effect when a worker runs it`,
        );
      });
    },
  );
}
