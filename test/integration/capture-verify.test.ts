/**
 * Verification under trigger capture, against real PostgreSQL: a row that differs because the
 * change apply has not applied its change yet is read again once the applier has, so an apply
 * behind the in-flight delay leaves no difference, in a pass and in an open mismatch an earlier
 * pass left; a row that truly differs, or whose change an applier that is not running leaves
 * waiting, is still a difference, as is one of a logical capture whose slot is gone. The test's
 * own md5 of every row's text checks what verification says.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCaptureTrigger } from '../../activities/capture/trigger';
import { createDatabases, type Databases } from '../../activities/connections';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import { startOfCapture, type ApplyCursor } from '../../lib/capture';
import { validatePlan, type Plan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { captureVerification } from '../support/capture-verification';
import { startWriter, type WriterCounts } from '../support/capture-writer';
import { createTestDatabase, sql } from '../support/harness';

const ROWS = 4000;

/** The test's own comparison: md5 of each row's text, the source through the same reshaping by hand. */
async function differingKeys(url: string): Promise<string[]> {
  const rows = await sql<{ key: string }>(
    url,
    `SELECT COALESCE(s.id, t.id)::text AS key
       FROM (SELECT id, md5(row(id, (balance * 100)::bigint, note)::text) AS h FROM accounts) AS s
       FULL JOIN (SELECT id, md5(row(id, cents, note)::text) AS h FROM accounts_v2) AS t USING (id)
      WHERE s.h IS DISTINCT FROM t.h ORDER BY 1`,
  );
  return rows.map((r) => r.key);
}

