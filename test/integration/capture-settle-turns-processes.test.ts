/**
 * Verification's looks take turns with the change apply across worker processes, not only within
 * one: each shard's verification may run on another worker, and each worker's looks leave the
 * apply lock free after them, but another worker's look could take it in that gap. Four processes
 * are four loads of the module here (each with its own memory), against real PostgreSQL.
 */
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { withApplyLock } from '../../activities/capture/apply-keys';
import { CHANGE_LOG_SQL } from '../../activities/capture/statements';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import type { captureSettle } from '../../activities/verify/capture-settle';
import type { Mismatch } from '../../activities/state/ferry-schema';
import { validatePlan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase } from '../support/harness';

const REREAD_MS = 150;
const LOOKS_FOR_MS = 5000;

type CaptureSettle = typeof captureSettle;

/** The module loaded afresh, as another worker process holds it. */
async function freshCaptureSettle(): Promise<CaptureSettle> {
  vi.resetModules();
  return (await vi.importActual<{ captureSettle: CaptureSettle }>('../../activities/verify/capture-settle')).captureSettle;
}

describe('looks at the change log and the change apply, across worker processes', () => {
  let url: string;
  let pool: pg.Pool;

  beforeAll(async () => {
    url = await createTestDatabase('settle_turns_procs');
    pool = new pg.Pool({ connectionString: url, max: 16 });
    await pool.query(CHANGE_LOG_SQL.text);
    await installFerrySchema(pool);
  });
  afterAll(() => pool?.end());

  it('leave the apply lock to the apply between looks, whichever process looks', { timeout: 40_000 }, async () => {
    const migrationId = 'ferry/settle-turns-procs/1';
    const plan = validatePlan({
      name: 'settle-turns-procs',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_v2' },
      transform: { sql: { id: 'id' } },
      capture: 'trigger',
    });
    const differing: Mismatch[] = [{ key: '7', category: 'value', columns: ['balance'] }];
    const processes = [await freshCaptureSettle(), await freshCaptureSettle(), await freshCaptureSettle(), await freshCaptureSettle()];
    expect(processes[0]).not.toBe(processes[1]);
    let looks = 0;
    const reread = async (rows: Mismatch[]) => {
      looks += 1;
      await delay(REREAD_MS);
      return rows;
    };

    const { applyWaits, settled } = await runActivity(async () => {
      const until = Date.now() + LOOKS_FOR_MS;
      // Four processes' shard verifications: two chunks each settle again as soon as their last settle returned.
      const chunks = processes.flatMap((captureSettle) => {
        const settle = captureSettle(pool, pool, plan, migrationId, false);
        return Array.from({ length: 2 }, async () => {
          let n = 0;
          while (Date.now() < until) {
            expect(await settle(differing, reread)).toEqual(differing);
            n += 1;
          }
          return n;
        });
      });
      const applyWaits: number[] = [];
      await delay(300);
      while (Date.now() < until - 500) {
        const asked = Date.now();
        await withApplyLock(pool, migrationId, async () => applyWaits.push(Date.now() - asked));
        await delay(100);
      }
      return { applyWaits, settled: await Promise.all(chunks) };
    }, undefined);

    // The looks went on, and the apply got each turn within about one look's hold and a few
    // tries. With turns kept by each process alone, the four took the lock in each other's gaps:
    // the apply waited up to 1.3 to 2.4 s and got 5 to 9 rounds in the time it now gets about 26.
    // (Which process's look comes next is left to chance: settles per chunk are in the messages.)
    const seen = `apply waits (ms): ${applyWaits.join(', ')}; settles per chunk: ${settled.join(', ')}`;
    expect(looks, seen).toBeGreaterThanOrEqual(16);
    expect(applyWaits.length, seen).toBeGreaterThanOrEqual(12);
    expect(Math.max(...applyWaits), seen).toBeLessThan(1000);
  });
});
