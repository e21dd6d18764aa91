/** The ferry command line: operators start, watch and steer migrations from here. */
import { Client, Connection } from '@temporalio/client';
import { Command, CommanderError, Option } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import { InvalidPlanError, parsePlan, validatePlan, type Plan } from '../lib/plan';
import { temporalSettings, type TemporalSettings } from '../lib/settings';
import { DEFAULT_METRICS_HOST, parseMetricsPort } from '../workers/metrics';
import { createFerryWorker, installSdkMetrics } from '../workers/worker';
import { ExitCode } from './exit-codes';
import { exitWhenFlushed } from './exit';
import {
  mismatches,
  verifyMigration,
  abortMigration,
  approveGate,
  changeThrottle,
  rejectGate,
  migrationReport,
  NoWorkerError,
  pauseMigration,
  RefusedError,
  resumeMigration,
  retryFailures,
  startMigration,
  UnknownMigrationError,
} from './migrations';
import { formatFailures, formatInspection, formatMismatches, formatStatus, formatThrottle, formatVerification } from './render';
import { migrationRecord, recordMarkdown } from './report';
import { recordHtml } from './report-html';
import { endedBadly, watchMigration } from './watch';
import { statusExitCode } from './outcome';
import { addDevCommand } from './dev';
import { addCompletionCommand, applyHelpConventions } from './help';
import { say } from './output';
import { formatListingTable, listMigrationRows } from './list';
import { formatKnownWithoutWorker, NoLiveWorkerError, sdkErrorLine } from './temporal-health';
import os from 'node:os';
import path from 'node:path';
import type { ThrottleChange } from '../lib/throttle';

