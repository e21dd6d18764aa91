/**
 * One differential run: a generated table migrated through one path and one shard kind while a
 * live application writes, then damaged on purpose at the gate and verified again; after each
 * verification the comparator must agree with Ferry key for key, and a clean Ferry must mean a
 * clean comparator.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { abortMigration, checkEndedMigration, endedMigration, runStateOf, startMigration, verifyMigration } from '../../../operator';
import type { TemporalSettings } from '../../../lib/settings';
import type { MigrationStatus } from '../../../lib/status';
import { validatePlan, type Plan } from '../../../lib/plan';
import { statusQuery } from '../../../workflows/messages';
import type { migrationWorkflow } from '../../../workflows/migration';
import { differences, digests, disagreements, query, quote, tableDigestSql, type Difference } from './comparator';
import { expectedDigestSql, LINEAGE_PLAN_FIELDS, targetDdl, targetShape } from './paths';
import { applyDamage, applyWriterOp, createSource, run, type Application } from './tables';
import type { TableSpec } from './table-spec';
import type { DifferentialCase } from './cases';

/** The worker resolves these names from its environment: the source and the target database. */
export const CONNECTIONS = { source: 'DIFFERENTIAL_SOURCE_URL', target: 'DIFFERENTIAL_TARGET_URL' } as const;

export interface DifferentialServers {
  client: Client;
  temporal: TemporalSettings;
  sourceUrl: string;
  targetUrl: string;
  /** Where transform modules are written (the worker runs on this machine). */
  moduleDir: string;
}

export interface CaseOutcome {
  migrationId: string;
  plan: Plan;
  /** Every way the run broke the property; empty when it held. */
  problems: string[];
  rows: number;
  writerOpsApplied: number;
  damageApplied: number;
  /** Set when the plan was refused up front with a clear reason (allowed for NULL keys only). */
  refused: string | null;
  /** How long the backfill ran (the writer's window). */
  backfillSeconds: number | null;
  /** A write landed during the backfill's verification, so the tables were verified once more before comparing. */
  reverifiedAfterRace: boolean;
  seconds: number;
}

const GATE_TIMEOUT_MS = Number(process.env.DIFFERENTIAL_GATE_TIMEOUT_MS ?? 120_000);
const BEFORE_VERIFY = new Set(['inspecting', 'dual-write', 'backfilling']);
let counter = 0;

