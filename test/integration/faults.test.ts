/**
 * Injected faults, each while one migration backfills and another verifies, on a Postgres
 * cluster, a Temporal server and worker processes of this file's own: every migration completes
 * once the fault is gone, and the test's own SQL finds every row exactly once, with equal values.
 * Then Postgres outages during an abort and during a cutover: the rollback or the flag change
 * retries until the database is back, and the flags end where the lifecycle's rules say.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, startLab, type Lab } from '../../scripts/reliability/lab';
import { runOutageRound } from '../../scripts/reliability/outages';
import { runRound, type CaptureFault, type Fault, type OutageFault, type RoundResult } from '../../scripts/reliability/scenarios';

const SEED = 20_240_611;
/** The reliability run keeps Postgres down for two minutes; the suite's budget allows less. */
const OUTAGE_MS = 20_000;

describe('faults during a backfill and during a verification', () => {
  let lab: Lab;
  const random = seededRandom(SEED);

  beforeAll(async () => {
    lab = await startLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  async function round(fault: Exclude<Fault, OutageFault | CaptureFault>): Promise<RoundResult> {
    const result = await runRound(lab, { fault, round: 1, random, repeats: 3, backfillRows: 12_000, verifyRows: 12_000 });
    for (const migration of result.migrations) {
      // The fault landed where it was meant to: the first injection hit the phase under test.
      expect(migration.phasesHit[0], `${migration.migrationId} when first hit`).toBe(migration.heldIn);
      expect({ id: migration.migrationId, problem: migration.problem, phase: migration.finalPhase }, lab.workerLogs()).toEqual({
        id: migration.migrationId,
        problem: null,
        phase: 'completed',
      });
      expect(migration.verificationClean).toBe(true);
      expect(migration.comparison).toEqual({
        sourceRows: 12_000,
        targetRows: 12_000,
        lost: 0,
        duplicated: 0,
        extra: 0,
        differing: 0,
      });
    }
    return result;
  }

  it('worker processes SIGKILLed three times in a row at seeded random points, each restarted; their copies go on elsewhere within 20 s', async () => {
    const result = await round('worker-kill');
    expect(result.faultsInjected).toBe(3);
    // Activities heartbeat every 2 s against a 10 s timeout: a killed worker's copy or
    // verification starts again on another worker at the timeout plus a retry's 1 s backoff.
    console.log(`takeover after each SIGKILL: ${result.takeoverSeconds!.map((t) => (t === null ? 'nothing running there' : `${t.toFixed(1)} s`)).join(', ')}`);
    const measured = result.takeoverSeconds!.filter((t): t is number => t !== null);
    expect(measured.length, 'at least one kill landed on a running activity').toBeGreaterThan(0);
    for (const seconds of measured) expect(seconds).toBeLessThan(20);
  }, 240_000);

  it('the Temporal server stopped and started again on its SQLite file and port', async () => {
    const result = await round('temporal-restart');
    expect(result.faultsInjected).toBe(1);
  });

  it('the Postgres cluster of source and target restarted', async () => {
    const result = await round('postgres-restart');
    expect(result.faultsInjected).toBe(1);
  });

  it("Ferry's connections ended with pg_terminate_backend three times", async () => {
    const result = await round('connection-kill');
    expect(result.sessionsEnded).toBeGreaterThan(0);
  });

  it('statements cancelled by statement_timeout while the source is slow for a moment', async () => {
    const result = await round('statement-timeout');
    // Both the copy and the verification ran into the timeout, not just one of them.
    expect(result.cancelled!.backfilling).toBeGreaterThan(0);
    expect(result.cancelled!.verifying).toBeGreaterThan(0);
  });

  for (const fault of ['outage-abort', 'outage-cutover'] as const) {
    it(`Postgres down for ${OUTAGE_MS / 1000} s during ${fault === 'outage-abort' ? 'an abort' : 'a cutover'}: the flag change retries, shows why, and ends where the rules say`, async () => {
      const result = await runOutageRound(lab, { fault, round: 1, outageMs: OUTAGE_MS });
      const [migration] = result.migrations;
      console.log(`${fault}: while Postgres was down, status showed: ${result.outage.retryShown}`);
      expect(result.outage.retryShown).toMatch(fault === 'outage-abort' ? /^RETRYING {2}rolling back flags: retrying \(attempt \d+/ : /^RETRYING {2}changing flags: retrying \(attempt \d+/);
      expect(result.outage.retryShown).toMatch(/ECONNREFUSED|connect|terminat|shut/i);
      expect(result.outage.flags).toEqual(
        fault === 'outage-abort'
          ? { writeOld: true, writeNew: false, readFrom: 'old', comparePercent: 0 }
          : { writeOld: false, writeNew: true, readFrom: 'new', comparePercent: 0 },
      );
      expect(result.outage.recordedState).toBe(fault === 'outage-abort' ? 'aborted' : 'completed');
      expect({ problem: migration!.problem, phase: migration!.finalPhase }, lab.workerLogs()).toEqual({
        problem: null,
        phase: fault === 'outage-abort' ? 'aborted' : 'completed',
      });
      // The source is whole, and what reached the target is right; an abort leaves the rest uncopied.
      const { comparison } = migration!;
      expect(comparison).toMatchObject({ sourceRows: 12_000, duplicated: 0, extra: 0, differing: 0 });
      if (fault === 'outage-cutover') expect(comparison).toMatchObject({ targetRows: 12_000, lost: 0 });
    });
  }
});
