/** `ferry reject`: the gate a migration waits at, rejected; the migration aborts and rolls its flags back. */
import type { Command } from 'commander';
import { byHelp, settingsOf, withClient } from '../context';
import { requestedBy } from '../identity';
import { operatorModule } from '../lazy';

export function addRejectCommand(program: Command): void {
  program
    .command('reject')
    .description("Reject the gate a migration waits at, as your identity (the plan's approvers apply): the migration aborts and rolls its flags back.")
    .argument('<migration-id>', 'the migration')
    .requiredOption('--gate <name>', 'the gate it waits at')
    .option('--by <name>', byHelp)
    .requiredOption('--reason <text>', 'why')
    .action(async (migrationId: string, options: { gate: string; by?: string; reason: string }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        await operatorModule().rejectGate(client, migrationId, { gate: options.gate, reason: options.reason, by: requestedBy(options.by) });
        console.log(`gate ${options.gate} of ${migrationId} rejected; the migration aborts (\`ferry status ${migrationId}\`)`);
      });
    });
}
