/** `ferry retry`: copies a migration's failed rows again, after their cause was fixed. */
import type { Command } from 'commander';
import { settingsOf, withClient, withNoteOptions, type NoteOptions } from '../context';
import { ExitCode } from '../exit-codes';
import { requestedBy } from '../identity';
import { operatorModule } from '../lazy';
import { say } from '../output';

export function addRetryCommand(program: Command): void {
  withNoteOptions(
    program
      .command('retry')
      .description('Copy the failed rows of a migration again, after fixing their cause.')
      .argument('<migration-id>', 'the migration')
      .option('--json', 'print the outcome as JSON', false),
  ).action(async (migrationId: string, options: NoteOptions & { json: boolean }, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      const outcome = await operatorModule().retryFailures(client, migrationId, { by: requestedBy(options.by), ...(options.reason ? { reason: options.reason } : {}) });
      say(options.json, { migrationId, ...outcome }, `retried ${outcome.retried} rows: ${outcome.fixed} copied, ${outcome.stillFailing} still failing`);
      if (outcome.stillFailing > 0) process.exitCode = ExitCode.failed;
    });
  });
}
