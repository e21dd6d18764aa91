/** `ferry verify`: a running migration compares, repairs and compares again; an ended one is checked by a workflow of its own. */
import type { Command } from 'commander';
import { byHelp, CliError, settingsOf, withClient } from '../context';
import { ExitCode } from '../exit-codes';
import { requestedBy } from '../identity';
import { operatorModule, renderModule } from '../lazy';
import { say } from '../output';

interface VerifyOptions {
  sample?: string;
  by?: string;
  repair: boolean;
  force: boolean;
  json: boolean;
}

export function addVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description(
      'Verify a migration now. Running: compare, repair, compare (e.g. at a gate). Completed or aborted: compare and report ' +
        'what differs, repairing from the source only with --repair; every run is recorded (ferry.verification_runs, ferry report).',
    )
    .argument('<migration-id>', 'the migration')
    .option('--sample <percent>', 'check a deterministic sample of about this percentage of keys')
    .option('--repair', 'on a migration that has ended: repair what differs from the source, and compare again (default: report only)', false)
    .option('--force', 'with --repair: repair from the source even though writes to the old table were turned off', false)
    .option('--by <name>', byHelp)
    .option('--json', 'print what this verification found as JSON', false)
    .action(async (migrationId: string, options: VerifyOptions, command: Command) => {
      const samplePercent = options.sample === undefined ? undefined : Number(options.sample.replace(/%$/, ''));
      if (samplePercent !== undefined && !(samplePercent > 0 && samplePercent <= 100)) {
        throw new CliError(`--sample must be a percentage above 0 and at most 100, not "${options.sample}"`, ExitCode.badInput);
      }
      if (options.force && !options.repair) throw new CliError('--force goes with --repair', ExitCode.badInput);
      await withClient(settingsOf(command), async (client) => {
        const operator = operatorModule();
        const { runState, taskQueue } = await operator.runStateOf(client, migrationId);
        if (runState === 'running') {
          const summary = await operator.verifyMigration(client, migrationId, { samplePercent, by: requestedBy(options.by) });
          say(options.json, { migrationId, ...summary }, renderModule().formatVerification(summary));
          if (!summary.clean) process.exitCode = ExitCode.failed;
          return;
        }
        const migration = await operator.endedMigration(client, migrationId, taskQueue, runState);
        const run = await operator.checkEndedMigration(
          client,
          migration,
          { samplePercent: samplePercent ?? null, repair: options.repair, force: options.force, by: requestedBy(options.by) },
          (checkId) => console.error(`migration ${migrationId} is ${migration.status.phase}; checking it as ${checkId}`),
        );
        say(options.json, run, renderModule().formatVerificationRun(run));
        const note = run.clean ? null : operator.staleSourceNote(migration.status);
        if (note && !options.json) console.log(note);
        if (!run.clean) process.exitCode = ExitCode.failed;
      });
    });
}