export async function runCase(servers: DifferentialServers, c: DifferentialCase, spec: TableSpec): Promise<CaseOutcome> {
  const { path: path_, shardKind } = c;
  const started = Date.now();
  counter += 1;
  const tag = `${process.pid.toString(36)}${counter}${Math.random().toString(36).slice(2, 6)}`;
  const sameDb = path_ === 'sql-same-db' || (path_ !== 'sql-across-dbs' && spec.sameDatabase);
  const shape = targetShape(path_, spec);
  const app: Application = {
    sourceUrl: servers.sourceUrl,
    targetUrl: sameDb ? servers.sourceUrl : servers.targetUrl,
    sourceTable: `public.src_${tag}`,
    targetTable: `public.tgt_${tag}`,
    qualifiedTarget: `public.tgt_${tag}`,
    shape,
    spec,
    excluded: c.excluded,
  };
  await createSource(app.sourceUrl, app.sourceTable, spec);
  await run(app.targetUrl, targetDdl(shape, app.targetTable, spec.nullKeys));
  let modulePath: string | null = null;
  if (shape.module) {
    modulePath = path.join(servers.moduleDir, `transform_${tag}.js`);
    writeFileSync(modulePath, shape.module);
  }
  const plan = validatePlan({
    name: `diff-${path_}-${shardKind}-${tag}`,
    source: { connection: CONNECTIONS.source, table: `src_${tag}`, key: 'k' },
    target: { connection: sameDb ? CONNECTIONS.source : CONNECTIONS.target, table: `tgt_${tag}`, key: shape.key, ...(shape.lineageColumn ? LINEAGE_PLAN_FIELDS(shape.lineageColumn) : {}) },
    transform: modulePath
      ? { module: modulePath, columns: shape.columns.map((c) => c.name) }
      : { sql: Object.fromEntries(shape.columns.map((c) => [c.name, c.sql])) },
    shards: shardKind === 'partition' ? { partitionColumn: 'part' } : { count: 3 },
    // Small batches and chunks: many of each, and a copy slow enough for the writer to race it.
    throttle: { batchSize: 10, targetBatchSeconds: 0, checkpointSeconds: 0.2, concurrency: 2, rowsPerSecond: Math.max(10, Math.ceil(spec.rows.length / 3)) },
    verify: { chunkSize: 10, maxPasses: 3, inFlightDelaySeconds: 0.2 },
    lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0 },
  });
  const outcome: CaseOutcome = { migrationId: '', plan, problems: [], rows: spec.rows.length, writerOpsApplied: 0, damageApplied: 0, refused: null, backfillSeconds: null, reverifiedAfterRace: false, seconds: 0 };
  let handle: WorkflowHandle<typeof migrationWorkflow>;
  try {
    handle = await startMigration(servers.client, servers.temporal, plan, { execute: true });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if ((spec.nullKeys || hasNullPartition(spec)) && /null/i.test(message)) outcome.refused = message;
    else outcome.problems.push(`the migration did not start: ${message}`);
    outcome.seconds = (Date.now() - started) / 1000;
    return outcome;
  }
  outcome.migrationId = handle.workflowId;
  try {
    const gateReached = { done: false };
    const writer = runWriter(app, handle, gateReached);
    const reached = await waitForGate(handle, app).finally(() => (gateReached.done = true));
    const lastWriteAt = await writer.then((w) => {
      outcome.writerOpsApplied = w.applied;
      return w.lastWriteAt;
    });
    if (typeof reached === 'string') {
      if ((spec.nullKeys || hasNullPartition(spec)) && /null/i.test(reached)) outcome.refused = reached;
      else outcome.problems.push(reached);
      return outcome;
    }
    const unfinished = unfinishedPasses(reached);
    if (unfinished.length > 0) {
      outcome.problems.push(`Ferry's verification after the backfill could not finish: ${unfinished.join(' | ')}`);
      return outcome;
    }
    const backfill = reached.phases.find((p) => p.name === 'backfill');
    outcome.backfillSeconds = backfill?.endedAt ? (Date.parse(backfill.endedAt) - Date.parse(backfill.startedAt)) / 1000 : null;
    let settled = reached;
    if (lastWriteAt > (Date.parse(reached.phases.find((p) => p.name === 'verify')?.startedAt ?? '') || 0)) {
      // A write landed while verification ran: its verdict is of a moving table. Verify once more, now that nothing writes.
      outcome.reverifiedAfterRace = true;
      await verifyMigration(servers.client, handle.workflowId, { by: 'differential-test' });
      settled = await handle.query(statusQuery);
    }
    await checkAgreement(app, outcome, 'after the backfill and its verification', handle.workflowId, settled.verification!.passes, settled.verification!.clean);

    const touched = new Set<string>();
    for (const op of spec.damage) if (await applyDamage(app, op, touched)) outcome.damageApplied += 1;
    const damaged = await comparatorDifferences(app);
    const summary = await verifyMigration(servers.client, handle.workflowId, { by: 'differential-test' });
    const unfinishedAtGate = unfinishedPasses(await handle.query(statusQuery));
    if (unfinishedAtGate.length > 0) {
      outcome.problems.push(`Ferry's verification at the gate could not finish: ${unfinishedAtGate.join(' | ')}`);
      return outcome;
    }
    // Passes count within each verification run: the gate's run starts again at pass 1.
    await checkAgreement(app, outcome, 'on the first pass after damage at the gate', handle.workflowId, 1, null, damaged);
    await checkAgreement(app, outcome, `after ${summary.passes} passes of verify-and-repair at the gate`, handle.workflowId, summary.passes, summary.clean);
    if (spec.verifyAfterFinish) await checkAfterFinish(servers, app, outcome, handle);
  } catch (error) {
    outcome.problems.push(`the run broke: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  } finally {
    if (outcome.problems.length > 0) {
      const status = await handle.query(statusQuery).catch(() => null);
      const record = status?.events.filter((e) => e.kind === 'verify').map((e) => e.detail) ?? [];
      outcome.problems.push(`Ferry's verification record: ${record.join(' | ') || '(none)'}`);
    }
    await abortMigration(servers.client, handle.workflowId, { by: 'differential-test', reason: 'run checked' }).catch(() => {});
    outcome.seconds = (Date.now() - started) / 1000;
  }
  return outcome;
}

