/** The ferry command line: operators start, watch and steer migrations from here. */
import type * as TemporalClientExports from '@temporalio/client';
import type { Client, Connection } from '@temporalio/client';
import { Command, CommanderError, Option } from 'commander';
import { readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { redactErrorText } from '../lib/errors';
import type * as PlansExports from '../lib/plan';
import type { Plan } from '../lib/plan';
import type { TemporalSettings } from '../lib/settings';
import { rootMessage } from '../lib/errors';
import type * as TemporalConnectionExports from '../workers/temporal-connection';
import type { TemporalConnectionFlags } from '../workers/temporal-connection';
import type * as MetricsExports from '../workers/metrics';
import type * as WorkersExports from '../workers/worker';
import type * as LoggingExports from '../workers/logging';
import type * as TracingExports from '../workers/tracing';
import type { DataConverter, Logger } from '@temporalio/common';
import type * as PayloadCodecExports from '../workers/payload-codec';
import type { PayloadKey } from '../workers/payload-codec';
import type * as TransformLoadExports from '../activities/transform/load';
import { ExitCode } from './exit-codes';
import { exitWhenFlushed } from './exit';
import { lazy } from './lazy';
import type * as DoctorReportExports from '../lib/doctor';
import type * as DoctorExports from './doctor';
import type * as InitExports from './init';
import type { InitOptions } from './init';
import { packageVersion } from './version';
import type * as SetupExports from './setup';
import type { SetupOutcome } from './setup';
import type * as MigrationsExports from './migrations';
import type * as ChecksExports from './checks';
import type * as RenderExports from './render';
import type * as ReportExports from './report';
import type * as ReportHtmlExports from './report-html';
import type * as WatchExports from './watch';
import type * as AuditReportExports from './audit-report';
import { identityHelp, operatorIdentity, requestedBy } from './identity';
import { statusExitCode } from './outcome';
import { addDevCommand } from './dev-command';
import { addCompletionCommand, applyHelpConventions } from './help';
import { say } from './output';
import type * as ListExports from './list';
import type * as TemporalHealthExports from './temporal-health';
import type { ThrottleChange } from '../lib/throttle';

// The rest loads on first use: `ferry --help` and `--version` never load the Temporal SDK.
/* eslint-disable @typescript-eslint/no-require-imports */
const temporalClientModule = lazy(() => require('@temporalio/client') as typeof TemporalClientExports);
const plansModule = lazy(() => require('../lib/plan') as typeof PlansExports);
const temporalConnectionModule = lazy(() => require('../workers/temporal-connection') as typeof TemporalConnectionExports);
const metricsModule = lazy(() => require('../workers/metrics') as typeof MetricsExports);
const workersModule = lazy(() => require('../workers/worker') as typeof WorkersExports);
const loggingModule = lazy(() => require('../workers/logging') as typeof LoggingExports);
const tracingModule = lazy(() => require('../workers/tracing') as typeof TracingExports);
const payloadCodecModule = lazy(() => require('../workers/payload-codec') as typeof PayloadCodecExports);
const moduleTransformModule = lazy(() => require('../activities/transform/load') as typeof TransformLoadExports);
const doctorReportModule = lazy(() => require('../lib/doctor') as typeof DoctorReportExports);
const doctorModule = lazy(() => require('./doctor') as typeof DoctorExports);
const initModule = lazy(() => require('./init') as typeof InitExports);
const setupModule = lazy(() => require('./setup') as typeof SetupExports);
const migrationsModule = lazy(() => require('./migrations') as typeof MigrationsExports);
const checksModule = lazy(() => require('./checks') as typeof ChecksExports);
const renderModule = lazy(() => require('./render') as typeof RenderExports);
const reportModule = lazy(() => require('./report') as typeof ReportExports);
const reportHtmlModule = lazy(() => require('./report-html') as typeof ReportHtmlExports);
const watchModule = lazy(() => require('./watch') as typeof WatchExports);
const auditReportModule = lazy(() => require('./audit-report') as typeof AuditReportExports);
const listModule = lazy(() => require('./list') as typeof ListExports);
const temporalHealthModule = lazy(() => require('./temporal-health') as typeof TemporalHealthExports);
/* eslint-enable @typescript-eslint/no-require-imports */

/** An error the CLI reports in one line, with the exit code scripts see. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** The connection flags every command takes, spelled as the Temporal CLI spells them. */
type GlobalOptions = TemporalConnectionFlags;

function settingsOf(command: Command): TemporalSettings {
  try {
    return temporalConnectionModule().resolveTemporal(process.env, command.optsWithGlobals<GlobalOptions>());
  } catch (error) {
    if (error instanceof temporalConnectionModule().TemporalConfigError) throw new CliError(error.message, ExitCode.badInput);
    throw error;
  }
}

async function withClient<T>(settings: TemporalSettings, use: (client: Client) => Promise<T>): Promise<T> {
  let connection: Connection;
  try {
    connection = await temporalConnectionModule().connectClientConnection(settings);
  } catch (error) {
    throw new CliError(
      `cannot reach Temporal at ${temporalConnectionModule().describeConnection(settings)}: ${rootMessage(error)}; start it, or pass --address / set TEMPORAL_ADDRESS` +
        (settings.tls || settings.apiKey ? ', and check the TLS certificates, the server name and the API key' : ''),
      ExitCode.unreachable,
    );
  }
  // Spans only with an OTLP endpoint configured; sent before the command exits.
  const tracing = tracingModule().clientTracing();
  try {
    return await use(
      new (temporalClientModule().Client)({
        connection,
        namespace: settings.namespace,
        dataConverter: cliDataConverter(),
        identity: operatorIdentity(),
        ...(tracing ? { interceptors: { workflow: tracing.workflow } } : {}),
      }),
    );
  } finally {
    await connection.close();
    await tracing?.shutdown();
  }
}

/** The payload codec, with FERRY_PAYLOAD_KEY's keys: a key that is not one is bad input. */
function cliDataConverter(): DataConverter {
  try {
    return payloadCodecModule().ferryDataConverter();
  } catch (error) {
    throw new CliError((error as Error).message, ExitCode.badInput);
  }
}

function readPlan(file: string): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read plan file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, ExitCode.badInput);
  }
  return plansModule().parsePlan(text, file);
}

