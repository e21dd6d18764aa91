/**
 * Fault scenarios: one round runs two migrations at once on the lab, one held in its backfill
 * and one in its verification, injects a fault into both, waits for both to complete, and
 * compares every row with SQL of its own (not Ferry's verifier).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import type { MigrationStatus, Phase } from '../../lib/status';
import type { migrationWorkflow } from '../../workflows/migration';
import { LAB_STATEMENT_TIMEOUT_MS, labSql, sleep, type Lab } from './lab';
import { activitiesRunBy, takeoverSeconds, takeoverSummary } from './takeover';

/** Faults of a trigger-capture migration with a writer running: see capture.ts. */
export const CAPTURE_FAULTS = ['capture-worker-kill', 'capture-temporal-restart', 'capture-postgres-restart', 'capture-connection-kill'] as const;
export const FAULTS = ['worker-kill', 'temporal-restart', 'postgres-restart', 'connection-kill', 'statement-timeout', 'outage-abort', 'outage-cutover', ...CAPTURE_FAULTS] as const;
export type Fault = (typeof FAULTS)[number];
export type CaptureFault = (typeof CAPTURE_FAULTS)[number];
export const isCaptureFault = (fault: Fault): fault is CaptureFault => fault.startsWith('capture-');
/** Faults of a lifecycle step rather than of a backfill and a verification: see outages.ts. */
export type OutageFault = Extract<Fault, `outage-${string}`>;
export const isOutageFault = (fault: Fault): fault is OutageFault => fault.startsWith('outage-');

