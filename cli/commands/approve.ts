/** `ferry approve`: the gate a migration waits at, approved as the operator's identity. */
import type { Command } from 'commander';
import { describeVerdict } from '../../lib/verification-runs';
import { byHelp, settingsOf, wholeNumber, withClient } from '../context';
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
    .option('--force', 'approve although verification is not clean (recorded, with the verdict forced past)', false)
    .option(
      '--verdict <pass>',
      'the verification pass you looked at (`ferry status` names it): the approval is refused if another pass has reported since (default: judged against whatever verification is current)',
    )
    .option('--json', 'print the outcome as JSON', false)
    .action(async (migrationId: string, options: { gate: string; by?: string; note?: string; force: boolean; verdict?: string; json: boolean }, command: Command) => {
      const by = requestedBy(options.by);
      const verdictPass = options.verdict === undefined ? undefined : wholeNumber('--verdict', options.verdict);
      await withClient(settingsOf(command), async (client) => {
        const approval = { gate: options.gate, by, note: options.note, force: options.force, ...(verdictPass === undefined ? {} : { verdictPass }) };
        const outcome = await operatorModule().approveGate(client, migrationId, approval);
        // The answer names the verdict forced past as the migration knew it (an older worker's does not).
        const forced = outcome.verdict ? `, forced past verification ${describeVerdict(outcome.verdict)} (recorded)` : outcome.forced ? ' (forced past unclean verification; recorded)' : '';
        say(options.json, { migrationId, approvedBy: by, ...outcome }, `gate ${outcome.gate} of ${migrationId} approved by ${by}${forced}`);
      });
    });
}