/** An error the CLI reports in one line, with the exit code scripts see. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface GlobalOptions {
  address?: string;
  namespace?: string;
  taskQueue?: string;
}

function settingsOf(command: Command): TemporalSettings {
  const options = command.optsWithGlobals<GlobalOptions>();
  return temporalSettings(process.env, {
    address: options.address,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
  });
}

async function withClient<T>(settings: TemporalSettings, use: (client: Client) => Promise<T>): Promise<T> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: settings.address, connectTimeout: 5000 });
  } catch (error) {
    throw new CliError(
      `cannot reach Temporal at ${settings.address} (${(error as Error).message}); start it, or pass --address / set TEMPORAL_ADDRESS`,
      ExitCode.unreachable,
    );
  }
  try {
    return await use(new Client({ connection, namespace: settings.namespace }));
  } finally {
    await connection.close();
  }
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

function readPlan(file: string): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read plan file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, ExitCode.badInput);
  }
  return parsePlan(text, file);
}

export function buildProgram(): Command {
  const program = new Command('ferry')
    .description('Online data migrations and backfills for PostgreSQL, run as durable Temporal workflows.')
    .version(packageVersion(), '-V, --version', 'print the version of ferry')
    .addOption(new Option('--address <host:port>', 'Temporal frontend address (default: TEMPORAL_ADDRESS or localhost:7233)'))
    .addOption(new Option('--namespace <name>', 'Temporal namespace (default: TEMPORAL_NAMESPACE or default)'))
    .addOption(new Option('--task-queue <name>', 'task queue of the Ferry workers (default: FERRY_TASK_QUEUE or ferry)'))
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
    .option('--where <sql>', "copy only source rows matching this SQL condition (e.g. \"created_at > now() - interval '1 day'\")")
    .option('--key-range <from..to>', 'copy only keys from..to, both included (either side may be empty)')
    .option('--sample <percent>', 'copy a deterministic sample of about this percentage of keys')
    .option('--partition-values <values>', 'copy only these comma-separated values of shards.partitionColumn')
    .option('--rerun', 'migrate into a target that already holds a finished migration', false)
    .option('--json', 'print the outcome as JSON (the inspection, the id started, or with --wait the final status)', false)
    .action(async (planFile: string, options: StartOptions, command: Command) => {
      const plan = withSubset(readPlan(planFile), options, planFile);
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        const handle = await startMigration(client, settings, plan, {
          execute: options.execute,
          showSampleValues: options.showValues,
          migrationId: options.id,
          rerun: options.rerun,
        });
        if (!options.execute) {
          if (!options.json) console.log(`dry run ${handle.workflowId} (nothing is written)`);
          const status = await handle.result();
          say(options.json, { migrationId: handle.workflowId, dryRun: true, inspection: status.inspection }, formatInspection(status.inspection!));
          if (status.inspection!.problems.length > 0) {
            throw new CliError('the dry run found problems; fix them before running with --execute', ExitCode.failed);
          }
          if (!options.json) console.log(`\nto copy for real: ferry start ${planFile} --execute`);
          return;
        }
        if (!options.wait) {
          say(options.json, { migrationId: handle.workflowId, started: true }, `started migration ${handle.workflowId}\nfollow it with: ferry status ${handle.workflowId}`);
          return;
        }
        if (!options.json) console.log(`started migration ${handle.workflowId}`);
        const report = await watchMigration(client, handle.workflowId, { mode: options.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain' });
        if (!options.json) say(false, report, formatStatus(report));
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
          const report = await watchMigration(client, migrationId, { mode });
          if (mode === 'plain') say(false, report, formatStatus(report));
          if (endedBadly(report)) process.exitCode = statusExitCode(report);
          return;
        }
        const report = await migrationReport(client, migrationId).catch((error: unknown) => {
          // What Temporal records is still true with no worker: show it, then fail with exit 4.
          if (error instanceof NoLiveWorkerError) console.log(options.json ? JSON.stringify({ live: false, ...error.known }, null, 2) : formatKnownWithoutWorker(error.known));
          throw error;
        });
        say(options.json, report, formatStatus(report));
        process.exitCode = statusExitCode(report);
      });
    });

  const operatorOptions = (command: Command) =>
    command
      .option('--by <name>', 'who is asking, for the record (default: your user name)', defaultOperator())
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
      const throttle = await changeThrottle(client, migrationId, change);
      say(options.json, { migrationId, throttle }, `throttle of ${migrationId} is now: ${formatThrottle(throttle)}`);
    });
  });

  operatorOptions(
    program
      .command('pause')
      .description('Pause a migration: running batches finish, no new ones start. Taken even while no worker runs.')
      .argument('<migration-id>', 'the migration'),
  ).action(async (migrationId: string, note: { by: string; reason?: string }, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      await pauseMigration(client, migrationId, note);
      console.log(`pause requested for ${migrationId}; \`ferry status ${migrationId}\` shows when it has taken effect`);
    });
  });

  operatorOptions(
    program.command('resume').description('Resume a paused migration.').argument('<migration-id>', 'the migration'),
  ).action(async (migrationId: string, note: { by: string; reason?: string }, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      const checked = await resumeMigration(client, migrationId, note);
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
        const report = await migrationReport(client, migrationId);
        if (!report.status) throw new CliError(`migration ${migrationId} ${report.runState}: ${report.failure}`, ExitCode.failed);
        const { rowsFailed, unresolvedFailures, failuresFixed, recentFailures } = report.status;
        console.log(
          options.json
            ? JSON.stringify({ rowsFailed, unresolvedFailures, failuresFixed, recentFailures }, null, 2)
            : formatFailures(report.status),
        );
      });
    });

  operatorOptions(
    program
      .command('retry')
      .description('Copy the failed rows of a migration again, after fixing their cause.')
      .argument('<migration-id>', 'the migration')
      .option('--json', 'print the outcome as JSON', false),
  ).action(async (migrationId: string, options: { by: string; reason?: string; json: boolean }, command: Command) => {
    await withClient(settingsOf(command), async (client) => {
      const outcome = await retryFailures(client, migrationId, { by: options.by, ...(options.reason ? { reason: options.reason } : {}) });
      say(options.json, { migrationId, ...outcome }, `retried ${outcome.retried} rows: ${outcome.fixed} copied, ${outcome.stillFailing} still failing`);
      if (outcome.stillFailing > 0) process.exitCode = ExitCode.failed;
    });
  });

  program
    .command('approve')
    .description('Approve the gate a migration waits at. Refused when that gate is not the one waiting, or verification is not clean (unless --force, which is recorded).')
    .argument('<migration-id>', 'the migration')
    .requiredOption('--gate <name>', 'the gate: cutover-reads, stop-old-writes or cleanup')
    .requiredOption('--by <name>', 'who approves, for the record')
    .option('--note <text>', 'what you checked')
    .option('--force', 'approve although verification is not clean (recorded)', false)
    .option('--json', 'print the outcome as JSON', false)
    .action(async (migrationId: string, options: { gate: string; by: string; note?: string; force: boolean; json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const outcome = await approveGate(client, migrationId, { gate: options.gate, by: options.by, note: options.note, force: options.force });
        say(
          options.json,
          { migrationId, approvedBy: options.by, ...outcome },
          `gate ${outcome.gate} of ${migrationId} approved by ${options.by}${outcome.forced ? ' (forced past unclean verification; recorded)' : ''}`,
        );
      });
    });

  program
    .command('reject')
    .description('Reject the gate a migration waits at: the migration aborts and rolls its flags back.')
    .argument('<migration-id>', 'the migration')
    .requiredOption('--gate <name>', 'the gate it waits at')
    .requiredOption('--by <name>', 'who rejects, for the record')
    .requiredOption('--reason <text>', 'why')
    .action(async (migrationId: string, options: { gate: string; by: string; reason: string }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        await rejectGate(client, migrationId, options);
        console.log(`gate ${options.gate} of ${migrationId} rejected; the migration aborts (\`ferry status ${migrationId}\`)`);
      });
    });

  program
    .command('abort')
    .description('Abort a migration: stop copying, roll the flags back to the last state that loses no write, record why.')
    .argument('<migration-id>', 'the migration')
    .requiredOption('--reason <text>', 'why, for the record')
    .option('--by <name>', 'who aborts (default: your user name)', defaultOperator())
    .option('--json', 'print the abort record as JSON', false)
    .action(async (migrationId: string, options: { by: string; reason: string; json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const record = await abortMigration(client, migrationId, { by: options.by, reason: options.reason });
        say(options.json, { migrationId, aborted: true, abort: record }, `migration ${migrationId} aborted${record ? ` in phase ${record.phaseReached}: ${record.flagsNote}` : ''}`);
      });
    });

  program
    .command('report')
    .description('The record of a migration (at the end, or at any time): phases, decisions, rows, verification, what is left to do by hand.')
    .argument('<migration-id>', 'the migration')
    .option('--format <format>', 'markdown, json, or html (one self-contained page with charts)', 'markdown')
    .option('--out <file>', 'write it to a file instead of standard output')
    .action(async (migrationId: string, options: { format: string; out?: string }, command: Command) => {
      if (!['markdown', 'json', 'html'].includes(options.format)) throw new CliError(`--format must be markdown, json or html, not "${options.format}"`, ExitCode.badInput);
      await withClient(settingsOf(command), async (client) => {
        const report = await migrationReport(client, migrationId);
        if (!report.status) throw new CliError(`migration ${migrationId} ${report.runState} before it could report: ${report.failure}`, ExitCode.failed);
        const record = migrationRecord(report.status);
        const text = options.format === 'json' ? `${JSON.stringify(record, null, 2)}\n` : options.format === 'html' ? recordHtml(record) : recordMarkdown(record);
        if (options.out) {
          writeFileSync(options.out, text);
          console.log(`wrote ${options.out}`);
        } else process.stdout.write(text);
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
        const listings = await listMigrationRows(client, { ...options, limit: wholeNumber('--limit', options.limit) });
        if (options.json) console.log(JSON.stringify(listings, null, 2));
        else if (listings.length === 0) console.log(options.all ? 'no migrations' : 'no running migrations (--all shows finished ones)');
        else console.log(formatListingTable(listings));
      });
    });

  program
    .command('verify')
    .description('Verify a migration again now (compare, repair, compare), e.g. at a gate; or a quick sampled check.')
    .argument('<migration-id>', 'the migration')
    .option('--sample <percent>', 'check a deterministic sample of about this percentage of keys')
    .option('--by <name>', 'who asks, for the record (default: your user name)', defaultOperator())
    .option('--json', 'print what verification found as JSON', false)
    .action(async (migrationId: string, options: { sample?: string; by: string; json: boolean }, command: Command) => {
      const samplePercent = options.sample === undefined ? undefined : Number(options.sample.replace(/%$/, ''));
      if (samplePercent !== undefined && !(samplePercent > 0 && samplePercent <= 100)) {
        throw new CliError(`--sample must be a percentage above 0 and at most 100, not "${options.sample}"`, ExitCode.badInput);
      }
      await withClient(settingsOf(command), async (client) => {
        const summary = await verifyMigration(client, migrationId, { samplePercent, by: options.by });
        say(options.json, { migrationId, ...summary }, formatVerification(summary));
        if (!summary.clean) process.exitCode = ExitCode.failed;
      });
    });

  program
    .command('mismatches')
    .description('The differences the latest verification found, by category, with examples (values redacted unless --show-values).')
    .argument('<migration-id>', 'the migration')
    .option('--show-values', 'show the source and target values of the examples (they are then kept in the workflow history)', false)
    .option('--limit <n>', 'examples at most', '20')
    .option('--json', 'print as JSON', false)
    .action(async (migrationId: string, options: { showValues: boolean; limit: string; json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const report = await mismatches(client, migrationId, { showValues: options.showValues, limit: wholeNumber('--limit', options.limit) });
        console.log(options.json ? JSON.stringify(report, null, 2) : formatMismatches(report));
      });
    });

  program
    .command('worker')
    .description('Run a Ferry worker: it copies rows for the migrations on its task queue. Connection URLs come from its environment.')
    .option('--metrics-port <port>', "serve Ferry's metrics at /metrics on this port (default: FERRY_METRICS_PORT, or off)")
    .option('--sdk-metrics-port <port>', "serve the Temporal SDK's worker metrics (temporal_*) on this port (default: FERRY_SDK_METRICS_PORT, or off)")
    .option('--metrics-host <address>', 'the interface both metrics ports listen on; 0.0.0.0 for every one (default: FERRY_METRICS_HOST, or 127.0.0.1)')
    .action(async (options: WorkerCommandOptions, command: Command) => {
      const { metricsPort, sdkMetricsPort } = metricsPortsOf(options);
      const metricsHost = options.metricsHost ?? process.env.FERRY_METRICS_HOST ?? DEFAULT_METRICS_HOST;
      if (sdkMetricsPort) console.log(`temporal SDK metrics at ${installSdkMetrics(sdkMetricsPort, metricsHost)}`);
      const worker = await createFerryWorker({ temporal: settingsOf(command), metricsPort, metricsHost });
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
}

function metricsPortsOf(options: WorkerCommandOptions): { metricsPort: number; sdkMetricsPort: number } {
  const port = (text: string | undefined, source: string) => {
    try {
      return parseMetricsPort(text, source);
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

interface StartOptions {
  json: boolean;
  execute: boolean;
  rerun: boolean;
  showValues: boolean;
  id?: string;
  wait: boolean;
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
  return Object.keys(subset).length ? validatePlan({ ...plan, subset }, origin) : plan;
}

interface ThrottleOptions {
  rowsPerSecond?: string;
  batchSize?: string;
  concurrency?: string;
  by: string;
  reason?: string;
}

/** Whole numbers only: "5e3", "12abc" or "" are refused rather than guessed at. */
function wholeNumber(flag: string, text: string): number {
  if (!/^\s*-?\d+\s*$/.test(text)) throw new CliError(`refused: ${flag} must be a whole number, not "${text}"`, ExitCode.badInput);
  return Number(text);
}

