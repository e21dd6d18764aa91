/**
 * The differential property, run longer than CI runs it: each run generates a table, migrates it
 * through one path and shard kind with a live writer, and checks Ferry's verification against an
 * independent comparator. On servers of its own. Prints the seed and counterexample of every
 * failure, then what it generated and how long it took; exits 1 on any failure.
 *
 *   npm run fuzz -- [--runs N] [--seed S] [--rows MIN..MAX] [--paths a,b] [--shards a,b] [--with-known-defects]
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { temporalSettings } from '../lib/settings';
import { KNOWN_DEFECTS, passingCases, pathsInUse, SHARD_KINDS, type DifferentialCase } from '../test/support/differential/cases';
import { TRANSFORM_PATHS, type TransformPath } from '../test/support/differential/paths';
import { checkCase, type PropertyResult } from '../test/support/differential/property';
import { CONNECTIONS, type DifferentialServers } from '../test/support/differential/run-case';
import type { ShardKind } from '../test/support/differential/table-spec';
import { prepareDatabase } from '../test/support/differential/tables';
import { createFerryWorker, workflowsPath } from '../workers/worker';
import { startPostgres } from './services/postgres';
import { startTemporal } from './services/temporal';

interface Args {
  runs: number;
  seed: number;
  minRows: number;
  maxRows: number;
  paths: TransformPath[];
  shards: ShardKind[];
  withKnownDefects: boolean;
}

const USAGE = 'usage: npm run fuzz -- [--runs N] [--seed S] [--rows MIN..MAX] [--paths a,b] [--shards a,b] [--with-known-defects]';

function parseArgs(argv: string[]): Args {
  const args: Args = { runs: 20, seed: Date.now() % 1_000_000_000, minRows: 20, maxRows: 150, paths: pathsInUse(), shards: [...SHARD_KINDS], withKnownDefects: false };
  const listOf = <T extends string>(name: string, value: string | undefined, known: readonly T[]): T[] => {
    const items = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = items.filter((i) => !known.includes(i as T));
    if (items.length === 0 || unknown.length > 0) throw new Error(`${name} takes a comma-separated list of ${known.join(', ')}; unknown: ${unknown.join(', ') || '(empty)'}`);
    return items as T[];
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = argv[i + 1];
    const whole = (name: string, min: number) => {
      if (!value || !/^\d+$/.test(value) || Number(value) < min) throw new Error(`${name} needs a whole number of at least ${min}, not "${value ?? ''}"`);
      i += 1;
      return Number(value);
    };
    if (flag === '--runs') args.runs = whole('--runs', 1);
    else if (flag === '--seed') args.seed = whole('--seed', 0);
    else if (flag === '--rows') {
      const match = /^(\d+)\.\.(\d+)$/.exec(value ?? '');
      if (!match || Number(match[1]) < 1 || Number(match[1]) > Number(match[2])) throw new Error(`--rows takes MIN..MAX (e.g. 20..150), not "${value ?? ''}"`);
      [args.minRows, args.maxRows] = [Number(match[1]), Number(match[2])];
      i += 1;
    } else if (flag === '--paths') {
      args.paths = listOf('--paths', value, TRANSFORM_PATHS);
      if (args.paths.some((p) => !pathsInUse().includes(p))) throw new Error('--paths: js-one-to-many needs lineage; turn on ONE_TO_MANY_LINEAGE in test/support/differential/cases.ts');
      i += 1;
    } else if (flag === '--shards') {
      args.shards = listOf('--shards', value, SHARD_KINDS);
      i += 1;
    } else if (flag === '--with-known-defects') args.withKnownDefects = true;
    else throw new Error(`unknown argument ${flag}; ${USAGE}`);
  }
  return args;
}

/** The cases to draw from: known defects' hazards left out unless asked for; NULL partitions let in (refused by design). */
function casesFor(args: Args): DifferentialCase[] {
  return passingCases(args.paths)
    .filter((c) => args.shards.includes(c.shardKind))
    .map((c) => ({ ...c, excluded: args.withKnownDefects ? [] : c.excluded.filter((h) => h !== 'null-partition') }));
}

function replayCommand(args: Args, seed: number): string {
  const flags = [`--seed ${seed}`, '--runs 1', `--rows ${args.minRows}..${args.maxRows}`];
  if (args.paths.join() !== pathsInUse().join()) flags.push(`--paths ${args.paths.join(',')}`);
  if (args.shards.join() !== SHARD_KINDS.join()) flags.push(`--shards ${args.shards.join(',')}`);
  if (args.withKnownDefects) flags.push('--with-known-defects');
  return `npm run fuzz -- ${flags.join(' ')}`;
}

