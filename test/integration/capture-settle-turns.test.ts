/**
 * Verification's looks under change capture take turns with the change apply on the apply lock,
 * against real PostgreSQL in Temporal's activity environment. Four chunks of a pass keep asking
 * for looks whose re-read takes 150 ms (a loaded server), as a pass over a table being written
 * does; the apply, which only tries the lock, must still get it promptly each time it asks.
 * Before the turns, the looks took the lock back to back and kept the apply out for the whole
 * pass: under load it fell ever further behind a live writer and verification never came out clean.
 */
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withApplyLock } from '../../activities/capture/apply-keys';
import { CHANGE_LOG_SQL } from '../../activities/capture/statements';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { captureSettle } from '../../activities/verify/capture-settle';
import type { Mismatch } from '../../activities/state/ferry-schema';
import { validatePlan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase } from '../support/harness';

const REREAD_MS = 150;
const LOOKS_FOR_MS = 4000;

describe('looks at the change log and the change apply', () => {
  let url: string;
  let pool: pg.Pool;

  beforeAll(async () => {
    url = await createTestDatabase('settle_turns');
    pool = new pg.Pool({ connectionString: url, max: 12 });
    await pool.query(CHANGE_LOG_SQL.text);
    await installFerrySchema(pool);
  });
  afterAll(() => pool?.end());

  it('leave the apply lock to the apply between looks, however many chunks ask', { timeout: 30_000 }, async () => {
    const migrationId = 'ferry/settle-turns/1';
    const plan = validatePlan({
      name: 'settle-turns',
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_v2' },
      transform: { sql: { id: 'id' } },
      capture: 'trigger',
    });
    const differing: Mismatch[] = [{ key: '7', category: 'value', columns: ['balance'] }];
    let looks = 0;
    const reread = async (rows: Mismatch[]) => {
      looks += 1;
      await delay(REREAD_MS);
      return rows;
    };

    const { applyWaits, settled } = await runActivity(async () => {
      const settle = captureSettle(pool, pool, plan, migrationId, false);
      const until = Date.now() + LOOKS_FOR_MS;
      // A pass's chunks: each settles its differing row again as soon as the last settle returned.
      const chunks = Array.from({ length: 4 }, async () => {
        let n = 0;
        while (Date.now() < until) {
          expect(await settle(differing, reread)).toEqual(differing);
          n += 1;
        }
        return n;
      });
      // The apply: a round now and then, each trying the lock until it holds it.
      const applyWaits: number[] = [];
      await delay(300);
      while (Date.now() < until - 500) {
        const asked = Date.now();
        await withApplyLock(pool, migrationId, async () => applyWaits.push(Date.now() - asked));
        await delay(100);
      }
      return { applyWaits, settled: await Promise.all(chunks) };
    }, undefined);

    // The looks went on throughout (no chunk starved either), and the apply got each turn within
    // about one look's hold and a few tries (about 110 ms here), not after the pass (2.8 s before
    // the turns).
    expect(settled.every((n) => n >= 2), `settles per chunk: ${settled.join(', ')}`).toBe(true);
    expect(looks).toBeGreaterThanOrEqual(8);
    expect(applyWaits.length, `apply waits (ms): ${applyWaits.join(', ')}`).toBeGreaterThanOrEqual(5);
    expect(Math.max(...applyWaits), `apply waits (ms): ${applyWaits.join(', ')}`).toBeLessThan(1000);
  });
});