function throttleChangeOf(options: ThrottleOptions): ThrottleChange {
  const change: ThrottleChange = { by: options.by };
  if (options.reason) change.reason = options.reason;
  if (options.rowsPerSecond !== undefined) {
    change.rowsPerSecond = options.rowsPerSecond === 'unlimited' ? null : wholeNumber('--rows-per-second', options.rowsPerSecond);
  }
  if (options.batchSize !== undefined) change.batchSize = wholeNumber('--batch-size', options.batchSize);
  if (options.concurrency !== undefined) change.concurrency = wholeNumber('--concurrency', options.concurrency);
  return change;
}

function defaultOperator(): string {
  try {
    return process.env.FERRY_OPERATOR ?? os.userInfo().username;
  } catch {
    return 'unknown';
  }
}

function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  // Errors that carry their own code (no worker: 4; a refused argument: 2).
  if (typeof (error as { exitCode?: unknown }).exitCode === 'number') return (error as { exitCode: number }).exitCode;
  if (error instanceof RefusedError) return ExitCode.badInput;
  if (error instanceof NoWorkerError) return ExitCode.notApplied;
  if (error instanceof InvalidPlanError) return ExitCode.badInput;
  if (error instanceof UnknownMigrationError) return ExitCode.unknownMigration;
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
    const sdk = sdkErrorLine(error);
    console.error(`ferry: ${sdk ? sdk.message : error instanceof Error ? error.message : String(error)}`);
    return sdk ? sdk.exitCode : exitCodeOf(error);
  }
}

if (require.main === module) {
  void main(process.argv).then(exitWhenFlushed);
}
