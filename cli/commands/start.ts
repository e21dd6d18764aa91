/** `ferry start`: a dry run of a plan, or with --execute a migration, waited for until it passed its inspection (or followed to its end with --wait). */
import type { Command } from 'commander';
import type { Plan } from '../../lib/plan';
import { CliError, readPlan, settingsOf, watchMode, withClient } from '../context';
import { ExitCode } from '../exit-codes';
import { operatorIdentity } from '../identity';
import { operatorModule, plansModule, renderModule, watchModule } from '../lazy';
import { statusExitCode } from '../outcome';
import { say } from '../output';

export interface StartOptions {
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

export function addStartCommand(program: Command): void {
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
      refuseContradictions(options);
      const plan = withSubset(readPlan(planFile), options, planFile);
      const settings = settingsOf(command);
      await withClient(settings, async (client) => {
        const operator = operatorModule();
        if (options.id !== undefined) operator.refuseBadMigrationId(options.id);
        // With no worker on the queue the run would wait there and begin whenever one comes.
        await operator.requireWorkerOnQueue(client, settings.taskQueue, options.id ?? plan.name);
        const handle = await operator.startMigration(client, settings, plan, {
          execute: options.execute,
          showSampleValues: options.showValues,
          migrationId: options.id,
          rerun: options.rerun,
          noApps: options.apps === false,
          startedBy: operatorIdentity(),
        });
        if (!options.execute) {
          if (!options.json) console.log(`dry run ${handle.workflowId} (nothing is written)`);
          // Bounded: a dry run no worker serves is withdrawn and said so, not waited for ever.
          await operator.awaitInspection(client, handle.workflowId, operator.INSPECTION_WAIT_MS, true);
          const status = await handle.result();
          say(options.json, { migrationId: handle.workflowId, dryRun: true, inspection: status.inspection }, renderModule().formatInspection(status.inspection!));
          if (status.inspection!.problems.length > 0) {
            throw new CliError('the dry run found problems; fix them before running with --execute', ExitCode.failed);
          }
          if (!options.json) console.log(`\nto copy for real: ${executeCommand(planFile, options)}`);
          return;
        }
        if (!options.wait) {
          // "Started" is said only of a run that got past its inspection and holds its target.
          if (!options.detach) await operator.awaitInspection(client, handle.workflowId);
          say(
            options.json,
            { migrationId: handle.workflowId, started: true, inspected: !options.detach },
            `started migration ${handle.workflowId}${options.detach ? ' (not waiting for its inspection: --detach)' : ''}\nfollow it with: ferry status ${handle.workflowId}`,
          );
          return;
        }
        if (!options.json) console.log(`started migration ${handle.workflowId}`);
        const report = await watchModule().watchMigration(client, handle.workflowId, { mode: watchMode(options.json) });
        if (!options.json) say(false, report, renderModule().formatStatus(report));
        if (report.runState !== 'completed' || statusExitCode(report) !== ExitCode.ok) process.exitCode = statusExitCode(report) || ExitCode.failed;
      });
    });
}

/** Options that say one thing and its opposite, or that only an --execute run has: refused before anything is read or sent. */
function refuseContradictions(options: Pick<StartOptions, 'execute' | 'wait' | 'detach'>): void {
  if (options.wait && options.detach) throw new CliError('--wait follows the migration to its end and --detach returns at once: give one of them', ExitCode.badInput);
  for (const [flag, given] of [['--wait', options.wait], ['--detach', options.detach]] as const) {
    if (given && !options.execute) {
      throw new CliError(`${flag} goes with --execute: without it, ferry start is a dry run, which writes nothing and ends by itself; nothing was started`, ExitCode.badInput);
    }
  }
}

/**
 * The command that runs for real what a dry run previewed: the same plan, id and subset. Without
 * them, the line an operator copies would copy the whole table where they previewed a part.
 */
export function executeCommand(planFile: string, options: Omit<StartOptions, 'json' | 'execute' | 'showValues' | 'wait' | 'detach'>): string {
  const words = ['ferry', 'start', shellWord(planFile), '--execute'];
  const valued: [string, string | undefined][] = [
    ['--id', options.id],
    ['--where', options.where],
    ['--key-range', options.keyRange],
    ['--sample', options.sample],
    ['--partition-values', options.partitionValues],
  ];
  for (const [flag, value] of valued) if (value !== undefined) words.push(flag, shellWord(value));
  if (options.rerun) words.push('--rerun');
  if (options.apps === false) words.push('--no-apps');
  return words.join(' ');
}

/** A word a POSIX shell reads back as `value`: as it is when it holds nothing the shell treats specially, else single-quoted. */
function shellWord(value: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
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
