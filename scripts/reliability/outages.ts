/**
 * Outage rounds: the Postgres cluster of source and target goes down (for two minutes in the
 * reliability run) just as a migration rolls its flags back on an abort, or moves reads to the
 * new table after a gate's approval. The flag change must retry until the database is back,
 * say so in `ferry status` meanwhile, and end where the lifecycle's rules say; the test's own
 * SQL then checks the flags, the migration's record and every row.
 */
import { approveGate, migrationReport, requestAbort, startMigration } from '../../operator';
import { formatRetries } from '../../cli/retries';
import { flagsAfterAbort, type FlagSettings } from '../../lib/lifecycle';
import type { Phase } from '../../lib/status';
import { labSql, sleep, type Lab } from './lab';
import { compareTables, createTables, outcomeOf, phaseOf, planFor, until, type MigrationOutcome, type OutageFault, type RoundResult } from './scenarios';

export interface OutageRoundOptions {
  fault: OutageFault;
  round: number;
  /** How long Postgres stays down. (Default: 120000) */
  outageMs?: number;
  /** Rows of the migration. (Default: 12000) */
  rows?: number;
  /** How long the migration may take to end once Postgres is back. (Default: 180000) */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface OutageEvidence {
  /** The last `ferry status` line that showed the flag change retrying, while Postgres was down. */
  retryShown: string | null;
  /** The flags as the test's own SQL reads them at the end. */
  flags: FlagSettings | null;
  /** Where the lifecycle's rules say the flags must end. */
  expectedFlags: FlagSettings;
  /** The migration's state in ferry.migrations on the target, read by the test's own SQL. */
  recordedState: string | null;
}

export type OutageRoundResult = RoundResult & { outage: OutageEvidence };

async function flagsOf(lab: Lab, planName: string): Promise<FlagSettings | null> {
  const rows = await labSql<{ write_old: boolean; write_new: boolean; read_from: 'old' | 'new'; compare_percent: number }>(
    lab.targetUrl,
    'SELECT write_old, write_new, read_from, compare_percent FROM ferry.flags WHERE migration = $1',
    [planName],
  );
  const row = rows[0];
  return row ? { writeOld: row.write_old, writeNew: row.write_new, readFrom: row.read_from, comparePercent: Number(row.compare_percent) } : null;
}

/** Polls `ferry status` for `withinMs`; the last line it showed about a retry of `activity`, or null. */
async function retryShownInStatus(lab: Lab, migrationId: string, activity: string, withinMs: number): Promise<string | null> {
  const deadline = Date.now() + withinMs;
  let shown: string | null = null;
  while (Date.now() < deadline) {
    const report = await migrationReport(lab.client, migrationId).catch(() => null);
    const retry = report?.retrying?.find((r) => r.activity === activity);
    if (retry) shown = formatRetries([retry])[0]!;
    await sleep(1000);
  }
  return shown;
}

export async function runOutageRound(lab: Lab, options: OutageRoundOptions): Promise<OutageRoundResult> {
  const log = options.log ?? (() => {});
  const started = Date.now();
  const outageMs = options.outageMs ?? 120_000;
  const rows = options.rows ?? 12_000;
  const tag = `${options.fault.replace(/-/g, '_')}_${options.round}`;
  const table = `o_${tag}`;
  await createTables(lab, table, rows);
  const aborting = options.fault === 'outage-abort';
  const plan = planFor(`faults-${tag}`.replace(/_/g, '-'), table, {
    shards: { count: 3 },
    // An abort lands in a backfill that lasts; a cutover waits at its gate once the copy is verified.
    throttle: aborting ? { batchSize: 200, concurrency: 3, rowsPerSecond: Math.round(rows / 20), checkpointSeconds: 1 } : { batchSize: 2000, concurrency: 3 },
    lifecycle: { dualWrites: true, noApps: true, cutover: !aborting, soakSeconds: 0 },
  });
  const handle = await startMigration(lab.client, lab.temporal, plan, { execute: true });
  const heldIn: MigrationOutcome['heldIn'] = aborting ? 'aborting' : 'reads-on-new';
  const phasesHit: (Phase | 'unknown')[] = [];
  let retryShown: string | null = null;
  let flagsBefore: FlagSettings | null;
  log(`round ${options.round}: ${options.fault}`);

  if (aborting) {
    await until(
      async () => (await phaseOf(lab, handle.workflowId)) === 'backfilling' && (await labSql<{ n: number }>(lab.targetUrl, `SELECT count(*)::int AS n FROM ${table}`))[0]!.n > 0,
      60_000,
      `${plan.name} to copy its first rows`,
    );
    flagsBefore = await flagsOf(lab, plan.name);
    await lab.postgresOutage(outageMs, async () => {
      // The abort's answer waits for the rollback: take it as accepted and watch the rollback retry.
      await requestAbort(lab.client, handle.workflowId, { by: 'fault-lab', reason: 'Postgres outage drill' });
      phasesHit.push((await phaseOf(lab, handle.workflowId)) ?? 'unknown');
      retryShown = await retryShownInStatus(lab, handle.workflowId, 'setFlags', outageMs - 2000);
    });
  } else {
    const waitAt = async (gate: string) =>
      until(async () => (await migrationReport(lab.client, handle.workflowId)).status?.gate?.name === gate, 120_000, `${plan.name} to wait at gate ${gate}`);
    const approve = (gate: string) => approveGate(lab.client, handle.workflowId, { gate, by: 'fault-lab', note: 'Postgres outage drill' });
    await waitAt('cutover-reads');
    flagsBefore = await flagsOf(lab, plan.name);
    await lab.postgresOutage(outageMs, async () => {
      await approve('cutover-reads');
      await until(async () => (await phaseOf(lab, handle.workflowId)) === 'reads-on-new', 10_000, `${plan.name} to move reads`);
      phasesHit.push('reads-on-new');
      retryShown = await retryShownInStatus(lab, handle.workflowId, 'setFlags', outageMs - 2000);
    });
    await waitAt('stop-old-writes');
    await approve('stop-old-writes');
    await waitAt('cleanup');
    await approve('cleanup');
  }
  log(`  status while Postgres was down: ${retryShown ?? 'no retry shown'}`);

  const { status, problem } = await outcomeOf(lab, handle, Date.now() + (options.timeoutMs ?? 180_000));
  const comparison = await compareTables(lab, table);
  const flags = await flagsOf(lab, plan.name);
  const recorded = await labSql<{ state: string }>(lab.targetUrl, 'SELECT state FROM ferry.migrations WHERE migration_id = $1', [handle.workflowId]);
  const expectedPhase: Phase = aborting ? 'aborted' : 'completed';
  const expectedFlags = aborting ? flagsAfterAbort(flagsBefore).flags! : { writeOld: false, writeNew: true, readFrom: 'new' as const, comparePercent: 0 };
  const finalPhase = status?.phase ?? (problem?.startsWith('did not complete') ? 'timed out' : 'failed');
  // An abort leaves the backfill unfinished: rows not copied are expected; wrong, extra or doubled ones never are.
  const wrong = comparison.duplicated + comparison.extra + comparison.differing + (aborting ? 0 : comparison.lost);
  const problems = [
    problem,
    finalPhase !== expectedPhase ? `ended ${finalPhase}, not ${expectedPhase}` : null,
    JSON.stringify(flags) !== JSON.stringify(expectedFlags) ? `flags ended ${JSON.stringify(flags)}, not ${JSON.stringify(expectedFlags)}` : null,
    recorded[0]?.state !== expectedPhase ? `ferry.migrations records ${recorded[0]?.state ?? 'nothing'}, not ${expectedPhase}` : null,
    retryShown === null ? 'ferry status never showed the flag change retrying' : null,
    wrong > 0 ? `${wrong} rows wrong: ${JSON.stringify(comparison)}` : null,
    comparison.sourceRows !== rows ? `the source holds ${comparison.sourceRows} rows, not ${rows}` : null,
  ].filter((p): p is string => p !== null);
  const outcome: MigrationOutcome = {
    migrationId: handle.workflowId,
    heldIn,
    expectedPhase,
    phasesHit,
    finalPhase,
    verificationClean: status?.verification?.clean ?? null,
    comparison,
    problem: problems.length ? problems.join('; ') : null,
  };
  const result: OutageRoundResult = {
    fault: options.fault,
    round: options.round,
    faultsInjected: 1,
    felt: `Postgres down for ${(outageMs / 1000).toFixed(0)} s during ${aborting ? 'an abort' : 'a cutover'}; status showed "${retryShown ?? 'nothing'}"`,
    seconds: (Date.now() - started) / 1000,
    migrations: [outcome],
    outage: { retryShown, flags, expectedFlags, recordedState: recorded[0]?.state ?? null },
  };
  log(`  ${finalPhase}, flags ${JSON.stringify(flags)}, ${comparison.targetRows}/${comparison.sourceRows} rows, differing ${comparison.differing} (${result.seconds.toFixed(1)} s)`);
  return result;
}
