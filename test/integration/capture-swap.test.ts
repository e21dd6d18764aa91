/**
 * The swap at the cutover (capture.swap): pgbench's TPC-B script (4 clients, 500 tps, unmodified)
 * writes pgbench_accounts through a trigger-capture migration into a table with abalance widened to
 * bigint and a column added; at the swap gate the new table takes the old name while pgbench
 * runs, and every transaction after it lands in the new table. A lock held elsewhere makes the
 * swap try again. A target in another schema moves into the old one's, and capture.dropOldTable
 * drops the old table at the cleanup gate. A swap across databases is refused and changes nothing.
 * Changes the swap drains keep to the plan's subset: a key moved out of it leaves the new table.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oldTableAsideName } from '../../activities/capture/swap';
import { captureObjectName } from '../../activities/capture/statements';
import { ExitCode } from '../../cli/exit-codes';
import { awaitInspection, migrationReport, startMigration } from '../../operator';
import { rootMessage } from '../../lib/errors';
import { validatePlan } from '../../lib/plan';
import type { MigrationStatus } from '../../lib/status';
import { initPgbench, startPgbench } from '../../scripts/bench/pgbench';
import { ensurePgTool } from '../../scripts/bench/pg-tools';
import { PGBENCH_TPS } from '../support/pgbench-capture';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

/** Accounts whose balance is not the sum of the deltas pgbench logged for them (in the transactions `which` keeps). */
const balanceMismatches = (table: string, which: string) =>
  `SELECT count(*)::int AS n FROM ${table} AS a LEFT JOIN (SELECT aid, sum(delta) AS s FROM pgbench_history WHERE ${which} GROUP BY aid) AS h USING (aid) ` +
  `WHERE a.abalance <> COALESCE(h.s, 0)`;

