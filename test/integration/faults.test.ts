/**
 * Injected faults, each while one migration backfills and another verifies, on a Postgres
 * cluster, a Temporal server and worker processes of this file's own: every migration completes
 * once the fault is gone, and the test's own SQL finds every row exactly once, with equal values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, startLab, type Lab } from '../../scripts/reliability/lab';
import { runRound, type Fault, type RoundResult } from '../../scripts/reliability/scenarios';

const SEED = 20_240_611;

describe('faults during a backfill and during a verification', () => {
  let lab: Lab;
  const random = seededRandom(SEED);

  beforeAll(async () => {
    lab = await startLab();
  });
  afterAll(async () => {
    await lab?.close();
  });

  async function round(fault: Fault): Promise<RoundResult> {
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

  it('worker processes SIGKILLed three times in a row at seeded random points, each restarted', async () => {
    const result = await round('worker-kill');
    expect(result.faultsInjected).toBe(3);
    // Each killed worker's activities are taken over only at their heartbeat timeouts (30 s for a
    // copy, 60 s for verification), and three kills can each land on both migrations.
  }, 420_000);

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
});