function summary(args: Args, results: PropertyResult[], seconds: number): Record<string, unknown> {
  const outcomes = results.flatMap((r) => r.outcomes.map((o) => ({ ...o, case: r.case })));
  const count = <T extends string>(items: T[]) => items.reduce<Record<string, number>>((n, k) => ({ ...n, [k]: (n[k] ?? 0) + 1 }), {});
  return {
    seed: args.seed,
    runs: results.length,
    failed: results.filter((r) => r.failure).length,
    refusedByDesign: outcomes.filter((o) => o.outcome.refused).length,
    sourceRows: outcomes.reduce((n, o) => n + o.outcome.rows, 0),
    writerOpsApplied: outcomes.reduce((n, o) => n + o.outcome.writerOpsApplied, 0),
    damageApplied: outcomes.reduce((n, o) => n + o.outcome.damageApplied, 0),
    reverifiedAfterRace: outcomes.filter((o) => o.outcome.reverifiedAfterRace).length,
    cases: count(outcomes.map((o) => o.case.name)),
    keyTypes: count(outcomes.map((o) => o.spec.keyType)),
    columnTypes: count(outcomes.flatMap((o) => o.spec.columns)),
    knownDefectsLeftOut: args.withKnownDefects ? [] : KNOWN_DEFECTS.map((d) => d.hazard),
    seconds: Number(seconds.toFixed(1)),
  };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const cases = casesFor(args);
  if (cases.length === 0) throw new Error('no case matches --paths and --shards');
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const started = Date.now();
  console.log(`fuzz: seed ${args.seed}, ${args.runs} runs over ${cases.length} cases, ${args.minRows}..${args.maxRows} rows; starting Postgres and Temporal ...`);
  const moduleDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-fuzz-'));
  const [postgres, temporalServer, bundle] = await Promise.all([
    startPostgres(),
    startTemporal(),
    bundleWorkflowCode({ workflowsPath, logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error } }),
  ]);
  const bundlePath = path.join(moduleDir, 'workflows.js');
  writeFileSync(bundlePath, bundle.code);
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const [sourceUrl, targetUrl] = await Promise.all([postgres.createDatabase(`ferry_fuzz_src_${suffix}`), postgres.createDatabase(`ferry_fuzz_tgt_${suffix}`)]);
  await Promise.all([prepareDatabase(sourceUrl), prepareDatabase(targetUrl)]);
  const temporal = temporalSettings({}, { address: temporalServer.address, taskQueue: `fuzz-${suffix}` });
  // Transform modules are written to moduleDir: the only directory this worker loads them from.
  const ferryWorker = await createFerryWorker({
    temporal,
    env: { [CONNECTIONS.source]: sourceUrl, [CONNECTIONS.target]: targetUrl },
    workflowBundle: { codePath: bundlePath },
    shutdownGraceSeconds: 1,
    transformDir: moduleDir,
  });
  const running = ferryWorker.worker.run();
  const connection = await Connection.connect({ address: temporal.address });
  const servers: DifferentialServers = { client: new Client({ connection, namespace: temporal.namespace }), temporal, sourceUrl, targetUrl, moduleDir };
  const results: PropertyResult[] = [];
  try {
    for (let run = 0; run < args.runs; run += 1) {
      const seed = args.seed + run;
      const c = cases[seed % cases.length]!;
      const result = await checkCase(servers, c, seed, { minRows: args.minRows, maxRows: args.maxRows });
      results.push(result);
      const o = result.outcomes[0]?.outcome;
      const verdict = result.failure ? 'FAILED' : o?.refused ? 'refused: NULL partition values (by design)' : 'ok';
      console.log(`run ${run + 1}/${args.runs} seed ${seed} ${c.name}: ${verdict}${o ? ` (${o.rows} rows, writer ${o.writerOpsApplied}, damage ${o.damageApplied}, ${o.seconds.toFixed(1)} s)` : ''}`);
      if (result.failure) console.log(`${result.failure}\n  replay: ${replayCommand(args, seed)}\n`);
    }
  } finally {
    await connection.close();
    ferryWorker.worker.shutdown();
    await running;
    await temporalServer.stop();
    await postgres.stop();
    rmSync(moduleDir, { recursive: true, force: true });
  }
  const totals = summary(args, results, (Date.now() - started) / 1000);
  const failed = results.filter((r) => r.failure);
  console.log(`\nfuzz: ${results.length} runs, ${failed.length} failed, ${totals.sourceRows} source rows, ${totals.writerOpsApplied} live writes, ${totals.damageApplied} damaged rows, ${totals.seconds} s`);
  for (const r of failed) console.log(`  FAILED seed ${r.seed} ${r.case.name}: replay with ${replayCommand(args, r.seed)}`);
  console.log(JSON.stringify(totals));
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`fuzz: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  },
);
