/**
 * Verification under capture, trigger and logical, on generated histories against real
 * PostgreSQL, through a SQL transform or its twin in a module: a table of generated rows,
 * copied; then generated writes to the source (inserts, updates, deletes, key changes,
 * rolled-back transactions) mixed with damage done to the target by hand (a changed value, a
 * deleted row, an extra row). A verification pass then runs with the change apply beside it,
 * starting late, or not running. Its verdict, key for key and category for category, must be
 * what the test's own md5 of every row's text says: as the tables stand when the applier does
 * not run; when it runs, with more writes to the source during the pass, after it has caught
 * up, where a key damaged and then written during the pass may be found either way.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogicalCaptureSetup } from '../../activities/capture/logical-setup';
import { createCaptureTrigger } from '../../activities/capture/trigger';
import { createDatabases, type Databases } from '../../activities/connections';
import { stopTransformThreads } from '../../activities/transform/transform-threads';
import type { VerifyShardResult } from '../../activities/verify/verifier';
import { validatePlan, type Plan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { captureVerification, LEDGER_DIFFERENCES_SQL, LEDGER_TABLES, LEDGER_TRANSFORM_SQL } from '../support/capture-verification';
import { createTestDatabase, sql } from '../support/harness';

/** Keys the writer inserts or moves to, and the target's extra rows: apart from the first rows' 1..n. */
const FRESH_KEYS_FROM = 100_000;
const EXTRA_KEYS_FROM = 900_000;

/** Generated cases: 16 in CI, more on demand. */
const RUNS = Number(process.env.CAPTURE_GENERATED_RUNS ?? 16);

type Verdict = { key: string; category: 'missing' | 'extra' | 'value' }[];

/** Text Postgres stores as given: no NUL; tabs, newlines, backslashes, quotes and non-ASCII included. */
const note = fc.option(
  fc.string({ maxLength: 8, unit: fc.constantFrom('a', 'Z', ' ', '\t', '\n', '\\', '"', ',', '(', ')', 'é', '😀', 'N') }),
  { nil: null },
);
const cents = fc.integer({ min: -99_999_999, max: 99_999_999 });