describe('the swap of the tables at the cutover', () => {
  let url: string;
  let worker: TestWorker;
  let pgbench: string;

  beforeAll(async () => {
    pgbench = ensurePgTool('pgbench');
    url = await createTestDatabase('capture_swap');
    await initPgbench(pgbench, url, 1);
    // pgbench names its columns on insert: this one records each transaction's id, for the test's own split at the swap.
    await sql(url, `ALTER TABLE pgbench_history ADD COLUMN xid xid8 DEFAULT pg_current_xact_id()`);
    await sql(url, `CREATE TABLE pgbench_accounts_v2 (aid int PRIMARY KEY, bid int, abalance bigint NOT NULL, filler char(84), migrated boolean NOT NULL DEFAULT true)`);
    worker = await startWorker({ SOURCE_DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('refuses a swap across databases and changes nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-swap-'));
    const file = path.join(dir, 'across.yaml');
    writeFileSync(
      file,
      [
        'name: swap-across',
        'source: { connection: SOURCE_DB, table: pgbench_accounts, key: aid }',
        'target: { connection: OTHER_DB, table: pgbench_accounts_v2 }',
        'transform: { sql: { aid: aid, bid: bid, abalance: abalance, filler: filler } }',
        'capture: { mode: trigger, swap: true }',
        '',
      ].join('\n'),
    );
    const result = await ferry(['start', file, '--execute'], worker.temporal, { SOURCE_DB: url, OTHER_DB: url });
    expect(result.code, result.stderr).toBe(ExitCode.badInput);
    expect(result.stderr).toContain('(1 problem)');
    expect(result.stderr).toContain('capture.swap: needs the source and the target in the same database');
    expect(await sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'pgbench_accounts'::regclass AND NOT tgisinternal`)).toEqual([]);
    expect(await sqlRow(url, `SELECT to_regclass('pgbench_accounts_v2') IS NOT NULL AS v2, (SELECT count(*)::int FROM pgbench_accounts_v2) AS rows`)).toEqual({ v2: true, rows: 0 });
    expect(await sql(url, `SELECT relname FROM pg_class WHERE relname LIKE '%ferry_old%'`)).toEqual([]);
  });

  it('moves the new table into the old one\'s schema, and drops the old table at the cleanup gate when the plan says so', async () => {
    await sql(url, `CREATE TABLE ledger (id int PRIMARY KEY, amount int NOT NULL); INSERT INTO ledger SELECT g, g FROM generate_series(1, 2000) AS g`);
    await sql(url, `CREATE SCHEMA next; CREATE TABLE next.ledger_v2 (id int PRIMARY KEY, amount bigint NOT NULL)`);
    const plan = validatePlan({
      name: 'capture-swap-drop',
      source: { connection: 'SOURCE_DB', table: 'ledger', key: 'id' },
      target: { connection: 'SOURCE_DB', schema: 'next', table: 'ledger_v2' },
      transform: { sql: { id: 'id', amount: 'amount' } },
      capture: { mode: 'trigger', swap: true, dropOldTable: true, oldShapeView: { name: 'ledger_v1', columns: { id: 'id', amount: 'amount::int' } } },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const gateIs = (gate: string) =>
      eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === gate ? true : undefined), 60_000, `the ${gate} gate`);
    await gateIs('swap');
    await sql(url, `UPDATE ledger SET amount = amount + 1 WHERE id <= 100; DELETE FROM ledger WHERE id > 1990; INSERT INTO ledger VALUES (5000, 7)`);
    const expected = await sql(url, `SELECT id, amount::bigint AS amount FROM ledger ORDER BY id`);
    expect((await ferry(['approve', id, '--gate', 'swap', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    await gateIs('cleanup');
    expect(await sqlRow(url, `SELECT to_regclass('next.ledger_v2') IS NULL AS moved, to_regclass($1) IS NOT NULL AS aside`, [oldTableAsideName('ledger', id)])).toEqual({ moved: true, aside: true });
    expect(await sql(url, `SELECT id, amount FROM public.ledger ORDER BY id`)).toEqual(expected);
    expect(await sqlRow(url, `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'public.ledger'::regclass AND attname = 'amount'`)).toEqual({ type: 'bigint' });
    // The view keeps the old shape readable: the old column type, the same rows.
    expect(await sqlRow(url, `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'public.ledger_v1'::regclass AND attname = 'amount'`)).toEqual({ type: 'integer' });
    expect(await sql(url, `SELECT md5(string_agg(v::text, ',' ORDER BY id)) AS digest FROM public.ledger_v1 AS v`)).toEqual(
      await sql(url, `SELECT md5(string_agg(row(id, amount::int)::text, ',' ORDER BY id)) AS digest FROM public.ledger`),
    );
    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.capture?.swap).toMatchObject({ oldTableAside: null, oldTableDroppedAt: expect.any(String) });
    expect((await sqlRow(url, `SELECT to_regclass($1) IS NULL AS dropped`, [oldTableAsideName('ledger', id)])).dropped).toBe(true);
    expect(await sql(url, `SELECT id, amount FROM public.ledger_v1 ORDER BY id`)).toEqual(expected.map((r) => ({ ...r, amount: Number(r.amount) })));
  });

  it('keeps pgbench running through the swap, retries while a lock is held, and lands every later transaction in the new table', async () => {
    const plan = validatePlan({
      name: 'capture-swap-pgbench',
      source: { connection: 'SOURCE_DB', table: 'pgbench_accounts', key: 'aid' },
      target: { connection: 'SOURCE_DB', table: 'pgbench_accounts_v2' },
      transform: { sql: { aid: 'aid', bid: 'bid', abalance: 'abalance::bigint', filler: 'filler' } },
      capture: { mode: 'trigger', swap: true },
      verify: { inFlightDelaySeconds: 0.5 },
      // The copy at full speed: the pacing controller beside pgbench is capture-pgbench.test.ts's.
      throttle: { budget: false },
    });
    const bench = startPgbench(pgbench, url, PGBENCH_TPS);
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const holder = new pg.Client({ connectionString: url });
    let status: MigrationStatus | undefined;
    const waitFor = (gate: string) =>
      eventually(async () => {
        status = (await migrationReport(worker.client, id)).status ?? undefined;
        return status?.gate?.name === gate ? status : undefined;
      }, 150_000, `the ${gate} gate`);
    let benchOutput: string;
    try {
      await waitFor('swap');
      // Another session holds a lock the swap needs: the swap gives up after 2 s and tries again.
      await holder.connect();
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE pgbench_accounts_v2 IN ACCESS SHARE MODE');
      const approved = await ferry(['approve', id, '--gate', 'swap', '--by', 'carol', '--note', 'verified'], worker.temporal);
      expect(approved.code, approved.stderr).toBe(ExitCode.ok);
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      status = (await migrationReport(worker.client, id)).status ?? undefined;
      expect(status?.phase).toBe('swapping');
      expect(status?.capture?.swap).toBeUndefined();
      expect((await sqlRow(url, `SELECT to_regclass('pgbench_accounts_v2') IS NOT NULL AS present`)).present).toBe(true);
      await holder.query('COMMIT');

      const atCleanup = await waitFor('cleanup');
      const swap = atCleanup.capture!.swap!;
      expect(swap.attempts).toBeGreaterThan(1);
      expect(swap.oldTableAside).toBe(`public.${oldTableAsideName('pgbench_accounts', id)}`);

      // pgbench goes on writing, now into the new table under the old name.
      const after = `NOT pg_visible_in_snapshot(xid, '${swap.snapshot}'::pg_snapshot)`;
      await eventually(async () => ((await sqlRow(url, `SELECT count(*)::int AS n FROM pgbench_history WHERE ${after}`)).n > 200 ? true : undefined), 60_000, 'pgbench transactions after the swap');
      expect(bench.process.exitCode, bench.output()).toBeNull();

      // An abort can no longer go back.
      const abort = await ferry(['abort', id, '--reason', 'too late', '--by', 'dave'], worker.temporal);
      expect(abort.code).not.toBe(ExitCode.ok);
      expect(abort.stderr).toMatch(/cannot go back/);
    } finally {
      await holder.end().catch(() => {});
      benchOutput = await bench.stop();
    }
    // pgbench ran with no error: every statement worked on the new table.
    expect(benchOutput).not.toMatch(/ERROR|aborted/);

    const swap = status!.capture!.swap!;
    const old = swap.oldTableAside!;
    const before = `pg_visible_in_snapshot(xid, '${swap.snapshot}'::pg_snapshot)`;
    // The new table under the old name: widened, with its added column.
    expect(await sqlRow(url, `SELECT format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = 'pgbench_accounts'::regclass AND attname = 'abalance'`)).toEqual({ type: 'bigint' });
    expect((await sqlRow(url, `SELECT count(*)::int AS n FROM pgbench_accounts WHERE migrated`)).n).toBe(100_000);
    // Every transaction, before the swap and after it, is in the new table.
    expect((await sqlRow(url, balanceMismatches('pgbench_accounts', 'true'))).n).toBe(0);
    // The old table aside holds exactly the transactions before the swap...
    expect((await sqlRow(url, balanceMismatches(old, before))).n).toBe(0);
    // ... and equals the new table at the swap: the new one less the transactions after it.
    const atSwap = await sqlRow(
      url,
      `SELECT count(*)::int AS n FROM pgbench_accounts AS n JOIN ${old} AS o USING (aid)
       LEFT JOIN (SELECT aid, sum(delta) AS s FROM pgbench_history WHERE NOT ${before} GROUP BY aid) AS h USING (aid)
       WHERE n.abalance - COALESCE(h.s, 0) <> o.abalance OR n.bid IS DISTINCT FROM o.bid OR n.filler IS DISTINCT FROM o.filler`,
    );
    expect(atSwap.n).toBe(0);
    expect((await sqlRow(url, `SELECT count(*)::int AS n FROM ${old}`)).n).toBe(100_000);

    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    // Kept aside without capture.dropOldTable, and said so.
    expect((await sqlRow(url, `SELECT to_regclass($1) IS NOT NULL AS present`, [old])).present).toBe(true);
    expect(result.events.map((e) => e.detail)).toContainEqual(expect.stringMatching(/is kept; drop it by hand/));
    expect(await sql(url, `SELECT 1 FROM pg_trigger WHERE tgname = $1`, [captureObjectName(id)])).toEqual([]);
    expect(await sql(url, `SELECT 1 FROM ferry.change_log WHERE migration_id = $1`, [id])).toEqual([]);
  });

  it('refuses a view of the old shape whose name is taken or whose column does not run: at the start, and at the swap without swapping', async () => {
    await sql(url, `
      CREATE TABLE tally (id int PRIMARY KEY, n int NOT NULL); INSERT INTO tally SELECT g, g FROM generate_series(1, 500) AS g;
      CREATE TABLE tally_v2 (id int PRIMARY KEY, n bigint NOT NULL);
      CREATE VIEW tally_v1 AS SELECT 'an application view' AS note;`);
    const taken = (name: string, columns: Record<string, string>, view = 'tally_v1') =>
      validatePlan({
        name,
        source: { connection: 'SOURCE_DB', table: 'tally', key: 'id' },
        target: { connection: 'SOURCE_DB', table: 'tally_v2' },
        transform: { sql: { id: 'id', n: 'n' } },
        capture: { mode: 'trigger', swap: true, oldShapeView: { name: view, columns } },
      });
    const refusal = async (plan: ReturnType<typeof taken>) => {
      const started = await startMigration(worker.client, worker.temporal, plan, { execute: true });
      return awaitInspection(worker.client, started.workflowId).then(() => null, (error: unknown) => error);
    };
    const triggers = () => sql(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'tally'::regclass AND NOT tgisinternal`);
    // Found at the start, before anything is installed or copied.
    const refused = await refusal(taken('capture-swap-view-start', { id: 'id', n: 'n::int' }));
    expect((refused as Error).message).toContain('capture.oldShapeView.name: public.tally_v1 exists already');
    const badColumn = await refusal(taken('capture-swap-view-column', { id: 'id', n: 'no_such_column' }, 'tally_old_shape'));
    expect((badColumn as Error).message).toContain('capture.oldShapeView.columns.n does not run on public.tally_v2');
    expect(await triggers()).toEqual([]);
    expect(await sqlRow(url, `SELECT count(*)::int AS rows FROM tally_v2`)).toEqual({ rows: 0 });
    // Taken between the start and the swap: the swap refuses it.
    await sql(url, `DROP VIEW tally_v1`);
    const handle = await startMigration(worker.client, worker.temporal, taken('capture-swap-view-taken', { id: 'id', n: 'n::int' }), { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === 'swap' ? true : undefined), 60_000, 'the swap gate');
    await sql(url, `CREATE VIEW tally_v1 AS SELECT 'an application view' AS note`);
    const before = await sql(url, `SELECT md5(string_agg(t::text, ',' ORDER BY id)) AS digest FROM tally AS t`);
    expect((await ferry(['approve', id, '--gate', 'swap', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    const failure = await handle.result().then(() => null, (error: unknown) => error);
    expect(rootMessage(failure)).toContain('capture.oldShapeView.name: public.tally_v1 exists already; nothing was swapped');
    // Nothing moved: the tables keep their names and rows, the application's view is untouched.
    expect(await sqlRow(url, `SELECT to_regclass('public.tally') IS NOT NULL AS source, to_regclass('public.tally_v2') IS NOT NULL AS target`)).toEqual({ source: true, target: true });
    expect(await sql(url, `SELECT md5(string_agg(t::text, ',' ORDER BY id)) AS digest FROM tally AS t`)).toEqual(before);
    expect(await sql(url, `SELECT note FROM tally_v1`)).toEqual([{ note: 'an application view' }]);
    expect(await sql(url, `SELECT relname FROM pg_class WHERE relname LIKE 'tally_ferry_old%'`)).toEqual([]);
    expect(await triggers()).toEqual([]);
  });

  it('drains under its lock a key moved out of the subset by deleting it, and one moved into it by copying it', async () => {
    await sql(url, `
      CREATE TABLE members (id int PRIMARY KEY, active boolean NOT NULL, name text NOT NULL);
      INSERT INTO members SELECT g, g % 2 = 0, 'member ' || g FROM generate_series(1, 2000) AS g;
      CREATE TABLE members_v2 (id int PRIMARY KEY, name text NOT NULL);`);
    const plan = validatePlan({
      name: 'capture-swap-subset',
      source: { connection: 'SOURCE_DB', table: 'members', key: 'id' },
      target: { connection: 'SOURCE_DB', table: 'members_v2' },
      transform: { sql: { id: 'id', name: 'name' } },
      subset: { where: 'active' },
      capture: { mode: 'trigger', swap: true },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const gateIs = (gate: string) =>
      eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === gate ? true : undefined), 60_000, `the ${gate} gate`);
    await gateIs('swap');
    // The application's transaction commits only once the swap waits for its lock: the change
    // apply has stopped by then, so the swap's drain is what applies these keys.
    const app = new pg.Client({ connectionString: url });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query(`UPDATE members SET active = false WHERE id % 2 = 0 AND id <= 200;
                       UPDATE members SET active = true WHERE id % 2 = 1 AND id > 1900;
                       UPDATE members SET name = name || ' (renamed)' WHERE id % 2 = 0 AND id > 1900`);
      expect((await ferry(['approve', id, '--gate', 'swap', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
      await eventually(
        async () => (await sqlRow(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'LOCK TABLE%members%'`)).n > 0 || undefined,
        30_000,
        "the swap waiting for the application's lock",
      );
      await app.query('COMMIT');
    } finally {
      await app.end();
    }
    await gateIs('cleanup');
    const aside = oldTableAsideName('members', id);
    // By the test's own SQL: the new table, under the old name, holds the subset of the old one.
    const want = await rowsDigest(url, `SELECT id, name FROM ${aside} WHERE active`);
    expect(want.rows).toBe(950);
    expect(await sqlRow(url, `SELECT count(*)::int AS left_behind FROM members WHERE id % 2 = 0 AND id <= 200`)).toEqual({ left_behind: 0 });
    expect(await rowsDigest(url, `SELECT id, name FROM members`)).toEqual(want);
    expect((await ferry(['approve', id, '--gate', 'cleanup', '--by', 'carol'], worker.temporal)).code).toBe(ExitCode.ok);
    expect((await handle.result()).phase).toBe('completed');
  });
});