/**
 * Ends the migration (an abort at the gate), damages the target once more, and runs `ferry verify`
 * as an operator would: it must find what the comparator finds, by category.
 */
async function checkAfterFinish(servers: DifferentialServers, app: Application, outcome: CaseOutcome, handle: WorkflowHandle<typeof migrationWorkflow>): Promise<void> {
  await abortMigration(servers.client, handle.workflowId, { by: 'differential-test', reason: 'checked at the gate; verified again after the end' });
  await handle.result().catch(() => {});
  const extraDamage = app.spec.damage.find((op) => op.kind === 'alter-target' || op.kind === 'drop-target');
  if (extraDamage) await applyDamage(app, { ...extraDamage, pick: extraDamage.pick + 1 }, new Set());
  const comparator = await comparatorDifferences(app);
  let summary: { clean: boolean; missing: number; extra: number; value: number };
  try {
    // As `ferry verify` does for a migration that has ended: a check of its own, report only.
    const { runState, taskQueue } = await runStateOf(servers.client, handle.workflowId);
    const ended = await endedMigration(servers.client, handle.workflowId, taskQueue, runState);
    summary = await checkEndedMigration(servers.client, ended, { samplePercent: null, repair: false, force: false, by: 'differential-test' });
  } catch (error) {
    outcome.problems.push(`ferry verify after the migration ended: refused (${rootMessage(error)}), while the comparator found ${summarise(comparator)}`);
    return;
  }
  const count = (category: string) => comparator.filter((d) => d.category === category).length;
  if (summary.missing !== count('missing') || summary.extra !== count('extra') || summary.value !== count('value') || (summary.clean && comparator.length > 0)) {
    outcome.problems.push(
      `ferry verify after the migration ended: Ferry said ${summary.clean ? 'clean' : 'not clean'} with ${summary.missing} missing, ${summary.extra} extra, ` +
        `${summary.value} differing; the comparator found ${summarise(comparator)}`,
    );
  }
}

/** NULL partition values are refused with a reason, by design (shards are one per value). */
function hasNullPartition(spec: TableSpec): boolean {
  return spec.rows.some((r) => r.part === null) || spec.writer.some((op) => (op.kind === 'repartition' && op.part === null) || (op.kind === 'insert' && op.row.part === null));
}