const operation = fc.oneof(
  fc.record({ kind: fc.constant('update' as const), at: fc.nat(), note, cents }),
  fc.record({ kind: fc.constant('insert' as const), note, cents }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('rekey' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('rolledBack' as const), at: fc.nat(), note }),
  fc.record({ kind: fc.constant('damageValue' as const), at: fc.nat(), note }),
  fc.record({ kind: fc.constant('damageMissing' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('damageExtra' as const), note }),
);
type Operation = typeof operation extends fc.Arbitrary<infer O> ? O : never;

const scenario = fc.record({
  rows: fc.array(fc.record({ note, cents }), { maxLength: 200, size: 'medium' }),
  operations: fc.array(operation, { maxLength: 60, size: 'medium' }),
  /** Writes to the source while the pass runs (with the applier running), this many ms apart. */
  writesDuringPass: fc.array(operation.filter((op) => !op.kind.startsWith('damage')), { maxLength: 40, size: 'medium' }),
  msBetweenWrites: fc.integer({ min: 0, max: 20 }),
  mode: fc.constantFrom('trigger' as const, 'logical' as const),
  transform: fc.constantFrom('sql' as const, 'module' as const),
  applier: fc.constantFrom('beside' as const, 'late' as const, 'stopped' as const),
  chunkSize: fc.integer({ min: 5, max: 200 }),
});

describe('verification under capture, on generated writes and damage', () => {
  let url: string;
  let databases: Databases;
  let driver: ReturnType<typeof captureVerification>;
  let runs = 0;
  /** The module transform's folder, inside the tests' transform directory (FERRY_TRANSFORM_DIR). */
  let moduleDir: string;

  const planOf = (name: string, mode: 'trigger' | 'logical', transform: 'sql' | 'module', captureWaitSeconds: number): Plan =>
    validatePlan({
      name,
      source: { connection: 'DB', table: 'ledger', key: 'id' },
      target: { connection: 'DB', table: 'ledger_v2' },
      transform:
        transform === 'sql'
          ? { sql: LEDGER_TRANSFORM_SQL }
          : { module: path.join(moduleDir, 'ledger.ts'), columns: ['id', 'cents', 'note'] },
      capture: { mode, applyBatchSize: 25 },
      verify: { captureWaitSeconds, inFlightDelaySeconds: 0.01 },
    });

  /** The test's own comparison: md5 of each row's text, the source reshaped by hand. */
  const comparison = async (): Promise<Verdict> => sql(url, LEDGER_DIFFERENCES_SQL);

  /** What the pass recorded: every key it found different, with its category. */
  const recorded = async (migrationId: string): Promise<Verdict> =>
    sql(url, `SELECT key, category FROM ferry.mismatches WHERE migration_id = $1 AND pass = 1 ORDER BY key::int`, [migrationId]);

  /**
   * Runs one generated step on a connection of its own, as an application (or a person at the
   * target) would; returns the keys it wrote at the source and the keys it damaged at the target.
   */
  async function perform(db: pg.Client, op: Operation, present: number[], fresh: { next: number; extra: number }): Promise<{ written: number[]; damaged: number[] }> {
    const pick = (at: number) => present[at % present.length]!;
    if (op.kind === 'insert') {
      const key = fresh.next++;
      await db.query(`INSERT INTO ledger VALUES ($1, $2::bigint / 100.0, $3)`, [key, op.cents, op.note]);
      present.push(key);
      return { written: [key], damaged: [] };
    }
    if (op.kind === 'damageExtra') {
      const key = fresh.extra++;
      await db.query(`INSERT INTO ledger_v2 VALUES ($1, 0, $2)`, [key, op.note]);
      return { written: [], damaged: [key] };
    }
    if (present.length === 0) return { written: [], damaged: [] };
    const key = pick(op.at);
    switch (op.kind) {
      case 'update':
        await db.query(`UPDATE ledger SET balance = $2::bigint / 100.0, note = $3 WHERE id = $1`, [key, op.cents, op.note]);
        return { written: [key], damaged: [] };
      case 'delete':
        await db.query(`DELETE FROM ledger WHERE id = $1`, [key]);
        present.splice(present.indexOf(key), 1);
        return { written: [key], damaged: [] };
      case 'rekey': {
        const moved = fresh.next++;
        await db.query(`UPDATE ledger SET id = $2 WHERE id = $1`, [key, moved]);
        present[present.indexOf(key)] = moved;
        return { written: [key, moved], damaged: [] };
      }
      case 'rolledBack':
        await db.query('BEGIN');
        await db.query(`UPDATE ledger SET note = $2 WHERE id = $1`, [key, op.note]);
        await db.query('ROLLBACK');
        return { written: [], damaged: [] };
      case 'damageValue':
        await db.query(`UPDATE ledger_v2 SET note = $2, cents = cents + 1 WHERE id = $1`, [key, op.note]);
        return { written: [], damaged: [key] };
      case 'damageMissing':
        await db.query(`DELETE FROM ledger_v2 WHERE id = $1`, [key]);
        return { written: [], damaged: [key] };
    }
  }

  beforeAll(async () => {
    url = await createTestDatabase('capture_verify_generated');
    await sql(url, LEDGER_TABLES);
    moduleDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-capture-generated-'));
    // The SQL transform's twin: balance arrives as numeric's text, exactly.
    writeFileSync(
      path.join(moduleDir, 'ledger.ts'),
      `export default (row: { id: number; balance: string; note: string | null }) => {
         const [whole, fraction = ''] = row.balance.split('.');
         return { id: row.id, cents: BigInt(whole + fraction.padEnd(2, '0')).toString(), note: row.note };
       };`,
    );
    databases = createDatabases({ env: { DB: url } });
    driver = captureVerification(databases);
  });
  afterAll(async () => {
    await databases?.close();
    await stopTransformThreads();
    if (moduleDir) rmSync(moduleDir, { recursive: true, force: true });
  });

  it('finds exactly the keys, and the kind of difference, that the test\'s own comparison finds', async () => {
    const trigger = createCaptureTrigger(databases);
    const logical = createLogicalCaptureSetup(databases);
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      await fc.assert(
        fc.asyncProperty(scenario, async ({ rows, operations, writesDuringPass, msBetweenWrites, mode, transform, applier, chunkSize }) => {
          runs += 1;
          const migrationId = `capture-generated-${runs}`;
          const plan = planOf(migrationId, mode, transform, applier === 'stopped' ? 0.5 : 30);
          // The first rows, and the target equal to them (the backfill's result, by hand).
          await sql(url, `TRUNCATE ledger, ledger_v2`);
          await sql(
            url,
            `INSERT INTO ledger SELECT i, c::bigint / 100.0, n FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS r(c, n, i)`,
            [rows.map((r) => r.cents), rows.map((r) => r.note)],
          );
          await sql(url, `INSERT INTO ledger_v2 SELECT id, (balance * 100)::bigint, note FROM ledger`);
          // Logical capture's reader runs from the start, as in a migration; its applier as the scenario says.
          if (mode === 'trigger') await runActivity(trigger.installCapture, { migrationId, plan });
          else await runActivity(logical.installLogicalCapture, { migrationId, plan });
          const reader = mode === 'logical' ? driver.startReader(migrationId, plan) : null;
          try {
            const present = rows.map((_, i) => i + 1);
            const fresh = { next: FRESH_KEYS_FROM, extra: EXTRA_KEYS_FROM };
            const damaged = new Set<string>();
            for (const op of operations) for (const key of (await perform(db, op, present, fresh)).damaged) damaged.add(String(key));

            let result: VerifyShardResult;
            let verdict: Verdict;
            if (applier === 'stopped') {
              const truth = await comparison();
              result = await driver.verifyAll({ migrationId, plan }, chunkSize);
              verdict = await recorded(migrationId);
              expect(verdict).toEqual(truth);
            } else {
              const writtenDuringPass = new Set<string>();
              let passing = true;
              const writing = (async () => {
                for (const op of writesDuringPass) {
                  if (!passing) break;
                  await new Promise((resolve) => setTimeout(resolve, msBetweenWrites));
                  for (const key of (await perform(db, op, present, fresh)).written) writtenDuringPass.add(String(key));
                }
              })();
              let verified: Awaited<ReturnType<typeof driver.verifyWhileApplying>>;
              try {
                verified = await driver.verifyWhileApplying(migrationId, plan, { applyAfterMs: applier === 'late' ? 300 : 0, chunkSize });
              } finally {
                passing = false;
                await writing;
              }
              result = verified.result;
              await driver.catchUp(migrationId, plan, verified.cursor);
              const truth = await comparison();
              verdict = await recorded(migrationId);
              // Every difference left once the applier caught up was found, as what it is.
              expect(truth.filter((d) => !verdict.some((v) => v.key === d.key && v.category === d.category))).toEqual([]);
              // Any other key found was damaged, then written (and so repaired) while the pass ran.
              const healed = (key: string) => damaged.has(key) && writtenDuringPass.has(key);
              expect(verdict.filter((v) => !truth.some((d) => d.key === v.key) && !healed(v.key))).toEqual([]);
            }
            expect(result.mismatches).toEqual({
              missing: verdict.filter((d) => d.category === 'missing').length,
              extra: verdict.filter((d) => d.category === 'extra').length,
              value: verdict.filter((d) => d.category === 'value').length,
            });
          } finally {
            await reader?.stop();
            if (mode === 'trigger') await runActivity(trigger.removeCapture, { migrationId, plan });
            else await runActivity(logical.removeLogicalCapture, { migrationId, plan });
          }
        }),
        // A failure depends on timing as well as on the case: reported as found, not shrunk.
        { numRuns: RUNS, endOnFailure: true },
      );
    } finally {
      await db.end();
    }
  }, 60_000 + RUNS * 5_000);
});
