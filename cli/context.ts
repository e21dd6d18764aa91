/**
 * What every command shares: its connection settings, a Temporal client for the length of the
 * command, the plan it reads, the options an operator's request takes, and the error the CLI
 * reports in one line with its exit code. Loads nothing heavy until a command runs.
 */
import type { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { rootMessage } from '../lib/errors';
import type { Plan } from '../lib/plan';
import type { TemporalSettings } from '../lib/settings';
import type { TemporalConnectionFlags } from '../workers/temporal-connection';
import { ExitCode } from './exit-codes';
import { operatorIdentity } from './identity';
import { payloadCodecModule, plansModule, temporalClientModule, temporalConnectionModule, tracingModule } from './lazy';

/** An error the CLI reports in one line, with the exit code scripts see. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** The connection flags every command takes, spelled as the Temporal CLI spells them. */
type GlobalOptions = TemporalConnectionFlags;

export function settingsOf(command: Command): TemporalSettings {
  try {
    return temporalConnectionModule().resolveTemporal(process.env, command.optsWithGlobals<GlobalOptions>());
  } catch (error) {
    if (error instanceof temporalConnectionModule().TemporalConfigError) throw new CliError(error.message, ExitCode.badInput);
    throw error;
  }
}

/** Runs `use` with a client of Temporal acting as the operator's identity; the connection is closed after. */
export async function withClient<T>(settings: TemporalSettings, use: (client: Client) => Promise<T>): Promise<T> {
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

export function readPlan(file: string): Plan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read plan file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, ExitCode.badInput);
  }
  return plansModule().parsePlan(text, file);
}

/** Whole numbers only: "5e3", "12abc" or "" are refused rather than guessed at. */
export function wholeNumber(flag: string, text: string): number {
  if (!/^\s*-?\d+\s*$/.test(text)) throw new CliError(`refused: ${flag} must be a whole number, not "${text}"`, ExitCode.badInput);
  return Number(text);
}

/** Plain decimals only ("2.5"): "1e3", "12abc" or "" are refused rather than guessed at; the bounds are the workflow's to check. */
export function decimalNumber(flag: string, text: string): number {
  if (!/^\s*-?\d+(\.\d+)?\s*$/.test(text)) throw new CliError(`refused: ${flag} must be a number, not "${text}"`, ExitCode.badInput);
  return Number(text);
}

/** How `ferry status` and `ferry start --wait` follow a migration: redrawn on a terminal, one line a refresh elsewhere, JSON lines with --json. */
export function watchMode(json: boolean): 'json' | 'tty' | 'plain' {
  return json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
}

export const byHelp = 'a name to record beside your identity, e.g. when acting for someone (default: your identity, FERRY_OPERATOR or user@host)';

/** What an operator's note on a request records. */
export interface NoteOptions {
  by?: string;
  reason?: string;
}

/** Adds --by and --reason, which every request that changes a migration takes. */
export function withNoteOptions(command: Command): Command {
  return command.option('--by <name>', byHelp).option('--reason <text>', 'why, for the record');
}
