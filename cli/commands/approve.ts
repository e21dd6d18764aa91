/** `ferry approve`: the gate a migration waits at, approved as the operator's identity. */
import type { Command } from 'commander';
import { byHelp, settingsOf, withClient } from '../context';
import { requestedBy } from '../identity';
import { operatorModule } from '../lazy';
import { say } from '../output';

export function addApproveCommand(program: Command): void {
  program
    .command('approve')
    .description(
      'Approve the gate a migration waits at, as your identity (FERRY_OPERATOR or user@host). Refused when that gate is not the one waiting, ' +
        "when verification is not clean (unless --force, which is recorded), or when the plan's approvers, forcers or fourEyes rule you out.",
    )
    .argument('<migration-id>', 'the migration')
    .requiredOption('--gate <name>', 'the gate: cutover-reads, stop-old-writes or cleanup')
    .option('--by <name>', byHelp)
    .option('--note <text>', 'what you checked')
    .option('--force', 'approve although verification is not clean (recorded)', false)
    .option('--json', 'print the outcome as JSON', false)
    .action(async (migrationId: string, options: { gate: string; by?: string; note?: string; force: boolean; json: boolean }, command: Command) => {
      const by = requestedBy(options.by);
      await withClient(settingsOf(command), async (client) => {
        const outcome = await operatorModule().approveGate(client, migrationId, { gate: options.gate, by, note: options.note, force: options.force });
        say(options.json, { migrationId, approvedBy: by, ...outcome }, `gate ${outcome.gate} of ${migrationId} approved by ${by}${outcome.forced ? ' (forced past unclean verification; recorded)' : ''}`);
      });
    });
}