export interface RoundOptions {
  fault: Exclude<Fault, OutageFault | CaptureFault>;
  /** Distinguishes the round's tables and plan names. */
  round: number;
  random: () => number;
  /** Worker kills or connection kills in a row. (Default: 3) */
  repeats?: number;
  /** Rows of the migration faulted in its backfill. (Default: 12000) */
  backfillRows?: number;
  /** Rows of the migration faulted in its verification. (Default: 12000) */
  verifyRows?: number;
  /** How long a round may take before it counts as a migration that never completes. (Default: 180000) */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** What the test's own comparison found for one migration. */
export interface Comparison {
  sourceRows: number;
  targetRows: number;
  /** Source keys absent from the target. */
  lost: number;
  /** Target rows beyond the first for a key (the target's unique key should make this 0). */
  duplicated: number;
  /** Target keys the source does not have. */
  extra: number;
  /** Keys present on both sides whose values differ. */
  differing: number;
}

export interface MigrationOutcome {
  migrationId: string;
  /** The phase the fault was meant to hit. */
  heldIn: 'backfilling' | 'verifying' | 'aborting' | 'reads-on-new';
  /** How the migration should end. (Default: completed) */
  expectedPhase?: Phase;
  /** The phase the migration was in at each fault injected ('unknown' when it could not be asked). */
  phasesHit: (Phase | 'unknown')[];
  finalPhase: Phase | 'failed' | 'timed out';
  verificationClean: boolean | null;
  comparison: Comparison;
  /** What went wrong, with evidence, when it did. */
  problem: string | null;
}

export interface RoundResult {
  fault: Fault;
  round: number;
  faultsInjected: number;
  /** Evidence that the fault was felt, e.g. statements cancelled or connections ended. */
  felt: string;
  /** Ferry sessions ended by pg_terminate_backend (connection-kill). */
  sessionsEnded?: number;
  /** Statements cancelled by statement_timeout, by the migration they served (statement-timeout). */
  cancelled?: { backfilling: number; verifying: number; all: number };
  /**
   * Per kill (worker-kill): seconds until every activity the killed worker ran was started again
   * on another worker; null when it ran none at that moment.
   */
  takeoverSeconds?: (number | null)[];
  seconds: number;
  migrations: MigrationOutcome[];
}

const COLUMNS = `id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL, paid_at timestamptz NOT NULL, doc jsonb, note text`;

export async function createTables(lab: Lab, table: string, rows: number): Promise<void> {
  await labSql(lab.sourceUrl, `
    CREATE TABLE ${table} (${COLUMNS});
    INSERT INTO ${table}
    SELECT i, 'name ' || i, i * 0.37, timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1.000017 s',
           CASE WHEN i % 7 = 0 THEN NULL ELSE jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 3)) END,
           CASE WHEN i % 5 = 0 THEN NULL ELSE 'note ' || (i * 31 % 1000) END
      FROM generate_series(1, ${rows}) i;
    ANALYZE ${table};`);
  await labSql(lab.targetUrl, `CREATE TABLE ${table} (${COLUMNS.replace('name text NOT NULL,', 'name text NOT NULL, name_upper text NOT NULL,')})`);
}

/** Every source row against the target, by the test's own SQL: key and an md5 of the values. */
export async function compareTables(lab: Lab, table: string): Promise<Comparison> {
  const [source, target] = await Promise.all([
    labSql<{ key: string; digest: string }>(lab.sourceUrl, `SELECT id::text AS key, md5(row(name, upper(name), amount, paid_at, doc, note)::text) AS digest FROM ${table}`),
    labSql<{ key: string; digest: string }>(lab.targetUrl, `SELECT id::text AS key, md5(row(name, name_upper, amount, paid_at, doc, note)::text) AS digest FROM ${table}`),
  ]);
  const expected = new Map(source.map((r) => [r.key, r.digest]));
  const seen = new Map<string, number>();
  let extra = 0;
  let differing = 0;
  let duplicated = 0;
  for (const row of target) {
    const times = (seen.get(row.key) ?? 0) + 1;
    seen.set(row.key, times);
    if (times > 1) duplicated += 1;
    const digest = expected.get(row.key);
    if (digest === undefined) extra += 1;
    else if (times === 1 && digest !== row.digest) differing += 1;
  }
  const lost = source.filter((r) => !seen.has(r.key)).length;
  return { sourceRows: source.length, targetRows: target.length, lost, duplicated, extra, differing };
}

export function planFor(name: string, table: string, extra: Partial<PlanInput>) {
  return validatePlan({
    name,
    source: { connection: 'SRC', table, key: 'id' },
    target: { connection: 'TGT', table },
    transform: {
      sql: { id: 'id', name: 'name', name_upper: 'upper(name)', amount: 'amount', paid_at: 'paid_at', doc: 'doc', note: 'fault_delay(note)' },
    },
    ...extra,
  });
}

/** The migration's phase now; undefined while it cannot be asked (no worker, no server). */
export async function phaseOf(lab: Lab, id: string): Promise<Phase | undefined> {
  try {
    return (await migrationReport(lab.client, id)).status?.phase;
  } catch {
    return undefined;
  }
}

export async function until<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Waits for a run to end, riding out a server or worker that is away; never throws. */
export async function outcomeOf(lab: Lab, handle: WorkflowHandle<typeof migrationWorkflow>, deadline: number): Promise<{ status: MigrationStatus | null; problem: string | null }> {
  for (;;) {
    try {
      const description = await handle.describe();
      if (description.status.name !== 'RUNNING') break;
    } catch {
      // The server is restarting: ask again.
    }
    if (Date.now() > deadline) {
      let last: string;
      try {
        const status = await handle.query('status') as MigrationStatus;
        last = `phase ${status.phase}, rows read ${status.rowsRead}, shards ${status.shards.map((s) => `${s.index}:${s.state}`).join(' ')}, last events: ${status.events.slice(-5).map((e) => e.detail).join(' | ')}`;
      } catch (error) {
        last = `status query failed: ${String(error)}`;
      }
      return { status: null, problem: `did not complete in time (${last})` };
    }
    await sleep(300);
  }
  try {
    return { status: await handle.result(), problem: null };
  } catch (error) {
    return { status: null, problem: `the migration failed: ${error instanceof Error ? `${error.message}: ${String((error as { cause?: unknown }).cause)}` : String(error)}` };
  }
}

/**
 * One round: migration "verify" is started first and backfills fast, then verifies slowly
 * (chunks of 10 keys, one shard at a time); migration "backfill" is started once it verifies
 * and copies under a rows/s limit. The fault goes in while one backfills and the other verifies.
 */
export async function runRound(lab: Lab, options: RoundOptions): Promise<RoundResult> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const repeats = options.repeats ?? 3;
  const backfillRows = options.backfillRows ?? 12_000;
  const verifyRows = options.verifyRows ?? 12_000;
  const tag = `${options.fault.replace(/-/g, '_')}_${options.round}`;
  const backfillTable = `b_${tag}`;
  const verifyTable = `v_${tag}`;
  await Promise.all([createTables(lab, backfillTable, backfillRows), createTables(lab, verifyTable, verifyRows)]);