export function buildProgram(): Command {
  const program = new Command('ferry')
    .description('Online data migrations and backfills for PostgreSQL, run as durable Temporal workflows.')
    .version(packageVersion(), '-V, --version', 'print the version of ferry')
    .addOption(new Option('--address <host:port>', 'Temporal frontend address (default: TEMPORAL_ADDRESS or localhost:7233)'))
    .addOption(new Option('--namespace <name>', 'Temporal namespace (default: TEMPORAL_NAMESPACE or default)'))
    .addOption(new Option('--task-queue <name>', 'task queue of the Ferry workers (default: FERRY_TASK_QUEUE or ferry)'))
    .addOption(new Option('--profile <name>', 'profile of the Temporal config file (TEMPORAL_CONFIG_FILE, or temporal.toml in the user config folder) (default: TEMPORAL_PROFILE or default)'))
    .addOption(new Option('--api-key <key>', 'Temporal API key; prefer TEMPORAL_API_KEY, which no process list shows (default: TEMPORAL_API_KEY)'))
    .addOption(new Option('--tls', 'connect with TLS (implied by an API key or a certificate) (default: TEMPORAL_TLS)'))
    .addOption(new Option('--no-tls', 'connect in plain text even with an API key'))
    .addOption(new Option('--tls-cert-path <file>', 'client certificate for mTLS (PEM) (default: TEMPORAL_TLS_CLIENT_CERT_PATH)'))
    .addOption(new Option('--tls-key-path <file>', 'key of the client certificate (PEM) (default: TEMPORAL_TLS_CLIENT_KEY_PATH)'))
    .addOption(new Option('--tls-ca-path <file>', "CA that signed the server's certificate (PEM) (default: TEMPORAL_TLS_SERVER_CA_CERT_PATH, or the system's)"))
    .addOption(new Option('--tls-server-name <name>', "name to expect in the server's certificate (default: TEMPORAL_TLS_SERVER_NAME, or the address's host)"))
    .addHelpText('after', `\n${identityHelp}`)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('start')
    .description('Start a migration from a plan. Without --execute it is a dry run: inspect, show the transform on a sample, write nothing.')
    .argument('<plan>', 'the migration plan (YAML)')
    .option('--execute', 'copy rows for real (default: dry run)', false)
    .option('--show-values', 'show real values in the dry run sample (they are then kept in the workflow history)', false)
    .option('--id <migration-id>', 'the migration id (default: ferry/<plan name>/<UTC time>)')
    .option('--wait', 'with --execute: follow progress until the migration ends', false)
    .option('--detach', 'with --execute: return once started, without waiting for the inspection to pass', false)
    .option('--where <sql>', "copy only source rows matching this SQL condition (e.g. \"created_at > now() - interval '1 day'\")")
    .option('--key-range <from..to>', 'copy only keys from..to, both included (either side may be empty)')
    .option('--sample <percent>', 'copy a deterministic sample of about this percentage of keys')
    .option('--partition-values <values>', 'copy only these comma-separated values of shards.partitionColumn')
    .option('--rerun', 'migrate into a target that already holds a finished migration', false)
    .option('--no-apps', 'with lifecycle.dualWrites: go ahead although no application follows the flags (as lifecycle.noApps; recorded)')
    .option('--json', 'print the outcome as JSON (the inspection, the id started, or with --wait the final status)', false)
    .action(async (planFile: string, options: StartOptions, command: Command) => {
      const plan = withSubset(readPlan(planFile), options, planFile);
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        const handle = await migrationsModule().startMigration(client, settings, plan, {
          execute: options.execute,
          showSampleValues: options.showValues,
          migrationId: options.id,
          rerun: options.rerun,
          noApps: options.apps === false,
          startedBy: operatorIdentity(),
        });
        if (!options.execute) {
          if (!options.json) console.log(`dry run ${handle.workflowId} (nothing is written)`);
          const status = await handle.result();
          say(options.json, { migrationId: handle.workflowId, dryRun: true, inspection: status.inspection }, renderModule().formatInspection(status.inspection!));
          if (status.inspection!.problems.length > 0) {
            throw new CliError('the dry run found problems; fix them before running with --execute', ExitCode.failed);
          }
          if (!options.json) console.log(`\nto copy for real: ferry start ${planFile} --execute`);
          return;
        }
        if (!options.wait) {
          // "Started" is said only of a run that got past its inspection and holds its target.
          if (!options.detach) await passedInspection(client, handle.workflowId);
          say(
            options.json,
            { migrationId: handle.workflowId, started: true, inspected: !options.detach },
            `started migration ${handle.workflowId}${options.detach ? ' (not waiting for its inspection: --detach)' : ''}\nfollow it with: ferry status ${handle.workflowId}`,
          );
          return;
        }
        if (!options.json) console.log(`started migration ${handle.workflowId}`);
        const report = await watchModule().watchMigration(client, handle.workflowId, { mode: options.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain' });
        if (!options.json) say(false, report, renderModule().formatStatus(report));
        if (report.runState !== 'completed' || statusExitCode(report) !== ExitCode.ok) process.exitCode = statusExitCode(report) || ExitCode.failed;
      });
    });

  program
    .command('status')
    .description("Show a migration's phase, progress and throttle.")
    .argument('<migration-id>', 'the id `ferry start` printed')
    .option('--json', 'print the status as JSON', false)
    .option('--watch', 'follow it live until it ends (a view redrawn each second; one line a second when not a terminal, one JSON object a line with --json)', false)
    .action(async (migrationId: string, options: { json: boolean; watch: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        if (options.watch) {
          const mode = options.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
          const report = await watchModule().watchMigration(client, migrationId, { mode });
          if (mode === 'plain') say(false, report, renderModule().formatStatus(report));
          if (watchModule().endedBadly(report)) process.exitCode = statusExitCode(report);
          return;
        }
        const report = await migrationsModule().migrationReport(client, migrationId).catch((error: unknown) => {
          // What Temporal records is still true with no worker: show it, then fail with exit 4.
          if (error instanceof temporalHealthModule().NoLiveWorkerError) console.log(options.json ? JSON.stringify({ live: false, ...error.known }, null, 2) : temporalHealthModule().formatKnownWithoutWorker(error.known));
          throw error;
        });
        say(options.json, report, renderModule().formatStatus(report));
        if (!options.json && report.runState !== 'running' && report.status?.execute) {
          for (const check of await checksModule().laterChecks(client, migrationId)) console.log(`later     ${renderModule().formatLaterCheck(check)}`);
        }
        process.exitCode = statusExitCode(report);
      });
    });

  const operatorOptions = (command: Command) =>
    command
      .option('--by <name>', byHelp)
      .option('--reason <text>', 'why, for the record');

  operatorOptions(
    program
      .command('throttle')
      .description('Change how fast a running migration copies. Values are absolute; each takes effect within seconds.')
      .argument('<migration-id>', 'the migration')
      .option('--rows-per-second <n>', `rows per second across the migration, or "unlimited"`)
      .option('--batch-size <n>', 'the largest batch (the copier adapts below it)')
      .option('--concurrency <n>', 'shards copying at once')
      .option('--json', 'print the throttle now in force as JSON', false),
  ).action(async (migrationId: string, options: ThrottleOptions & { json: boolean }, command: Command) => {
    const change = throttleChangeOf(options);
    await withClient(settingsOf(command), async (client) => {
      const throttle = await migrationsModule().changeThrottle(client, migrationId, change);
      say(options.json, { migrationId, throttle }, `throttle of ${migrationId} is now: ${renderModule().formatThrottle(throttle)}`);
    });
  });

  operatorOptions(
    program
      .command('pause')
      .description('Pause a migration: running batches finish, no new ones start. Taken even while no worker runs.')
      .argument('<migration-id>', 'the migration'),
  ).action(async (migrationId: string, note: { by?: string; reason?: string }, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      await migrationsModule().pauseMigration(client, migrationId, { ...note, by: requestedBy(note.by) });
      console.log(`pause requested for ${migrationId}; \`ferry status ${migrationId}\` shows when it has taken effect`);
    });
  });

  operatorOptions(
    program.command('resume').description('Resume a paused migration.').argument('<migration-id>', 'the migration'),
  ).action(async (migrationId: string, note: { by?: string; reason?: string }, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      const checked = await migrationsModule().resumeMigration(client, migrationId, { ...note, by: requestedBy(note.by) });
      console.log(
        checked
          ? `resume sent to ${migrationId}, which was paused; \`ferry status ${migrationId}\` shows when it copies again`
          : `resume sent to ${migrationId} (no worker runs it now, so whether it was paused is not known); it takes effect when a worker runs it`,
      );
    });
  });

  program
    .command('failures')
    .description('List the rows a migration could not copy, with the reason (values redacted).')
    .argument('<migration-id>', 'the migration')
    .option('--json', 'print as JSON', false)
    .action(async (migrationId: string, options: { json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const report = await migrationsModule().migrationReport(client, migrationId);
        if (!report.status) throw new CliError(`migration ${migrationId} ${report.runState}: ${report.failure}`, ExitCode.failed);
        const { rowsFailed, unresolvedFailures, failuresFixed, recentFailures } = report.status;
        console.log(
          options.json
            ? JSON.stringify({ rowsFailed, unresolvedFailures, failuresFixed, recentFailures }, null, 2)
            : renderModule().formatFailures(report.status),
        );
      });
    });

  operatorOptions(
    program
      .command('retry')
      .description('Copy the failed rows of a migration again, after fixing their cause.')
      .argument('<migration-id>', 'the migration')
      .option('--json', 'print the outcome as JSON', false),
  ).action(async (migrationId: string, options: { by?: string; reason?: string; json: boolean }, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      const outcome = await migrationsModule().retryFailures(client, migrationId, { by: requestedBy(options.by), ...(options.reason ? { reason: options.reason } : {}) });
      say(options.json, { migrationId, ...outcome }, `retried ${outcome.retried} rows: ${outcome.fixed} copied, ${outcome.stillFailing} still failing`);
      if (outcome.stillFailing > 0) process.exitCode = ExitCode.failed;
    });
  });

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
        const outcome = await migrationsModule().approveGate(client, migrationId, { gate: options.gate, by, note: options.note, force: options.force });
        say(options.json, { migrationId, approvedBy: by, ...outcome }, `gate ${outcome.gate} of ${migrationId} approved by ${by}${outcome.forced ? ' (forced past unclean verification; recorded)' : ''}`);
      });
    });

  program
    .command('reject')
    .description("Reject the gate a migration waits at, as your identity (the plan's approvers apply): the migration aborts and rolls its flags back.")
    .argument('<migration-id>', 'the migration')
    .requiredOption('--gate <name>', 'the gate it waits at')
    .option('--by <name>', byHelp)
    .requiredOption('--reason <text>', 'why')
    .action(async (migrationId: string, options: { gate: string; by?: string; reason: string }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        await migrationsModule().rejectGate(client, migrationId, { gate: options.gate, reason: options.reason, by: requestedBy(options.by) });
        console.log(`gate ${options.gate} of ${migrationId} rejected; the migration aborts (\`ferry status ${migrationId}\`)`);
      });
    });

  program
    .command('abort')
    .description('Abort a migration: stop copying, roll the flags back to the last state that loses no write, record why.')
    .argument('<migration-id>', 'the migration')
    .requiredOption('--reason <text>', 'why, for the record')
    .option('--by <name>', byHelp)
    .option('--json', 'print the abort record as JSON', false)
    .action(async (migrationId: string, options: { by?: string; reason: string; json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const record = await migrationsModule().abortMigration(client, migrationId, { reason: options.reason, by: requestedBy(options.by) });
        say(options.json, { migrationId, aborted: true, abort: record }, `migration ${migrationId} aborted${record ? ` in phase ${record.phaseReached}: ${record.flagsNote}` : ''}`);
      });
    });

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
    .action(async (migrationId: string, options: { format: string; out?: string; fromAudit: boolean; connection?: string }, command: Command) => {
      if (!['markdown', 'json', 'html'].includes(options.format)) throw new CliError(`--format must be markdown, json or html, not "${options.format}"`, ExitCode.badInput);
      if (options.fromAudit && !options.connection) throw new CliError('--from-audit needs --connection NAME: the environment variable with the target database URL', ExitCode.badInput);
      const output = (text: string) => {
        if (options.out) {
          writeFileSync(options.out, text);
          console.log(`wrote ${options.out}`);
        } else process.stdout.write(text);
      };
      const fromAudit = async () => {
        if (options.format === 'html') throw new CliError('a report rebuilt from ferry.audit comes as markdown or json, not html', ExitCode.badInput);
        let audit;
        try {
          audit = await auditReportModule().auditOf(options.connection!, migrationId);
        } catch (error) {
          throw new CliError(`cannot read ferry.audit: ${(error as Error).message}`, ExitCode.badInput);
        }
        if (!audit) throw new CliError(`ferry.audit on the target holds nothing for "${migrationId}"`, ExitCode.unknownMigration);
        output(options.format === 'json' ? `${JSON.stringify({ rebuiltFromAudit: true, ...audit }, null, 2)}\n` : auditReportModule().auditMarkdown(audit));
      };
      if (options.fromAudit) return fromAudit();
      await withClient(settingsOf(command), async (client) => {
        let report;
        try {
          report = await migrationsModule().migrationReport(client, migrationId);
        } catch (error) {
          // Past the namespace's retention, the audit on the target is what remains.
          if (error instanceof migrationsModule().UnknownMigrationError && options.connection) return fromAudit();
          throw error;
        }
        if (!report.status) throw new CliError(`migration ${migrationId} ${report.runState} before it could report: ${report.failure}`, ExitCode.failed);
        const record = reportModule().migrationRecord(report.status, await checksModule().laterChecks(client, migrationId));
        output(options.format === 'json' ? `${JSON.stringify(record, null, 2)}\n` : options.format === 'html' ? reportHtmlModule().recordHtml(record) : reportModule().recordMarkdown(record));
      });
    });

  program
    .command('list')
    .description('List migrations with their phase and progress (running ones; --all for finished ones too).')
    .option('--all', 'include finished migrations', false)
    .option('--limit <n>', 'at most this many', '50')
    .option('--plan <name>', 'only migrations of this plan')
    .option('--phase <phase>', 'only migrations in this phase (e.g. awaiting-approval)')
    .option('--target <schema.table>', 'only migrations into this table')
    .option('--json', 'print as JSON', false)
    .action(async (options: { all: boolean; limit: string; json: boolean; plan?: string; phase?: string; target?: string }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const listings = await listModule().listMigrationRows(client, { ...options, limit: wholeNumber('--limit', options.limit) });
        if (options.json) console.log(JSON.stringify(listings, null, 2));
        else if (listings.length === 0) console.log(options.all ? 'no migrations' : 'no running migrations (--all shows finished ones)');
        else console.log(listModule().formatListingTable(listings));
      });
    });

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
    .action(async (migrationId: string, options: { sample?: string; by?: string; repair: boolean; force: boolean; json: boolean }, command: Command) => {
      const samplePercent = options.sample === undefined ? undefined : Number(options.sample.replace(/%$/, ''));
      if (samplePercent !== undefined && !(samplePercent > 0 && samplePercent <= 100)) {
        throw new CliError(`--sample must be a percentage above 0 and at most 100, not "${options.sample}"`, ExitCode.badInput);
      }
      if (options.force && !options.repair) throw new CliError('--force goes with --repair', ExitCode.badInput);
      await withClient(settingsOf(command), async (client) => {
        const { runState, taskQueue } = await migrationsModule().runStateOf(client, migrationId);
        if (runState === 'running') {
          const summary = await migrationsModule().verifyMigration(client, migrationId, { samplePercent, by: requestedBy(options.by) });
          say(options.json, { migrationId, ...summary }, renderModule().formatVerification(summary));
          if (!summary.clean) process.exitCode = ExitCode.failed;
          return;
        }
        const migration = await checksModule().endedMigration(client, migrationId, taskQueue, runState);
        const run = await checksModule().checkEndedMigration(
          client,
          migration,
          { samplePercent: samplePercent ?? null, repair: options.repair, force: options.force, by: requestedBy(options.by) },
          (checkId) => console.error(`migration ${migrationId} is ${migration.status.phase}; checking it as ${checkId}`),
        );
        say(options.json, run, renderModule().formatVerificationRun(run));
        const note = run.clean ? null : checksModule().staleSourceNote(migration.status);
        if (note && !options.json) console.log(note);
        if (!run.clean) process.exitCode = ExitCode.failed;
      });
    });

  program
    .command('mismatches')
    .description('The differences the latest verification found (of a running or an ended migration), by category, with examples; values as found, redacted unless --show-values.')
    .argument('<migration-id>', 'the migration')
    .option('--show-values', 'show the source and target values of the examples (they are then kept in the workflow history)', false)
    .option('--limit <n>', 'examples at most', '20')
    .option('--json', 'print as JSON', false)
    .action(async (migrationId: string, options: { showValues: boolean; limit: string; json: boolean }, command: Command) => {
      const limit = wholeNumber('--limit', options.limit);
      await withClient(settingsOf(command), async (client) => {
        const { runState, taskQueue } = await migrationsModule().runStateOf(client, migrationId);
        const report =
          runState === 'running'
            ? await migrationsModule().mismatches(client, migrationId, { showValues: options.showValues, limit })
            : await checksModule().endedMismatches(client, await checksModule().endedMigration(client, migrationId, taskQueue, runState), { showValues: options.showValues, limit });
        console.log(options.json ? JSON.stringify(report, null, 2) : renderModule().formatMismatches(report));
      });
    });

  program
    .command('init')
    .description("Scaffold a plan and the target table's DDL from a source table, read by a worker (which holds the connection variables). The plan copies every column as it is, for you to reshape; nothing is written to a database.")
    .argument('<source-table>', 'the source table, as schema.table or table (schema public)')
    .requiredOption('--connection <VARIABLE>', "the environment variable (on the workers) holding the source database's URL")
    .option('--target-connection <VARIABLE>', 'the target database\'s variable (default: the source\'s)')
    .option('--target-table <schema.table>', 'the new table (default: <source table>_v2 in the same schema)')
    .option('--name <plan-name>', 'the plan name (default: <source>-to-<target>)')
    .option('--key <column>', 'the key to walk (default: the primary key, or another NOT NULL unique column)')
    .option('--out <file>', 'write the plan here instead of printing it')
    .option('--ddl-out <file>', "write the target table's CREATE TABLE here instead of printing it")
    .option('--force', 'overwrite --out and --ddl-out files', false)
    .addHelpText('after', '\nExample:\n  ferry init public.users --connection APP_DATABASE_URL --target-table public.users_v2 --out users.yaml --ddl-out users_v2.sql')
    .action(async (sourceTable: string, options: Omit<InitOptions, 'table'>, command: Command) => {
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        let made: { plan: string; ddl: string };
        try {
          made = await initModule().scaffold(client, settings, { ...options, table: sourceTable });
        } catch (error) {
          if (error instanceof initModule().InitError) throw new CliError(error.message, ExitCode.badInput);
          throw error;
        }
        if (!options.out) console.log(made.plan);
        if (!options.ddlOut) console.log(made.ddl);
        if (options.out) console.log(`plan written to ${options.out}; check it with: ferry doctor ${options.out}`);
        if (options.ddlOut) console.log(`target DDL written to ${options.ddlOut}; run it on the target before \`ferry start --execute\``);
      });
    });

  program
    .command('doctor')
    .description("Check a plan against both databases from a worker (which holds the connection variables): tables, key, each transform column against its target column's type, and every privilege Ferry needs, printing the GRANT statements that are missing. Writes nothing.")
    .argument('<plan>', 'the migration plan (YAML)')
    .option('--json', 'print the checks as JSON', false)
    .action(async (planFile: string, options: { json: boolean }, command: Command) => {
      const plan = readPlan(planFile);
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        const report = await doctorModule().runDoctor(client, settings, plan);
        console.log(options.json ? JSON.stringify(report, null, 2) : doctorReportModule().formatDoctorReport(report));
        if (!report.ok) process.exitCode = ExitCode.failed;
      });
    });

  program
    .command('setup')
    .description("Prepare a Temporal namespace for Ferry: register Ferry's search attributes (FerryPlan, FerryPhase, FerryTarget) so migrations can be listed by plan, phase and target. Safe to run twice.")
    .option('--json', 'print the outcome as JSON', false)
    .action(async (options: { json: boolean }, command: Command) => {
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        let outcome: SetupOutcome;
        try {
          outcome = await setupModule().registerSearchAttributes(client, settings.namespace);
        } catch (error) {
          if (error instanceof setupModule().SearchAttributeConflictError) throw new CliError(error.message, ExitCode.badInput);
          throw new CliError(`cannot register search attributes in namespace ${settings.namespace}: ${rootMessage(error)} (it needs an operator's permission on the namespace)`, ExitCode.failed);
        }
        if (options.json) console.log(JSON.stringify(outcome));
        else {
          if (outcome.added.length) console.log(`registered in namespace ${outcome.namespace}: ${outcome.added.join(', ')}`);
          if (outcome.present.length) console.log(`already there: ${outcome.present.join(', ')}`);
        }
      });
    });

  program
    .command('worker')
    .description('Run a Ferry worker: it copies rows for the migrations on its task queue. Connection URLs come from its environment.')
    .option('--metrics-port <port>', "serve Ferry's metrics at /metrics on this port (default: FERRY_METRICS_PORT, or off)")
    .option('--sdk-metrics-port <port>', "serve the Temporal SDK's worker metrics (temporal_*) on this port (default: FERRY_SDK_METRICS_PORT, or off)")
    .option('--metrics-host <address>', 'the interface both metrics ports listen on; 0.0.0.0 for every one (default: FERRY_METRICS_HOST, or 127.0.0.1)')
    .option('--transform-dir <dir>', 'load transform modules only from this directory, links resolved (default: FERRY_TRANSFORM_DIR, or no modules at all)')
    .action(async (options: WorkerCommandOptions, command: Command) => {
      const { metricsPort, sdkMetricsPort } = metricsPortsOf(options);
      const metricsHost = options.metricsHost ?? process.env.FERRY_METRICS_HOST ?? metricsModule().DEFAULT_METRICS_HOST;
      const transformDir = transformDirOf(options);
      let payloadKeys: PayloadKey[];
      let logger: Logger;
      try {
        payloadKeys = payloadCodecModule().payloadKeysFromEnv();
        logger = loggingModule().createWorkerLogger(loggingModule().logOptionsFromEnv(process.env));
      } catch (error) {
        throw new CliError((error as Error).message, ExitCode.badInput);
      }
      const sdkMetricsUrl = workersModule().installWorkerRuntime({ logger, ...(sdkMetricsPort ? { sdkMetrics: { port: sdkMetricsPort, host: metricsHost } } : {}) });
      if (sdkMetricsUrl) logger.info(`temporal SDK metrics at ${sdkMetricsUrl}`);
      const worker = await workersModule().createFerryWorker({ temporal: settingsOf(command), metricsPort, metricsHost, transformDir, payloadKeys, log: (line) => logger.info(line) });
      logger.info(transformDir ? `transform modules load from ${transformDir} only` : 'transform modules are off (start with --transform-dir DIR to allow them)');
      logger.info(payloadKeys[0] ? `payloads to Temporal are encrypted (key id ${payloadKeys[0].id})` : 'payloads to Temporal are not encrypted (set FERRY_PAYLOAD_KEY to encrypt them)');
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => worker.shutdown());
      await worker.run();
    });

  addDevCommand(program, settingsOf);
  addCompletionCommand(program);
  applyHelpConventions(program);
  return program;
}

