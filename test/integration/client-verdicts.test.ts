/**
 * The client library's verdicts against a real Postgres, with careless and hostile inputs: what
 * compareReads, write and delete report must agree with what the databases hold, as the test's
 * own SQL sees it.
 */
import fc from 'fast-check';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFerryClient, createFlagReader, createReadComparer, type ComparisonResult, type FerryClient, type FlagReader } from '../../client';
import { createReadTally } from '../../client/read-tally';
import { createDatabases } from '../../activities/connections';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { createFlagSetter } from '../../activities/state/flags';
import { gateFiguresText } from '../../cli/render';
import { validatePlan } from '../../lib/plan';
import { metricValue, memoryLogger } from '../support/client-fakes';
import { createTestDatabase, eventually, sql, sqlRow } from '../support/harness';

const MIGRATION = 'verdicts';

describe('the client library\'s verdicts', () => {
  let url: string;
  let pool: pg.Pool;
  const closers: (() => Promise<void>)[] = [];

  function reader(): FlagReader {
    const flags = createFlagReader({ pool, migration: MIGRATION, logger: memoryLogger(), cacheMs: 0, listen: false });
    closers.push(() => flags.close());
    return flags;
  }

  function client(options: Partial<Parameters<typeof createFerryClient>[0]> = {}): { ferry: FerryClient; registry: Registry } {
    const registry = new Registry();
    const ferry = createFerryClient({ pool, migration: MIGRATION, registry, logger: memoryLogger(), cacheMs: 0, listen: false, ...options });
    closers.push(() => ferry.close());
    return { ferry, registry };
  }

  const setFlags = (assignments: string) => sql(url, `UPDATE ferry.flags SET ${assignments}, version = version + 1 WHERE migration = $1`, [MIGRATION]);

  beforeAll(async () => {
    url = await createTestDatabase('client_verdicts');
    pool = new pg.Pool({ connectionString: url, max: 5 });
    await installFerrySchema(pool);
    await sql(url, `INSERT INTO ferry.flags (migration, write_old, write_new, compare_percent) VALUES ($1, true, true, 100)`, [MIGRATION]);
  });
  afterAll(async () => {
    for (const close of closers) await close();
    await pool?.end();
  });

  it('says match only when both stores hold the same rows (in the same order, if ordered), repeated keys included', async () => {
    await sql(url, `CREATE TABLE pairs_old (k int NOT NULL, v int NOT NULL); CREATE TABLE pairs_new (k int NOT NULL, v int NOT NULL);`);
    const outcomes: ComparisonResult[] = [];
    const comparer = createReadComparer({ flags: reader(), logger: memoryLogger(), retryDelayMs: 0, onCompared: (o) => void outcomes.push(o) });
    closers.push(async () => comparer.close());
    const rows = fc.array(fc.record({ k: fc.integer({ min: 1, max: 2 }), v: fc.integer({ min: 1, max: 2 }) }), { maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(rows, rows, async (oldRows, newRows) => {
        await sql(url, `TRUNCATE pairs_old, pairs_new`);
        for (const [table, list] of [['pairs_old', oldRows], ['pairs_new', newRows]] as const) {
          for (const row of list) await sql(url, `INSERT INTO ${table} (k, v) VALUES ($1, $2)`, [row.k, row.v]);
        }
        // The stores agree when the sorted text of their rows is the same; in order, when the text in heap order is.
        const agree = (order: string) => sqlRow(url, `SELECT
            (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY ${order}), '')) FROM pairs_old t) =
            (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY ${order}), '')) FROM pairs_new t) AS same`);
        for (const ordered of [false, true]) {
          const same = (await agree(ordered ? 'ctid' : 't::text')).same as boolean;
          outcomes.length = 0;
          await comparer.compareReads('pairs', {
            old: async () => (await pool.query<{ k: number; v: number }>('SELECT k, v FROM pairs_old ORDER BY ctid')).rows,
            new: async () => (await pool.query<{ k: number; v: number }>('SELECT k, v FROM pairs_new ORDER BY ctid')).rows,
            key: (row) => String(row.k),
            ordered,
            await: true,
          });
          expect(outcomes).toHaveLength(1);
          expect({ ordered, match: outcomes[0]!.result === 'match' }).toEqual({ ordered, match: same });
        }
      }),
      {
        numRuns: 60,
        examples: [
          [[{ k: 1, v: 1 }, { k: 1, v: 1 }, { k: 2, v: 1 }], [{ k: 1, v: 1 }, { k: 2, v: 1 }, { k: 2, v: 1 }]],
          [[{ k: 1, v: 1 }, { k: 1, v: 2 }], [{ k: 1, v: 2 }, { k: 1, v: 2 }]],
          [[{ k: 1, v: 2 }, { k: 1, v: 1 }], [{ k: 1, v: 1 }, { k: 1, v: 2 }]],
        ],
      },
    );
  });

  it('does not report a delete as done when its new-side transaction was aborted and rolled back', async () => {
    await sql(url, `CREATE TABLE gone_old (id int PRIMARY KEY); CREATE TABLE gone_new (id int PRIMARY KEY);
                    INSERT INTO gone_old VALUES (1), (2); INSERT INTO gone_new VALUES (1), (2);`);
    const { ferry, registry } = client();
    // A new-side step fails and the callback swallows the error: the transaction is aborted.
    const careless = async (tx: pg.PoolClient, id: number) => {
      const deleted = await tx.query('DELETE FROM gone_new WHERE id = $1', [id]);
      await tx.query('INSERT INTO gone_new (id) VALUES (NULL)').catch(() => {});
      return deleted;
    };
    await ferry.delete('delete-gone', { table: 'public.gone_new', key: '1', old: () => pool.query('DELETE FROM gone_old WHERE id = 1'), new: (tx) => careless(tx, 1) });
    // Postgres rolled the delete and the tombstone back: the verdict must say the new side failed.
    expect(await sql(url, 'SELECT id FROM gone_new WHERE id = 1')).toEqual([{ id: 1 }]);
    expect(await sql(url, `SELECT key FROM ferry.tombstones WHERE target_table = 'public.gone_new'`)).toEqual([]);
    expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'delete-gone', side: 'new' })).toBe(1);

    // Once the new store is the only one written, the caller must hear it.
    await setFlags('write_old = false');
    try {
      await expect(
        ferry.delete('delete-gone', { table: 'public.gone_new', key: '2', old: () => pool.query('DELETE FROM gone_old WHERE id = 2'), new: (tx) => careless(tx, 2) }),
      ).rejects.toThrow(/rolled back/);
      expect(await sql(url, 'SELECT id FROM gone_new WHERE id = 2')).toEqual([{ id: 2 }]);
    } finally {
      await setFlags('write_old = true');
    }
  });

  it('counts in the gate\'s read tally every difference seen, read again or not', async () => {
    await sql(url, `CREATE TABLE tally_old (id int PRIMARY KEY, v text); CREATE TABLE tally_new (id int PRIMARY KEY, v text);
                    INSERT INTO tally_old SELECT g, 'v' || g FROM generate_series(1, 12) g;
                    INSERT INTO tally_new SELECT g, CASE WHEN g % 3 = 0 THEN 'changed' ELSE 'v' || g END FROM generate_series(1, 12) g;`);
    const differing = (await sqlRow(url, `SELECT count(*)::int AS n FROM tally_old o JOIN tally_new n USING (id) WHERE o.v IS DISTINCT FROM n.v`)).n as number;
    expect(differing).toBe(4);
    // One mismatch a minute is read again; the others stay unverified.
    const { ferry } = client({ clientId: 'tally-app', compare: { retries: { perWindow: 1 }, retryDelayMs: 0 } });
    for (let id = 1; id <= 12; id += 1) {
      await ferry.compareReads('tally-by-id', {
        old: async () => (await pool.query('SELECT id, v FROM tally_old WHERE id = $1', [id])).rows,
        new: async () => (await pool.query('SELECT id, v FROM tally_new WHERE id = $1', [id])).rows,
        key: (row) => String(row.id),
        await: true,
      });
    }
    await ferry.close();
    expect(await sqlRow(url, `SELECT compared::int, mismatched::int FROM ferry.read_comparisons WHERE migration = $1 AND client_id = $2`, [MIGRATION, ferry.flags.clientId]))
      .toEqual({ compared: 12, mismatched: differing });
  });

  it('keeps new writes off for a cool-down longer than a timer can wait, and refuses one that is not a number', async () => {
    await sql(url, `CREATE TABLE off_old (id int PRIMARY KEY)`);
    for (const coolDownMs of [2 ** 31, 30 * 24 * 3600 * 1000, Infinity]) {
      const { ferry, registry } = client({ killSwitch: { maxErrors: 1, coolDownMs } });
      const write = (id: number) =>
        ferry.write('insert-off', {
          old: () => pool.query('INSERT INTO off_old (id) VALUES ($1) ON CONFLICT DO NOTHING', [id]),
          new: () => pool.query('INSERT INTO no_such_table (id) VALUES ($1)', [id]),
        });
      await write(1);
      expect(ferry.dualWriter.killSwitch()).toMatchObject({ tripped: true });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await write(2);
      expect({ coolDownMs, state: ferry.dualWriter.killSwitch() }).toMatchObject({ coolDownMs, state: { tripped: true } });
      expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'insert-off', side: 'new' })).toBe(1);
      expect(await metricValue(registry, 'ferry_client_dual_write_skipped_total', { name: 'insert-off' })).toBe(1);
      expect(await metricValue(registry, 'ferry_client_kill_switch_tripped', { migration: MIGRATION, path: 'write' })).toBe(1);
    }
    for (const killSwitch of [{ coolDownMs: Number.NaN }, { windowMs: -1 }, { maxErrors: Number.NaN }]) {
      expect(() => client({ killSwitch })).toThrow(/killSwitch\.(coolDownMs|windowMs|maxErrors)/);
    }
  });

  it('fails a throwOnMismatch read whose rows the key function cannot key', async () => {
    await sql(url, `CREATE TABLE keyed_old (id int, v text); CREATE TABLE keyed_new (id int, v text);
                    INSERT INTO keyed_old VALUES (1, 'a'); INSERT INTO keyed_new VALUES (NULL, 'a');`);
    const { ferry } = client();
    await expect(
      ferry.compareReads('keyed', {
        old: async () => (await pool.query<{ id: number; v: string }>('SELECT id, v FROM keyed_old')).rows,
        new: async () => (await pool.query<{ id: number; v: string }>('SELECT id, v FROM keyed_new')).rows,
        key: (row) => row.id.toString(),
        throwOnMismatch: true,
      }),
    ).rejects.toThrow(/could not be compared/);
  });

  it('acknowledges a flag version only once the writes begun under the one before have settled', async () => {
    const slow = 'verdicts-slow';
    await sql(url, `CREATE TABLE slow_old (id int PRIMARY KEY); CREATE TABLE slow_new (id int PRIMARY KEY);`);
    await sql(url, `INSERT INTO ferry.flags (migration, write_old, write_new) VALUES ($1, true, false)`, [slow]);
    const { ferry } = client({ migration: slow, clientId: 'slow-app', cacheMs: 60_000, listen: true });
    await ferry.flags.get();
    // A write under version 1 (old store only) that takes a while to commit.
    let settledAt = 0;
    const write = ferry
      .write('insert-slow', {
        old: () => pool.query('INSERT INTO slow_old (id) SELECT 1 FROM pg_sleep(1.5)'),
        new: () => pool.query('INSERT INTO slow_new (id) VALUES (1)'),
      })
      .then(() => void (settledAt = Date.now()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await sql(url, `UPDATE ferry.flags SET write_new = true, version = version + 1 WHERE migration = $1`, [slow]);
    // The migration goes on (its backfill starts) once every process acknowledged version 2.
    const ackedAt = await eventually(async () => {
      const rows = await sql(url, `SELECT 1 FROM ferry.flag_acks WHERE migration = $1 AND client_id = $2 AND version = 2`, [slow, ferry.flags.clientId]);
      return rows.length === 1 && Date.now();
    }, 5000, 'the ack of version 2');
    await write;
    // The write under version 1 reached the old store alone: it must have settled before the ack.
    expect(await sql(url, 'SELECT (SELECT count(*)::int FROM slow_old) AS old, (SELECT count(*)::int FROM slow_new) AS new')).toEqual([{ old: 1, new: 0 }]);
    expect(settledAt).toBeGreaterThan(0);
    expect(ackedAt).toBeGreaterThanOrEqual(settledAt);
  });

  it('shows the kill switch gauge at 1 while any client of the migration in the process keeps new writes off', async () => {
    const registry = new Registry();
    const tripped = () => metricValue(registry, 'ferry_client_kill_switch_tripped', { migration: MIGRATION, path: 'write' });
    const { ferry: first } = client({ registry, killSwitch: { maxErrors: 1 } });
    await first.write('insert-gauge', { old: () => pool.query('SELECT 1'), new: () => pool.query('SELECT * FROM no_such_table') });
    expect(first.dualWriter.killSwitch()).toMatchObject({ tripped: true });
    expect(await tripped()).toBe(1);
    // A second client of the same migration starts (another pool, a worker thread's own client).
    const { ferry: second } = client({ registry });
    expect(second.dualWriter.killSwitch()).toMatchObject({ tripped: false });
    expect(await tripped()).toBe(1);
    first.dualWriter.resetKillSwitch();
    expect(await tripped()).toBe(0);
    // Closed while tripped, a client no longer keeps anything off.
    await first.write('insert-gauge', { old: () => pool.query('SELECT 1'), new: () => pool.query('SELECT * FROM no_such_table') });
    expect(await tripped()).toBe(1);
    await first.close();
    expect(await tripped()).toBe(0);
  });

  it('counts in the read tally a comparison still in flight when the client closes', async () => {
    await sql(url, `CREATE TABLE closing_old (id int PRIMARY KEY, v text); CREATE TABLE closing_new (id int PRIMARY KEY, v text);
                    INSERT INTO closing_old VALUES (1, 'a'); INSERT INTO closing_new VALUES (1, 'b');`);
    const { ferry } = client({ clientId: 'closing-app', compare: { retryDelayMs: 200 } });
    // Not awaited: the mismatch is read again in the background, after a delay.
    await ferry.compareReads('closing', {
      old: async () => (await pool.query('SELECT id, v FROM closing_old')).rows,
      new: async () => (await pool.query('SELECT id, v FROM closing_new')).rows,
      key: (row) => String(row.id),
    });
    await ferry.close();
    expect(await sql(url, `SELECT compared::int, mismatched::int FROM ferry.read_comparisons WHERE migration = $1 AND client_id = $2`, [MIGRATION, ferry.flags.clientId]))
      .toEqual([{ compared: 1, mismatched: 1 }]);
  });

  it('refuses a retry allowance that is not a number of 0 or more, rather than retrying every mismatch', () => {
    for (const retries of [{ perWindow: Number.NaN }, { windowMs: Number.NaN }, { perWindow: -1 }]) {
      expect(() => client({ compare: { retries } })).toThrow(/compare\.retries\.(perWindow|windowMs)/);
    }
  });

  it('keeps a row per process for replicas given one clientId: one still on the old flags shows lagging, and their read tallies add up', async () => {
    const name = 'verdicts-replicas';
    await sql(url, `CREATE TABLE replicas_old (id int PRIMARY KEY, v text); CREATE TABLE replicas_new (id int PRIMARY KEY, v text);
                    INSERT INTO replicas_old VALUES (1, 'a'), (2, 'b'); INSERT INTO replicas_new VALUES (1, 'a'), (2, 'changed');`);
    await sql(url, `INSERT INTO ferry.flags (migration, write_old, write_new, compare_percent) VALUES ($1, true, false, 100)`, [name]);
    // Two replicas of one application, configured alike; the second reads the flags once a minute.
    const { ferry: first } = client({ migration: name, clientId: 'orders-api' });
    const { ferry: second } = client({ migration: name, clientId: 'orders-api', cacheMs: 60_000 });
    await Promise.all([first.flags.get(), second.flags.get()]);
    expect(first.flags.clientId).not.toBe(second.flags.clientId);
    const acks = () => sql(url, `SELECT client_id, version::int FROM ferry.flag_acks WHERE migration = $1 ORDER BY version, client_id`, [name]);
    await eventually(async () => (await acks()).length === 2, 5000, 'both acks of version 1');

    await sql(url, `UPDATE ferry.flags SET write_new = true, version = version + 1 WHERE migration = $1`, [name]);
    expect((await first.flags.get()).version).toBe(2);
    // What the flag gate reads, by the test's own query: the second replica is still behind.
    const seen = await eventually(async () => {
      const rows = await acks();
      return rows.some((row) => row.version === 2) && rows;
    }, 5000, 'the first replica\'s ack of version 2');
    expect(seen).toEqual([{ client_id: second.flags.clientId, version: 1 }, { client_id: first.flags.clientId, version: 2 }]);

    // Each replica's comparisons count: 3 reads by one and 2 by the other, one key differing in each.
    const compare = (ferry: FerryClient, id: number) =>
      ferry.compareReads('replicas-by-id', {
        old: async () => (await pool.query('SELECT id, v FROM replicas_old WHERE id = $1', [id])).rows,
        new: async () => (await pool.query('SELECT id, v FROM replicas_new WHERE id = $1', [id])).rows,
        key: (row) => String(row.id),
        await: true,
      });
    for (const id of [1, 1, 2]) await compare(first, id);
    for (const id of [1, 2]) await compare(second, id);
    await first.close();
    await second.close();
    expect(await sqlRow(url, `SELECT sum(compared)::int AS compared, sum(mismatched)::int AS mismatched FROM ferry.read_comparisons WHERE migration = $1`, [name]))
      .toEqual({ compared: 5, mismatched: 2 });
  });

  it('never lowers a process\'s read tally when an earlier flush lands after a later one', async () => {
    const clientId = 'tally-order:1:abcdef';
    const matched: ComparisonResult = { result: 'match', reason: 'equal' };
    const later = createReadTally({ pool, migration: MIGRATION, clientId, flushEveryMs: 60_000 });
    const earlier = createReadTally({ pool, migration: MIGRATION, clientId, flushEveryMs: 60_000 });
    for (let i = 0; i < 5; i += 1) later.record(matched);
    for (let i = 0; i < 3; i += 1) earlier.record(matched);
    await later.close();
    // The same process's counts as they stood three comparisons earlier, written last.
    await earlier.close();
    expect(await sqlRow(url, `SELECT compared::int, mismatched::int FROM ferry.read_comparisons WHERE migration = $1 AND client_id = $2`, [MIGRATION, clientId]))
      .toEqual({ compared: 5, mismatched: 0 });
  });

  it('shows at a gate the dual reads each process compared since it started, labelled so', async () => {
    const name = 'verdicts-gate-figures';
    const clientId = 'gate-figures:1:abcdef';
    const tally = createReadTally({ pool, migration: name, clientId, flushEveryMs: 60_000 });
    for (let i = 0; i < 1000; i += 1) tally.record({ result: 'match', reason: 'equal' });
    await tally.flush();
    const mismatch = { name: 'by-id', category: 'value' as const, missing: [], extra: [], keys: ['1'], fields: ['v'], oldCount: 1, newCount: 1 };
    for (let i = 0; i < 10; i += 1) tally.record({ result: 'mismatch', reason: 'value', mismatch });
    await tally.close();
    const plan = validatePlan({ name, source: { connection: 'DB', table: 'a', key: 'id' }, target: { connection: 'DB', table: 'b' }, transform: { sql: { id: 'id' } } });
    const databases = createDatabases({ env: { DB: url } });
    try {
      const figures = await createFlagSetter(databases).gateFigures({ plan });
      // The label is true of the figures: every comparison this process made since it started.
      expect({ compared: figures.readsCompared, mismatched: figures.readsMismatched }).toEqual({ compared: 1010, mismatched: 10 });
      expect(gateFiguresText(figures)).toMatch(/^1,010 dual reads compared, 10 differed \(0\.99%\) \(since each application process started, of those that reported in the last hour\); /);
      // A process that last reported over an hour ago is left out, all its counts with it.
      await sql(url, `UPDATE ferry.read_comparisons SET updated_at = now() - interval '61 minutes' WHERE client_id = $1`, [clientId]);
      expect(gateFiguresText(await createFlagSetter(databases).gateFigures({ plan }))).toMatch(/^0 dual reads compared, 0 differed \(since each/);
    } finally {
      await databases.close();
    }
  });

  it('refuses a clientId that names nothing, rather than sharing a row with every process given the same', () => {
    for (const clientId of ['', '  ', 7]) {
      expect(() => createFerryClient({ pool, migration: MIGRATION, clientId: clientId as string })).toThrow(`ferry: clientId must be a name for this application, not ${JSON.stringify(clientId)}`);
    }
  });

  it('refuses a client without a migration name, which would follow the initial flags for ever', () => {
    for (const migration of ['', '  ', undefined, null, 42]) {
      expect(() => client({ migration: migration as unknown as string })).toThrow(/the migration must be its plan's name/);
    }
  });

  it('keeps writing the new store after a cutover when the flags row, then Ferry\'s schema, goes away', async () => {
    const cutover = 'verdicts-cutover';
    await sql(url, `CREATE TABLE kept_old (id int PRIMARY KEY); CREATE TABLE kept_new (id int PRIMARY KEY);`);
    await sql(url, `INSERT INTO ferry.flags (migration, write_old, write_new, read_from) VALUES ($1, false, true, 'new')`, [cutover]);
    const { ferry } = client({ migration: cutover });
    const write = (id: number) =>
      ferry.write('insert-kept', {
        old: () => pool.query('INSERT INTO kept_old (id) VALUES ($1)', [id]),
        new: () => pool.query('INSERT INTO kept_new (id) VALUES ($1)', [id]),
      });
    await write(1);
    await sql(url, 'DELETE FROM ferry.flags WHERE migration = $1', [cutover]);
    await write(2);
    expect(await ferry.flags.get()).toMatchObject({ writeOld: false, writeNew: true, readFrom: 'new' });
    await sql(url, 'DROP SCHEMA ferry CASCADE');
    try {
      await write(3);
    } finally {
      await installFerrySchema(pool);
      await sql(url, `INSERT INTO ferry.flags (migration, write_old, write_new, compare_percent) VALUES ($1, true, true, 100) ON CONFLICT DO NOTHING`, [MIGRATION]);
    }
    expect(await sql(url, 'SELECT id FROM kept_new ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
    expect(await sql(url, 'SELECT id FROM kept_old')).toEqual([]);
  });

  it('refuses to write, in a process started after a cut-over migration\'s flags row was deleted, rather than write the retired table', async () => {
    const retired = 'verdicts-retired';
    await sql(url, `CREATE TABLE retired_old (id int PRIMARY KEY); CREATE TABLE retired_new (id int PRIMARY KEY);`);
    await sql(url, `INSERT INTO ferry.flags (migration, write_old, write_new, read_from, version) VALUES ($1, false, true, 'new', 3)`, [retired]);
    const write = (ferry: FerryClient, id: number) =>
      ferry.write('insert-retired', {
        old: () => pool.query('INSERT INTO retired_old (id) VALUES ($1)', [id]),
        new: () => pool.query('INSERT INTO retired_new (id) VALUES ($1)', [id]),
      });
    const { ferry: before } = client({ migration: retired });
    await write(before, 1);
    await eventually(async () => (await sql(url, 'SELECT 1 FROM ferry.flag_acks WHERE migration = $1 AND version = 3', [retired])).length === 1, 5000, 'the ack of version 3');
    await before.close();
    await sql(url, 'DELETE FROM ferry.flags WHERE migration = $1', [retired]);

    // A process started now (a rolled-back deploy) cannot know the flags: it writes nowhere.
    const { ferry: after } = client({ migration: retired });
    await expect(write(after, 2)).rejects.toThrow(
      'ferry: migration "verdicts-retired" has no flags row, though application processes followed its flags up to version 3 (ferry.flag_acks): the row was deleted',
    );
    await expect(after.flags.get()).rejects.toThrow("DELETE FROM ferry.flag_acks WHERE migration = 'verdicts-retired'");
    expect(await sql(url, 'SELECT id FROM retired_old UNION ALL SELECT -id FROM retired_new')).toEqual([{ id: -1 }]);

    // Once its acknowledgements are gone too, the migration is over for the client: the initial flags.
    await sql(url, 'DELETE FROM ferry.flag_acks WHERE migration = $1', [retired]);
    expect(await after.flags.get()).toMatchObject({ writeOld: true, writeNew: false, readFrom: 'old', version: 0 });
  });
});
