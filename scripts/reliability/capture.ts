/**
 * Capture rounds: a `capture: trigger` migration across the lab's two databases, with a writer
 * inserting, updating, deleting and moving keys of the source all along, takes a fault once in
 * its backfill and once while changes are applied at the cleanup gate. Once the writer stops and
 * the lag is zero, the round's own md5 of every row must find both sides equal and Ferry's first
 * verification pass must be clean.
 */
import pg from 'pg';
import { migrationReport, startMigration, verifyMigration } from '../../operator';
import { redactMessage } from '../../lib/errors';
import { approveUpdate } from '../../workflows/messages';
import type { MigrationStatus, Phase } from '../../lib/status';
import { labSql, sleep, type Lab } from './lab';
import { outcomeOf, planFor, until, type CaptureFault, type Comparison, type RoundResult } from './scenarios';


export interface CaptureRoundOptions {
  fault: CaptureFault;
  round: number;
  random: () => number;
  /** Rows of the source table. (Default: 12000) */
  rows?: number;
  /** How long the round may take. (Default: 240000) */
  timeoutMs?: number;
  log?: (line: string) => void;
}

/** What the writer did; its connection errors are the fault's, counted and ridden out. */
interface WriterCounts {
  writes: number;
  errors: number;
  /** The first error's message: a writer that fails for a reason of its own would make the round meaningless. */
  firstError: string | null;
}

/**
 * Two clients writing the source as an application would (updates, inserts, deletes, key
 * changes), reconnecting when the fault ends their session: a restart must not stop the writes.
 */
function startWriter(url: string, table: string, keys: number, freshFrom: number): { stop: () => Promise<WriterCounts> } {
  const counts: WriterCounts = { writes: 0, errors: 0, firstError: null };
  let stopping = false;
  const loops = [0, 1].map(async (client) => {
    let fresh = freshFrom + client * 1_000_000;
    const anyKey = () => 1 + Math.floor(Math.random() * keys);
    let db: pg.Client | null = null;
    while (!stopping) {
      try {
        if (!db) {
          db = new pg.Client({ connectionString: url, application_name: 'capture-writer' });
          db.on('error', () => {});
          await db.connect();
        }
        const dice = Math.random();
        if (dice < 0.5) await db.query(`UPDATE ${table} SET amount = amount + 1, note = md5(random()::text) WHERE id = $1`, [anyKey()]);
        else if (dice < 0.7) {
          const key = fresh++;
          await db.query(`INSERT INTO ${table} (id, name, amount, paid_at, doc, note) VALUES ($1, $2, 1.5, now(), '{"new": true}', 'inserted')`, [key, `new ${key}`]);
        }
        else if (dice < 0.8) await db.query(`DELETE FROM ${table} WHERE id = $1`, [anyKey()]);
        else await db.query(`UPDATE ${table} SET id = $2 WHERE id = $1`, [anyKey(), fresh++]);
        counts.writes += 1;
      } catch (error) {
        counts.errors += 1;
        counts.firstError ??= redactMessage(error instanceof Error ? error.message : String(error));
        await db?.end().catch(() => {});
        db = null;
        await sleep(200);
      }
      await sleep(10);
    }
    await db?.end().catch(() => {});
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return counts;
    },
  };
}

/** The reliability run's own comparison: every source row against the target by key and md5. */
async function compareCaptured(lab: Lab, table: string): Promise<Comparison> {
  const [source, target] = await Promise.all([
    labSql<{ key: string; digest: string }>(lab.sourceUrl, `SELECT id::text AS key, md5(row(name, upper(name), amount, paid_at, doc, note)::text) AS digest FROM ${table}`),
    labSql<{ key: string; digest: string }>(lab.targetUrl, `SELECT id::text AS key, md5(row(name, name_upper, amount, paid_at, doc, note)::text) AS digest FROM ${table}`),
  ]);
  const expected = new Map(source.map((r) => [r.key, r.digest]));
  const seen = new Set<string>();
  let duplicated = 0;
  let extra = 0;
  let differing = 0;
  for (const row of target) {
    if (seen.has(row.key)) duplicated += 1;
    seen.add(row.key);
    const digest = expected.get(row.key);
    if (digest === undefined) extra += 1;
    else if (digest !== row.digest) differing += 1;
  }
  return { sourceRows: source.length, targetRows: target.length, lost: source.filter((r) => !seen.has(r.key)).length, duplicated, extra, differing };
}