interface WorkerCommandOptions {
  metricsHost?: string;
  metricsPort?: string;
  sdkMetricsPort?: string;
  transformDir?: string;
}

/** The transform directory, as its real path; a directory that is not there is a mistake worth stopping for. */
function transformDirOf(options: WorkerCommandOptions): string | null {
  const given = options.transformDir ?? moduleTransformModule().transformDirFromEnv();
  if (!given) return null;
  const source = options.transformDir !== undefined ? '--transform-dir' : 'FERRY_TRANSFORM_DIR';
  try {
    const real = realpathSync(given);
    if (!statSync(real).isDirectory()) throw new Error('not a directory');
    return real;
  } catch {
    throw new CliError(`${source} ${given} is not a directory on this machine; create it or give another`, ExitCode.badInput);
  }
}

function metricsPortsOf(options: WorkerCommandOptions): { metricsPort: number; sdkMetricsPort: number } {
  const port = (text: string | undefined, source: string) => {
    try {
      return metricsModule().parseMetricsPort(text, source);
    } catch (error) {
      throw new CliError((error as Error).message, ExitCode.badInput);
    }
  };
  const metricsPort = options.metricsPort !== undefined ? port(options.metricsPort, '--metrics-port') : port(process.env.FERRY_METRICS_PORT, 'FERRY_METRICS_PORT');
  const sdkMetricsPort =
    options.sdkMetricsPort !== undefined ? port(options.sdkMetricsPort, '--sdk-metrics-port') : port(process.env.FERRY_SDK_METRICS_PORT, 'FERRY_SDK_METRICS_PORT');
  if (metricsPort && metricsPort === sdkMetricsPort) throw new CliError(`Ferry's and the SDK's metrics need two ports, not both ${metricsPort}`, ExitCode.badInput);
  return { metricsPort, sdkMetricsPort };
}

