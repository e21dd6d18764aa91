/** `ferry status`: a migration's phase, progress and throttle, once or followed live with --watch. */
import type { Command } from 'commander';
import { settingsOf, watchMode, withClient } from '../context';
import { operatorModule, renderModule, temporalHealthModule, watchModule } from '../lazy';
import { statusExitCode } from '../outcome';
import { say } from '../output';

export function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description("Show a migration's phase, progress and throttle.")
    .argument('<migration-id>', 'the id `ferry start` printed')
    .option('--json', 'print the status as JSON', false)
    .option('--watch', 'follow it live until it ends (a view redrawn each second; one line a second when not a terminal, one JSON object a line with --json)', false)
    .action(async (migrationId: string, options: { json: boolean; watch: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        if (options.watch) {
          const mode = watchMode(options.json);
          const report = await watchModule().watchMigration(client, migrationId, { mode });
          if (mode === 'plain') say(false, report, renderModule().formatStatus(report));
          if (watchModule().endedBadly(report)) process.exitCode = statusExitCode(report);
          return;
        }
        const operator = operatorModule();
        const report = await operator.migrationReport(client, migrationId).catch((error: unknown) => {
          // What Temporal records is still true with no worker: show it, then fail with exit 4.
          if (error instanceof operator.NoLiveWorkerError) console.log(options.json ? JSON.stringify({ live: false, ...error.known }, null, 2) : temporalHealthModule().formatKnownWithoutWorker(error.known));
          throw error;
        });
        say(options.json, report, renderModule().formatStatus(report));
        if (!options.json && report.runState !== 'running' && report.status?.execute) {
          for (const check of await operator.laterChecks(client, migrationId)) console.log(`later     ${renderModule().formatLaterCheck(check)}`);
        }
        process.exitCode = statusExitCode(report);
      });
    });
}
