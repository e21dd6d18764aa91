/** The ferry command line: operators start, watch and steer migrations from here. This file assembles the program; each command is a file of cli/commands/. */
import { Command, CommanderError, Option } from 'commander';
import { redactErrorText } from '../lib/errors';
import { addAbortCommand } from './commands/abort';
import { addApproveCommand } from './commands/approve';
import { addCompletionCommand } from './commands/completion';
import { addDevCommand } from './commands/dev';
import { addDoctorCommand } from './commands/doctor';
import { addFailuresCommand } from './commands/failures';
import { addInitCommand } from './commands/init';
import { addListCommand } from './commands/list';
import { addMismatchesCommand } from './commands/mismatches';
import { addPauseCommand } from './commands/pause';
import { addRejectCommand } from './commands/reject';
import { addReportCommand } from './commands/report';
import { addResumeCommand } from './commands/resume';
import { addRetryCommand } from './commands/retry';
import { addSetupCommand } from './commands/setup';
import { addStartCommand } from './commands/start';
import { addStatusCommand } from './commands/status';
import { addThrottleCommand } from './commands/throttle';
import { addVerifyCommand } from './commands/verify';
import { addWorkerCommand } from './commands/worker';
import { CliError } from './context';
import { ExitCode } from './exit-codes';
import { exitWhenFlushed } from './exit';
import { applyHelpConventions } from './help';
import { identityHelp } from './identity';
import { operatorModule, plansModule, temporalConnectionModule, temporalHealthModule } from './lazy';
import { packageVersion } from './version';

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

  // The order here is the order of `ferry --help`.
  for (const addCommand of [
    addStartCommand,
    addStatusCommand,
    addThrottleCommand,
    addPauseCommand,
    addResumeCommand,
    addFailuresCommand,
    addRetryCommand,
    addApproveCommand,
    addRejectCommand,
    addAbortCommand,
    addReportCommand,
    addListCommand,
    addVerifyCommand,
    addMismatchesCommand,
    addInitCommand,
    addDoctorCommand,
    addSetupCommand,
    addWorkerCommand,
    addDevCommand,
    addCompletionCommand,
  ]) {
    addCommand(program);
  }
  applyHelpConventions(program);
  return program;
}

function exitCodeOf(error: unknown): number {
  if (error instanceof CliError) return error.exitCode;
  // Errors that carry their own code (no worker: 4; a refused argument: 2).
  if (typeof (error as { exitCode?: unknown }).exitCode === 'number') return (error as { exitCode: number }).exitCode;
  const operator = operatorModule();
  if (error instanceof operator.RefusedError || error instanceof operator.CheckRefusedError) return ExitCode.badInput;
  if (error instanceof operator.NoLiveWorkerError) return ExitCode.unreachable;
  if (error instanceof temporalConnectionModule().TemporalUnreachableError) return ExitCode.unreachable;
  if (error instanceof operator.NoWorkerError || error instanceof operator.StartedWithoutWorkerError) return ExitCode.notApplied;
  if (error instanceof operator.MigrationAbortedError) return ExitCode.aborted;
  if (error instanceof plansModule().InvalidPlanError) return ExitCode.badInput;
  if (error instanceof operator.UnknownMigrationError) return ExitCode.unknownMigration;
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
      error instanceof operatorModule().OperatorError ||
      error instanceof plansModule().InvalidPlanError ||
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