  const verifyPlan = planFor(`faults-${tag}-verify`.replace(/_/g, '-'), verifyTable, {
    shards: { count: 3 },
    throttle: { batchSize: 2000, concurrency: 1, checkpointSeconds: 1 },
    verify: { chunkSize: 10, inFlightDelaySeconds: 0.2 },
  });
  const backfillPlan = planFor(`faults-${tag}-backfill`.replace(/_/g, '-'), backfillTable, {
    shards: { count: 3 },
    throttle: { batchSize: 200, concurrency: 3, rowsPerSecond: Math.round(backfillRows / 6), checkpointSeconds: 1 },
    verify: { chunkSize: 1000, inFlightDelaySeconds: 0.2 },
  });

  // The held backfill starts first: it lasts several seconds, so the fault can wait for the
  // other migration to be verifying without either phase ending first.
  const backfilling = await startMigration(lab.client, lab.temporal, backfillPlan, { execute: true });
  const verifying = await startMigration(lab.client, lab.temporal, verifyPlan, { execute: true });
  await until(
    async () => (await phaseOf(lab, backfilling.workflowId)) === 'backfilling' && (await labSql<{ n: number }>(lab.targetUrl, `SELECT count(*)::int AS n FROM ${backfillTable}`))[0]!.n > 0,
    60_000,
    `${backfillPlan.name} to copy its first rows`,
  );
  await until(async () => (await phaseOf(lab, verifying.workflowId)) === 'verifying', 60_000, `${verifyPlan.name} to verify`);

  const phasesHit: { backfilling: (Phase | 'unknown')[]; verifying: (Phase | 'unknown')[] } = { backfilling: [], verifying: [] };
  const notePhases = async () => {
    const [b, v] = await Promise.all([phaseOf(lab, backfilling.workflowId), phaseOf(lab, verifying.workflowId)]);
    phasesHit.backfilling.push(b ?? 'unknown');
    phasesHit.verifying.push(v ?? 'unknown');
  };
  const random = options.random;
  const between = (min: number, max: number) => Math.round(min + random() * (max - min));