function rootMessage(error: unknown): string {
  let current = error;
  while (current instanceof Error && current.cause) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

/** Passes Ferry's record says could not finish (their findings are partial). */
function unfinishedPasses(status: MigrationStatus): string[] {
  return status.events.filter((e) => e.kind === 'verify' && /could not finish/.test(e.detail)).map((e) => e.detail);
}

async function comparatorDifferences(app: Application): Promise<Difference[]> {
  const [expected, actual] = await Promise.all([
    digests(app.sourceUrl, expectedDigestSql(app.shape, app.sourceTable)),
    digests(app.targetUrl, tableDigestSql(app.targetTable, app.shape.key, app.shape.columns.map((c) => c.name))),
  ]);
  return differences(expected, actual);
}

/**
 * Ferry's findings of pass `pass` of the migration's latest verification run, from its own table of
 * mismatches on the target (which numbers passes across runs: each run starts at its first_pass).
 */
async function ferryDifferences(app: Application, migrationId: string, pass: number): Promise<Difference[]> {
  return query<Difference>(
    app.targetUrl,
    `SELECT key, category FROM ferry.mismatches
      WHERE migration_id = $1
        AND pass = (SELECT first_pass FROM ferry.verification_runs WHERE migration_id = $1 ORDER BY run DESC LIMIT 1) + $2 - 1
      ORDER BY key`,
    [migrationId, pass],
  );
}

/**
 * The comparator's differences (now, or as given) against what Ferry's pass found. `clean` is
 * Ferry's verdict after that pass, when it gave one.
 */
async function checkAgreement(app: Application, outcome: CaseOutcome, when: string, migrationId: string, pass: number, clean: boolean | null, mine?: Difference[]): Promise<void> {
  const comparator = mine ?? (await comparatorDifferences(app));
  const ferry = await ferryDifferences(app, migrationId, pass);
  const disagree = disagreements(comparator, ferry);
  if (clean === true && comparator.length > 0) {
    outcome.problems.push(`${when}: Ferry said clean, but the comparator found ${summarise(comparator)}`);
  }
  if (disagree.length > 0) {
    const lines = disagree.slice(0, 12).map((d) => `    key ${JSON.stringify(d.key)}: comparator ${d.comparator ?? 'equal'}, Ferry (pass ${pass}) ${d.ferry ?? 'equal'}`);
    const rows = await rowTexts(app, disagree.slice(0, 4).map((d) => d.key));
    outcome.problems.push(
      `${when}: comparator found ${summarise(comparator)}; Ferry's pass ${pass} found ${summarise(ferry)}; they disagree on ${disagree.length} keys:\n` +
        [...lines, ...(disagree.length > 12 ? [`    ... and ${disagree.length - 12} more`] : []), ...rows].join('\n'),
    );
  }
}

function summarise(found: Difference[]): string {
  const count = (category: string) => found.filter((d) => d.category === category).length;
  return `${count('missing')} missing, ${count('extra')} extra, ${count('value')} differing`;
}

/** Both sides' row text for a few keys: what the counterexample shows. */
async function rowTexts(app: Application, keys: string[]): Promise<string[]> {
  if (keys.length === 0) return [];
  const [expected, actual] = await Promise.all([
    query(app.sourceUrl, `SELECT key, row FROM (${expectedDigestSql(app.shape, app.sourceTable).replace(/md5\((ROW\(.*\)::text)\) AS digest FROM/s, '$1 AS row FROM')}) e WHERE key = ANY($1)`, [keys]),
    query(app.targetUrl, `SELECT (${quote(app.shape.key)})::text AS key, ROW(${app.shape.columns.map((c) => quote(c.name)).join(', ')})::text AS row FROM ${app.targetTable} t WHERE (${quote(app.shape.key)})::text = ANY($1)`, [keys]),
  ]);
  return keys.flatMap((key) => [
    `    source through the transform, key ${JSON.stringify(key)}: ${expected.find((r) => r.key === key)?.row ?? '(no row)'}`,
    `    target,                       key ${JSON.stringify(key)}: ${actual.find((r) => r.key === key)?.row ?? '(no row)'}`,
  ]);
}

/** Waits for the cutover gate after the backfill's verification; a string says why it never came. */
async function waitForGate(handle: WorkflowHandle<typeof migrationWorkflow>, app: Application): Promise<MigrationStatus | string> {
  const deadline = Date.now() + GATE_TIMEOUT_MS;
  for (let round = 0; ; round += 1) {
    if (round % 5 === 0 && (await handle.describe()).status.name !== 'RUNNING') {
      const error = await handle.result().then(() => null, (e: unknown) => e);
      return `the migration's workflow ended before the cutover gate: ${rootMessage(error)}`;
    }
    const status = await handle.query(statusQuery);
    if (status.phase === 'awaiting-approval' && status.gate?.name === 'cutover-reads' && status.verification) return status;
    if (['completed', 'aborted', 'failed'].includes(status.phase)) {
      const failedShards = status.shards.filter((s) => s.error).map((s) => `shard ${s.index}: ${s.error}`);
      // A failed migration's workflow fails with the reason; the status alone may not say it.
      const failure = status.phase === 'failed' ? await handle.result().then(() => null, (e: unknown) => rootMessage(e)) : null;
      const why = [...failedShards, ...(failure ? [failure] : [])];
      return `the migration ended ${status.phase} before the cutover gate${why.length ? ` (${why.join('; ')})` : ''}`;
    }
    if (status.paused && status.unresolvedFailures > 0) {
      const failed = await query(app.targetUrl, 'SELECT key, error FROM ferry.failed_records WHERE migration_id = $1 ORDER BY key LIMIT 5', [handle.workflowId]);
      return `the migration paused with ${status.unresolvedFailures} failed rows (${failed.map((f) => `key ${JSON.stringify(f.key)}: ${f.error}`).join('; ')})`;
    }
    if (Date.now() > deadline) {
      const shards = status.shards.map((s) => `shard ${s.index}${s.partitionValue === null ? '' : ` (${s.partitionValue})`}: ${s.state}, ${s.rowsRead} read, cursor ${s.cursor}${s.throttleReason ? `, ${s.throttleReason}` : ''}${s.error ? `, ${s.error}` : ''}`);
      return `no cutover gate after ${GATE_TIMEOUT_MS / 1000} s (phase ${status.phase}${status.paused ? `, paused: ${status.paused.reason}` : ''}; ${shards.join('; ')})`;
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/**
 * The live application: its operations spread over about a second from the start of the copy,
 * stopping once verification begins (the phase is polled apart, so a slow query never holds a
 * write up).
 */
async function runWriter(app: Application, handle: WorkflowHandle<typeof migrationWorkflow>, gate: { done: boolean }): Promise<{ applied: number; lastWriteAt: number }> {
  const source = new pg.Client({ connectionString: app.sourceUrl, application_name: 'differential-app' });
  const target = app.targetUrl === app.sourceUrl ? source : new pg.Client({ connectionString: app.targetUrl, application_name: 'differential-app' });
  await source.connect();
  if (target !== source) await target.connect();
  let phase = 'inspecting';
  let polling = true;
  const poller = (async () => {
    while (polling && !gate.done && BEFORE_VERIFY.has(phase)) {
      phase = (await handle.query(statusQuery).catch(() => null))?.phase ?? phase;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const retired = new Set<string>();
  let applied = 0;
  let lastWriteAt = 0;
  try {
    // Writes start with the copy (its first rows in the target), so that they race its batches and
    // land after the shards are planned. The database shows it sooner than a query of the workflow.
    const copyBy = Date.now() + GATE_TIMEOUT_MS;
    while (BEFORE_VERIFY.has(phase) && !gate.done && Date.now() < copyBy && !(await target.query(`SELECT EXISTS (SELECT FROM ${app.targetTable}) AS started`)).rows[0].started) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const gapMs = Math.max(5, Math.floor(1000 / Math.max(1, app.spec.writer.length)));
    for (const op of app.spec.writer) {
      if (!BEFORE_VERIFY.has(phase) || gate.done) break;
      if (await applyWriterOp(app, source, target, op, retired)) {
        applied += 1;
        lastWriteAt = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  } finally {
    polling = false;
    await poller;
    await source.end();
    if (target !== source) await target.end();
  }
  return { applied, lastWriteAt };
}