describe('verification under trigger capture', () => {
  let url: string;
  let databases: Databases;
  let driver: ReturnType<typeof captureVerification>;

  const planOf = (name: string, captureWaitSeconds: number): Plan =>
    validatePlan({
      name,
      source: { connection: 'DB', table: 'accounts', key: 'id' },
      target: { connection: 'DB', table: 'accounts_v2' },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: { mode: 'trigger', applyBatchSize: 200 },
      verify: { captureWaitSeconds, inFlightDelaySeconds: 0.01 },
    });

  /** The source as it began, and the target equal to it (the backfill's result, by hand). */
  const equalTables = () =>
    sql(url, `TRUNCATE accounts_v2; DELETE FROM accounts WHERE id > ${ROWS}; UPDATE accounts SET note = 'note ' || id;
      INSERT INTO accounts_v2 SELECT id, (balance * 100)::bigint, note FROM accounts`);

  /** Captures from here on, with the target equal to the source. */
  async function captured(migrationId: string, plan: Plan): Promise<void> {
    await equalTables();
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
  }

  beforeAll(async () => {
    url = await createTestDatabase('capture_verify');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO accounts SELECT i, i * 1.25, 'note ' || i FROM generate_series(1, ${ROWS}) AS i;
      CREATE TABLE accounts_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);`);
    databases = createDatabases({ env: { DB: url } });
    driver = captureVerification(databases);
  });
  afterAll(() => databases?.close());

  it('reads a row again once the change apply has applied its change, and still finds a row that truly differs', async () => {
    const migrationId = 'capture-verify-late';
    const plan = planOf(migrationId, 20);
    await captured(migrationId, plan);
    await sql(url, `UPDATE accounts SET note = 'changed ' || id WHERE id % 8 = 0`);
    // A difference no change explains: written to the target by hand.
    await sql(url, `UPDATE accounts_v2 SET note = 'by hand' WHERE id = 7`);

    // The applier starts well after the in-flight delay (10 ms) has passed.
    const verifying = driver.verifyAll({ migrationId, plan });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const applied = await runActivity(driver.applier.applyChanges, { migrationId, plan, cursor: startOfCapture, rowsPerSecond: null, prune: true, returnWhenCaughtUp: true, maxSeconds: 5 });
    const result = await verifying;

    expect(applied.keysApplied).toBe(ROWS / 8);
    expect(result.mismatches).toEqual({ missing: 0, extra: 0, value: 1 });
    expect(result.examples.map((e) => e.key)).toEqual(['7']);
    expect(result.inFlight).toBe(ROWS / 8);
    expect(await differingKeys(url)).toEqual(['7']);
  });

  it('reports the rows whose changes an applier that is not running leaves waiting, once the wait is up', async () => {
    const migrationId = 'capture-verify-stopped';
    const plan = planOf(migrationId, 1);
    await captured(migrationId, plan);
    await sql(url, `UPDATE accounts SET note = 'changed ' || id WHERE id % 100 = 0`);

    const started = Date.now();
    const result = await driver.verifyAll({ migrationId, plan });
    expect(result.mismatches).toEqual({ missing: 0, extra: 0, value: ROWS / 100 });
    expect(result.inFlight).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(await differingKeys(url)).toHaveLength(ROWS / 100);
  });

  it('compares an open mismatch of an earlier pass once the change apply has applied the change made to it since', async () => {
    const migrationId = 'capture-verify-carried';
    const plan = planOf(migrationId, 20);
    await captured(migrationId, plan);
    await sql(url, `UPDATE accounts_v2 SET note = 'by hand' WHERE id = 9`);
    expect((await driver.verifyAll({ migrationId, plan })).mismatches).toEqual({ missing: 0, extra: 0, value: 1 });

    // The application writes the row; the change apply gets to it only after the delay.
    await sql(url, `UPDATE accounts SET note = 'written again' WHERE id = 9`);
    const carried = runActivity(createVerifier(databases).recheckOpenMismatches, { migrationId, plan, pass: 2 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await runActivity(driver.applier.applyChanges, { migrationId, plan, cursor: startOfCapture, rowsPerSecond: null, prune: true, returnWhenCaughtUp: true, maxSeconds: 5 });
    expect(await carried).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(await sql(url, `SELECT key FROM ferry.mismatches WHERE migration_id = $1 AND resolved_at IS NULL`, [migrationId])).toEqual([]);
    expect(await differingKeys(url)).toEqual([]);
  });

  it('does not wait out the whole wait for a row the application writes many times a second', async () => {
    const migrationId = 'capture-verify-hot';
    const plan = planOf(migrationId, 60);
    await captured(migrationId, plan);
    const hot = new pg.Client({ connectionString: url });
    await hot.connect();
    let writing = true;
    let writes = 0;
    const writer = (async () => {
      for (; writing; writes += 1) await hot.query(`UPDATE accounts SET note = 'hot ' || $1 WHERE id = 11`, [writes]);
    })();
    const started = Date.now();
    let result: VerifyShardResult;
    let cursor: ApplyCursor;
    try {
      ({ result, cursor } = await driver.verifyWhileApplying(migrationId, plan, { verifyAfterMs: 500 }));
    } finally {
      writing = false;
      await writer;
      await hot.end();
    }
    expect(writes).toBeGreaterThan(50);
    expect(result.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(Date.now() - started).toBeLessThan(30_000);
    // In flight, not different: once the applier catches up, the test's own comparison agrees.
    await driver.catchUp(migrationId, plan, cursor);
    expect(await differingKeys(url)).toEqual([]);
  });

  it('does not wait on a logical capture whose slot is gone (a migration that has ended): its differences stand', async () => {
    const migrationId = 'capture-verify-ended';
    const plan = validatePlan({ ...planOf(migrationId, 20), capture: { mode: 'logical' } });
    await equalTables();
    await sql(url, `UPDATE accounts_v2 SET note = 'by hand' WHERE id IN (3, 5)`);
    const started = Date.now();
    const result = await driver.verifyAll({ migrationId, plan });
    expect(result.mismatches).toEqual({ missing: 0, extra: 0, value: 2 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await differingKeys(url)).toEqual(['3', '5']);
  });

  it('keeps up with a writer while the applier runs beside it: nothing differs, and the test\'s own digest agrees once both stop', async () => {
    const migrationId = 'capture-verify-live';
    const plan = planOf(migrationId, 20);
    await captured(migrationId, plan);
    const writer = startWriter(url, { table: 'accounts', keys: ROWS, freshKeysFrom: 10_000_000, pauseMs: 2 });
    let counts: WriterCounts;
    let verified: { result: VerifyShardResult; cursor: ApplyCursor };
    try {
      verified = await driver.verifyWhileApplying(migrationId, plan, { verifyAfterMs: 1000 });
    } finally {
      counts = await writer.stop();
    }
    const { result } = verified;
    expect(counts.updates + counts.inserts + counts.deletes + counts.keyChanges).toBeGreaterThan(100);
    expect(result.mismatches).toEqual({ missing: 0, extra: 0, value: 0 });
    expect(result.inFlight).toBeGreaterThan(0);

    // Caught up with the writer stopped, the test's own comparison finds both sides equal.
    await driver.catchUp(migrationId, plan, verified.cursor);
    expect(await differingKeys(url)).toEqual([]);
  });
});