  let faultsInjected = 0;
  let felt = '';
  let sessionsEnded: number | undefined;
  let cancelled: RoundResult['cancelled'];
  let tookOver: (number | null)[] | undefined;
  const timeoutsBefore = lab.postgresLogErrors('ERROR:  canceling statement due to statement timeout').length;
  log(`round ${options.round}: ${options.fault}`);
  switch (options.fault) {
    case 'worker-kill': {
      const takeovers: Promise<number | null>[] = [];
      for (let i = 0; i < repeats; i += 1) {
        await sleep(i === 0 ? between(100, 1000) : between(500, 2500));
        await notePhases();
        // A worker running a copy or a verification, when one is: the takeover is what this
        // fault tests, and with two workers the other one often holds everything.
        const running = (await activitiesRunBy(lab.client, lab.workers.map((worker) => worker.process.pid!))).map((held, index) => ({ index, held }));
        const holding = running.filter((worker) => worker.held.length > 0);
        const choices = holding.length > 0 ? holding : running;
        const { index, held } = choices[Math.floor(random() * choices.length)]!;
        const pid = lab.workers[index]!.process.pid!;
        const killedAt = Date.now();
        await lab.killWorker(index);
        takeovers.push(takeoverSeconds(lab.client, held, pid, killedAt));
        faultsInjected += 1;
      }
      tookOver = await Promise.all(takeovers);
      const summary = takeoverSummary(tookOver);
      felt = `${faultsInjected} worker processes killed with SIGKILL; ${summary ? `their copies and verifications taken over in ${tookOver.map((t) => (t === null ? '-' : `${t.toFixed(1)} s`)).join(', ')}` : 'none was running an activity'}`;
      break;
    }
    case 'temporal-restart':
      await sleep(between(200, 1500));
      await notePhases();
      await lab.restartTemporal(between(1000, 3000));
      faultsInjected += 1;
      felt = 'Temporal server stopped and started again';
      break;
    case 'postgres-restart':
      await sleep(between(200, 1500));
      await notePhases();
      await lab.restartPostgres();
      faultsInjected += 1;
      felt = 'source and target cluster restarted';
      break;
    case 'connection-kill': {
      let ended = 0;
      for (let i = 0; i < repeats; i += 1) {
        await sleep(between(200, 1500));
        await notePhases();
        ended += await lab.terminateFerryConnections();
        faultsInjected += 1;
      }
      felt = `${ended} Ferry sessions ended by pg_terminate_backend`;
      sessionsEnded = ended;
      break;
    }
    case 'statement-timeout':
      await sleep(between(200, 1000));
      await notePhases();
      await lab.slowStatements(between(3 * LAB_STATEMENT_TIMEOUT_MS, 4 * LAB_STATEMENT_TIMEOUT_MS));
      faultsInjected += 1;
      break;
  }

  const deadline = started + (options.timeoutMs ?? 180_000);
  const finished = await Promise.all(
    ([
      [backfilling, backfillTable, 'backfilling'],
      [verifying, verifyTable, 'verifying'],
    ] as const).map(async ([handle, table, heldIn]): Promise<MigrationOutcome> => {
      const { status, problem } = await outcomeOf(lab, handle, deadline);
      const comparison = await compareTables(lab, table);
      const finalPhase = status?.phase ?? (problem?.startsWith('did not complete') ? 'timed out' : 'failed');
      const bad = comparison.lost + comparison.duplicated + comparison.extra + comparison.differing;
      return {
        migrationId: handle.workflowId,
        heldIn,
        phasesHit: phasesHit[heldIn],
        finalPhase,
        verificationClean: status?.verification?.clean ?? null,
        comparison,
        problem: problem ?? (finalPhase !== 'completed' ? `ended ${finalPhase}` : bad > 0 ? `${bad} rows wrong: ${JSON.stringify(comparison)}` : null),
      };
    }),
  );
  if (options.fault === 'statement-timeout') {
    const statements = lab.postgresLogErrors('ERROR:  canceling statement due to statement timeout').slice(timeoutsBefore);
    const touching = (table: string) => statements.filter((statement) => statement.includes(`"${table}"`)).length;
    cancelled = { backfilling: touching(backfillTable), verifying: touching(verifyTable), all: statements.length };
    felt = `${cancelled.all} statements cancelled by statement_timeout (${cancelled.backfilling} of ${backfillTable}, ${cancelled.verifying} of ${verifyTable})`;
  }
  const result: RoundResult = {
    fault: options.fault,
    round: options.round,
    faultsInjected,
    felt,
    ...(sessionsEnded === undefined ? {} : { sessionsEnded }),
    ...(cancelled ? { cancelled } : {}),
    ...(tookOver ? { takeoverSeconds: tookOver } : {}),
    seconds: (Date.now() - started) / 1000,
    migrations: finished,
  };
  log(`  ${felt}; ${finished.map((m) => `${m.heldIn}: ${m.finalPhase}, ${m.comparison.targetRows}/${m.comparison.sourceRows} rows, lost ${m.comparison.lost}, duplicated ${m.comparison.duplicated}, differing ${m.comparison.differing}`).join('; ')} (${result.seconds.toFixed(1)} s)`);
  return result;
}
