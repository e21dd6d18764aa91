/** `ferry setup`: Ferry's search attributes registered in a Temporal namespace; safe to run twice. */
import type { Command } from 'commander';
import { rootMessage } from '../../lib/errors';
import type { SetupOutcome } from '../../operator';
import { CliError, settingsOf, withClient } from '../context';
import { ExitCode } from '../exit-codes';
import { operatorModule } from '../lazy';

export function addSetupCommand(program: Command): void {
  program
    .command('setup')
    .description("Prepare a Temporal namespace for Ferry: register Ferry's search attributes (FerryPlan, FerryPhase, FerryTarget) so migrations can be listed by plan, phase and target. Safe to run twice.")
    .option('--json', 'print the outcome as JSON', false)
    .action(async (options: { json: boolean }, command: Command) => {
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        const operator = operatorModule();
        let outcome: SetupOutcome;
        try {
          outcome = await operator.registerSearchAttributes(client, settings.namespace);
        } catch (error) {
          if (error instanceof operator.SearchAttributeConflictError) throw new CliError(error.message, ExitCode.badInput);
          throw new CliError(`cannot register search attributes in namespace ${settings.namespace}: ${rootMessage(error)} (it needs an operator's permission on the namespace)`, ExitCode.failed);
        }
        if (options.json) console.log(JSON.stringify(outcome));
        else {
          if (outcome.added.length) console.log(`registered in namespace ${outcome.namespace}: ${outcome.added.join(', ')}`);
          if (outcome.present.length) console.log(`already there: ${outcome.present.join(', ')}`);
        }
      });
    });
}