export async function runCaptureRound(lab: Lab, options: CaptureRoundOptions): Promise<RoundResult> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const rows = options.rows ?? 12_000;
  const tag = `${options.fault.replace(/-/g, '_')}_${options.round}`;
  const table = `c_${tag}`;
  const COLUMNS = `id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2) NOT NULL, paid_at timestamptz NOT NULL, doc jsonb, note text`;
  await labSql(lab.sourceUrl, `
    CREATE TABLE ${table} (${COLUMNS});
    INSERT INTO ${table}
    SELECT i, 'name ' || i, i * 0.37, timestamptz '2024-01-01 00:00:00.000001+00' + i * interval '1.000017 s',
           CASE WHEN i % 7 = 0 THEN NULL ELSE jsonb_build_object('i', i) END, 'note ' || i
      FROM generate_series(1, ${rows}) i;
    ANALYZE ${table};`);
  await labSql(lab.targetUrl, `CREATE TABLE ${table} (${COLUMNS.replace('name text NOT NULL,', 'name text NOT NULL, name_upper text NOT NULL,')})`);
  const plan = planFor(`faults-${tag}`.replace(/_/g, '-'), table, {
    capture: 'trigger',
    shards: { count: 3 },
    // The backfill lasts about 8 s, and the writer's ~150 writes a second stay well under the limit.
    throttle: { batchSize: 200, concurrency: 3, rowsPerSecond: Math.round(rows / 8), checkpointSeconds: 1 },
    verify: { chunkSize: 1000, inFlightDelaySeconds: 0.5 },
  });

  const writer = startWriter(lab.sourceUrl, table, rows, 10_000_000);
  const handle = await startMigration(lab.client, lab.temporal, plan, { execute: true });
  const id = handle.workflowId;
  let last = null as MigrationStatus | null;
  const statusOf = async () => {
    const status = (await migrationReport(lab.client, id).catch(() => null))?.status ?? null;
    if (status) last = status;
    return status;
  };
  const phasesHit: (Phase | 'unknown')[] = [];
  const between = (min: number, max: number) => Math.round(min + options.random() * (max - min));
  let sessionsEnded = 0;
  const inject = async () => {
    phasesHit.push((await statusOf())?.phase ?? 'unknown');
    switch (options.fault) {
      case 'capture-worker-kill':
        await lab.killWorker(Math.floor(options.random() * lab.workers.length));
        break;
      case 'capture-temporal-restart':
        await lab.restartTemporal(between(1000, 3000));
        break;
      case 'capture-postgres-restart':
        await lab.restartPostgres();
        break;
      case 'capture-connection-kill':
        sessionsEnded += await lab.terminateFerryConnections();
        break;
    }
  };
  log(`round ${options.round}: ${options.fault}`);
  let problem: string | null = null;
  let verification: Awaited<ReturnType<typeof verifyMigration>> | null = null;
  let writes: WriterCounts;
  try {
    await until(async () => (((await statusOf())?.rowsRead ?? 0) >= rows / 4 ? true : undefined), 90_000, `${plan.name} to read a quarter of its rows`);
    await inject();
    await until(async () => ((await statusOf())?.gate?.name === 'cleanup' ? true : undefined), 180_000, `${plan.name} to reach its cleanup gate`);
    // Changes flow after the backfill: the fault lands on the change apply.
    await sleep(between(500, 2000));
    await inject();
    await sleep(3000);
  } catch (error) {
    problem = `${(error as Error).message}; phase ${last?.phase}, rows read ${last?.rowsRead}, capture ${JSON.stringify(last?.capture?.lag)}`;
  } finally {
    writes = await writer.stop();
  }
  if (problem === null) {
    try {
      // A lag measured after the writer stopped: one measured before may read zero between two writes.
      const stoppedAt = new Date().toISOString();
      await until(
        async () => {
          const lag = (await statusOf())?.capture?.lag;
          return lag?.changesWaiting === 0 && (lag.measuredAt ?? '') > stoppedAt ? true : undefined;
        },
        90_000,
        'no change waiting',
      );
      verification = await verifyMigration(lab.client, id, { by: 'fault-lab' });
      await handle.executeUpdate(approveUpdate, { args: [{ gate: 'cleanup', by: 'fault-lab', note: 'capture fault drill' }] });
    } catch (error) {
      problem = `${(error as Error).message}; phase ${last?.phase}, capture ${JSON.stringify(last?.capture?.lag)}`;
    }
  }
  const comparison = await compareCaptured(lab, table);
  const outcome = await outcomeOf(lab, handle, started + (options.timeoutMs ?? 240_000));
  const finalPhase = outcome.status?.phase ?? (outcome.problem?.startsWith('did not complete') ? 'timed out' : 'failed');
  const bad = comparison.lost + comparison.duplicated + comparison.extra + comparison.differing;
  const firstPassClean = verification !== null && verification.clean && verification.passes === 1 && verification.repaired === 0;
  const [{ n: triggers } = { n: 0 }] = await labSql<{ n: number }>(lab.sourceUrl, `SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = '${table}'::regclass AND NOT tgisinternal`);
  problem ??=
    outcome.problem ??
    (finalPhase !== 'completed'
      ? `ended ${finalPhase}`
      : bad > 0
        ? `${bad} rows wrong: ${JSON.stringify(comparison)}`
        : !firstPassClean
          ? `Ferry's first verification pass was not clean: ${JSON.stringify(verification)}`
          : triggers > 0
            ? 'the capture trigger was left on the source'
            : null);
  const felt =
    `${options.fault.replace('capture-', '')} in ${phasesHit.join(' and ')}; writer made ${writes.writes} writes` +
    (writes.errors ? ` (${writes.errors} failed, first: ${writes.firstError})` : '') +
    (options.fault === 'capture-connection-kill' ? `; ${sessionsEnded} Ferry sessions ended` : '') +
    `; ${outcome.status?.capture?.keysApplied ?? '?'} changed keys applied; first verification pass ${firstPassClean ? 'clean' : 'NOT clean'}`;
  const result: RoundResult = {
    fault: options.fault,
    round: options.round,
    faultsInjected: phasesHit.length,
    felt,
    ...(options.fault === 'capture-connection-kill' ? { sessionsEnded } : {}),
    seconds: (Date.now() - started) / 1000,
    migrations: [
      {
        migrationId: id,
        heldIn: 'backfilling',
        phasesHit,
        finalPhase,
        verificationClean: verification?.clean ?? null,
        comparison,
        problem,
      },
    ],
  };
  log(`  ${felt}; ${finalPhase}, ${comparison.targetRows}/${comparison.sourceRows} rows, lost ${comparison.lost}, duplicated ${comparison.duplicated}, differing ${comparison.differing + comparison.extra} (${result.seconds.toFixed(1)} s)`);
  return result;
}
