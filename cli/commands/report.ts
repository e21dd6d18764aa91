/** `ferry report`: the record of a migration as Markdown, JSON or HTML, from Temporal or rebuilt from ferry.audit on the target. */
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { CliError, settingsOf, withClient } from '../context';
import { ExitCode } from '../exit-codes';
import { lazy, operatorModule } from '../lazy';
import type * as AuditReportExports from '../audit-report';
import type * as ReportExports from '../report';
import type * as ReportHtmlExports from '../report-html';

/* eslint-disable @typescript-eslint/no-require-imports */
const auditReportModule = lazy(() => require('../audit-report') as typeof AuditReportExports);
const reportModule = lazy(() => require('../report') as typeof ReportExports);
const reportHtmlModule = lazy(() => require('../report-html') as typeof ReportHtmlExports);
/* eslint-enable @typescript-eslint/no-require-imports */

interface ReportOptions {
  format: string;
  out?: string;
  fromAudit: boolean;
  connection?: string;
}

export function addReportCommand(program: Command): void {
  program
    .command('report')
    .description(
      'The record of a migration (at the end, or at any time): phases, decisions, rows, verification, what is left to do by hand. ' +
        'Once Temporal no longer holds the run, --connection rebuilds its decisions and outcome from ferry.audit on the target.',
    )
    .argument('<migration-id>', 'the migration')
    .option('--format <format>', 'markdown, json, or html (one self-contained page with charts)', 'markdown')
    .option('--out <file>', 'write it to a file instead of standard output')
    .option('--from-audit', "rebuild it from ferry.audit on the target instead of asking Temporal (needs --connection)", false)
    .option('--connection <env-name>', "the environment variable holding the target database's URL (the plan's target.connection), to read ferry.audit")
    .action(async (migrationId: string, options: ReportOptions, command: Command) => {
      if (!['markdown', 'json', 'html'].includes(options.format)) throw new CliError(`--format must be markdown, json or html, not "${options.format}"`, ExitCode.badInput);
      if (options.fromAudit && !options.connection) throw new CliError('--from-audit needs --connection NAME: the environment variable with the target database URL', ExitCode.badInput);
      if (options.fromAudit) return reportFromAudit(migrationId, options);
      await withClient(settingsOf(command), async (client) => {
        const operator = operatorModule();
        let data;
        try {
          data = await operator.recordData(client, migrationId);
        } catch (error) {
          // Past the namespace's retention, the audit on the target is what remains.
          if (error instanceof operator.UnknownMigrationError && options.connection) return reportFromAudit(migrationId, options);
          throw error;
        }
        const record = reportModule().migrationRecord(data.status, data.laterChecks);
        output(options, options.format === 'json' ? `${JSON.stringify(record, null, 2)}\n` : options.format === 'html' ? reportHtmlModule().recordHtml(record) : reportModule().recordMarkdown(record));
      });
    });
}

function output(options: ReportOptions, text: string): void {
  if (options.out) {
    writeFileSync(options.out, text);
    console.log(`wrote ${options.out}`);
  } else process.stdout.write(text);
}

async function reportFromAudit(migrationId: string, options: ReportOptions): Promise<void> {
  if (options.format === 'html') throw new CliError('a report rebuilt from ferry.audit comes as markdown or json, not html', ExitCode.badInput);
  let audit;
  try {
    audit = await auditReportModule().auditOf(options.connection!, migrationId);
  } catch (error) {
    throw new CliError(`cannot read ferry.audit: ${(error as Error).message}`, ExitCode.badInput);
  }
  if (!audit) throw new CliError(`ferry.audit on the target holds nothing for "${migrationId}"`, ExitCode.unknownMigration);
  output(options, options.format === 'json' ? `${JSON.stringify({ rebuiltFromAudit: true, ...audit }, null, 2)}\n` : auditReportModule().auditMarkdown(audit));
}
