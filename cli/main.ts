/** The ferry command line: operators start, watch and steer migrations from here. */
import { Client, Connection } from '@temporalio/client';
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { InvalidPlanError, parsePlan, type Plan } from '../lib/plan';
import { temporalSettings, type TemporalSettings } from '../lib/settings';
import { createFerryWorker } from '../workers/worker';
import { ExitCode } from './exit-codes';
import { migrationReport, startMigration, UnknownMigrationError } from './migrations';
import { formatInspection, formatStatus, progressLine } from './render';

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

function readPlan(file: string): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read plan file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, ExitCode.badInput);
  }
  return parsePlan(text, file);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function buildProgram(): Command {
  const program = new Command('ferry')
    .description('Online data migrations and backfills for PostgreSQL, run as durable Temporal workflows.')
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
    .action(async (planFile: string, options: { execute: boolean; showValues: boolean; id?: string; wait: boolean }, command: Command) => {
      const plan = readPlan(planFile);
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        const handle = await startMigration(client, settings, plan, {
          execute: options.execute,
          showSampleValues: options.showValues,
          migrationId: options.id,
        });
        if (!options.execute) {
          console.log(`dry run ${handle.workflowId} (nothing is written)`);
          const status = await handle.result();
          console.log(formatInspection(status.inspection!));
          if (status.inspection!.problems.length > 0) {
            throw new CliError('the dry run found problems; fix them before running with --execute', ExitCode.failed);
          }
          console.log(`\nto copy for real: ferry start ${planFile} --execute`);
          return;
        }
        console.log(`started migration ${handle.workflowId}`);
        if (!options.wait) {
          console.log(`follow it with: ferry status ${handle.workflowId}`);
          return;
        }
        for (;;) {
          const report = await migrationReport(client, handle.workflowId);
          if (report.runState !== 'running') {
            console.log(formatStatus(report));
            if (report.runState !== 'completed') process.exitCode = ExitCode.failed;
            return;
          }
          if (report.status) console.log(progressLine(report.status));
          await sleep(2000);
        }
      });
    });

  program
    .command('status')
    .description("Show a migration's phase, progress and throttle.")
    .argument('<migration-id>', 'the id `ferry start` printed')
    .option('--json', 'print the status as JSON', false)
    .action(async (migrationId: string, options: { json: boolean }, command: Command) => {
      await withClient(settingsOf(command), async (client) => {
        const report = await migrationReport(client, migrationId);
        console.log(options.json ? JSON.stringify(report, null, 2) : formatStatus(report));
        if (report.runState === 'failed' || report.runState === 'terminated' || report.runState === 'timed-out') {
          process.exitCode = ExitCode.failed;
        }
      });
    });

  program
    .command('worker')
    .description('Run a Ferry worker: it copies rows for the migrations on its task queue. Connection URLs come from its environment.')
    .action(async (_options: unknown, command: Command) => {
      const worker = await createFerryWorker({ temporal: settingsOf(command) });
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => worker.shutdown());
      await worker.run();
    });

  return program;
}

function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
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
    console.error(`ferry: ${error instanceof Error ? error.message : String(error)}`);
    return exitCodeOf(error);
  }
}

if (require.main === module) {
  void main(process.argv).then((code) => process.exit(code));
}