/** How long `start --execute` waits for the inspection and the target's claim. */
const INSPECTION_WAIT_MS = 5 * 60_000;

/**
 * Waits until a migration has passed its inspection and claimed its target (its phase moves on),
 * or fails with the run's own reason when it ended there instead.
 */
async function passedInspection(client: Client, migrationId: string): Promise<void> {
  const deadline = Date.now() + INSPECTION_WAIT_MS;
  for (;;) {
    const report = await migrationsModule().migrationReport(client, migrationId);
    if (report.runState !== 'running') {
      if (report.runState === 'completed' || report.runState === 'continued') return;
      throw new CliError(`migration ${migrationId} ${report.runState} before it started copying: ${report.failure ?? report.status?.phase ?? 'no reason given'}`, ExitCode.failed);
    }
    if (report.status && report.status.phase !== 'inspecting') return;
    if (Date.now() > deadline) throw new CliError(`migration ${migrationId} is still inspecting after ${INSPECTION_WAIT_MS / 60_000} minutes; follow it with ferry status`, ExitCode.failed);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface StartOptions {
  json: boolean;
  execute: boolean;
  rerun: boolean;
  /** false when --no-apps was given. */
  apps: boolean;
  showValues: boolean;
  id?: string;
  wait: boolean;
  detach: boolean;
  where?: string;
  keyRange?: string;
  sample?: string;
  partitionValues?: string;
}

/** The plan with the command line's subset options laid over its own subset, validated again. */
function withSubset(plan: Plan, options: StartOptions, origin: string): Plan {
  const subset: Record<string, unknown> = { ...plan.subset };
  if (options.where !== undefined) subset.where = options.where;
  if (options.keyRange !== undefined) {
    const match = /^(.*?)\.\.(.*)$/.exec(options.keyRange);
    if (!match) throw new CliError(`--key-range must look like FROM..TO (either side may be empty), not "${options.keyRange}"`, ExitCode.badInput);
    subset.keyRange = { ...(match[1] ? { from: match[1] } : {}), ...(match[2] ? { to: match[2] } : {}) };
  }
  if (options.sample !== undefined) {
    const percent = Number(options.sample.replace(/%$/, ''));
    if (!options.sample.trim() || !Number.isFinite(percent)) throw new CliError(`--sample must be a percentage, not "${options.sample}"`, ExitCode.badInput);
    subset.samplePercent = percent;
  }
  if (options.partitionValues !== undefined) subset.partitionValues = options.partitionValues.split(',').map((v) => v.trim()).filter(Boolean);
  return Object.keys(subset).length ? plansModule().validatePlan({ ...plan, subset }, origin) : plan;
}

interface ThrottleOptions {
  rowsPerSecond?: string;
  batchSize?: string;
  concurrency?: string;
  by?: string;
  reason?: string;
}

/** Whole numbers only: "5e3", "12abc" or "" are refused rather than guessed at. */
function wholeNumber(flag: string, text: string): number {
  if (!/^\s*-?\d+\s*$/.test(text)) throw new CliError(`refused: ${flag} must be a whole number, not "${text}"`, ExitCode.badInput);
  return Number(text);
}

function throttleChangeOf(options: ThrottleOptions): ThrottleChange {
  const change: ThrottleChange = { by: requestedBy(options.by) };
  if (options.reason) change.reason = options.reason;
  if (options.rowsPerSecond !== undefined) {
    change.rowsPerSecond = options.rowsPerSecond === 'unlimited' ? null : wholeNumber('--rows-per-second', options.rowsPerSecond);
  }
  if (options.batchSize !== undefined) change.batchSize = wholeNumber('--batch-size', options.batchSize);
  if (options.concurrency !== undefined) change.concurrency = wholeNumber('--concurrency', options.concurrency);
  return change;
}

const byHelp = 'a name to record beside your identity, e.g. when acting for someone (default: your identity, FERRY_OPERATOR or user@host)';

function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  // Errors that carry their own code (no worker: 4; a refused argument: 2).
  if (typeof (error as { exitCode?: unknown }).exitCode === 'number') return (error as { exitCode: number }).exitCode;
  if (error instanceof migrationsModule().RefusedError || error instanceof checksModule().CheckRefusedError) return ExitCode.badInput;
  if (error instanceof temporalConnectionModule().TemporalUnreachableError) return ExitCode.unreachable;
  if (error instanceof migrationsModule().NoWorkerError) return ExitCode.notApplied;
  if (error instanceof plansModule().InvalidPlanError) return ExitCode.badInput;
  if (error instanceof migrationsModule().UnknownMigrationError) return ExitCode.unknownMigration;
  return ExitCode.failed;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has already printed the help or the usage error.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
    }
    // Ferry's own errors say what to fix; an SDK's wrapper gives way to its root cause; anything else may carry a value, and is redacted.
    const ours =
      error instanceof CliError ||
      error instanceof migrationsModule().RefusedError ||
      error instanceof migrationsModule().NoWorkerError ||
      error instanceof temporalHealthModule().NoLiveWorkerError ||
      error instanceof plansModule().InvalidPlanError ||
      error instanceof migrationsModule().UnknownMigrationError ||
      // Ferry's own refusals carry the exit code they mean (help.ts, dev.ts).
      (error instanceof Error && typeof (error as { exitCode?: unknown }).exitCode === 'number' && !(error instanceof CommanderError));
    const sdk = ours ? null : temporalHealthModule().sdkErrorLine(error);
    console.error(`ferry: ${ours ? (error as Error).message : sdk ? (sdk.redact ? redactErrorText(sdk.message) : sdk.message) : redactErrorText(error)}`);
    return sdk ? sdk.exitCode : exitCodeOf(error);
  }
}

if (require.main === module) {
  void main(process.argv).then(exitWhenFlushed);
}
