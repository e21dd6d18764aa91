/** The client library against a real Postgres: flags over LISTEN/NOTIFY, acks, dual writes, tombstones. */
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFerryClient, createFlagReader, type FerryClient, type FlagReader, type Flags } from '../../client';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { metricValue, memoryLogger } from '../support/client-fakes';
import { createTestDatabase, eventually, sql, sqlRow } from '../support/harness';

const MIGRATION = 'split-full-name';

describe('the client library', () => {
  let url: string;
  let pool: pg.Pool;
  const closers: (() => Promise<void>)[] = [];

  function reader(options: { cacheMs?: number; clientId?: string } = {}): FlagReader {
    const flags = createFlagReader({ pool, migration: MIGRATION, logger: memoryLogger(), ...options });
    closers.push(() => flags.close());
    return flags;
  }

  function client(options: Partial<Parameters<typeof createFerryClient>[0]> = {}): { ferry: FerryClient; registry: Registry } {
    const registry = new Registry();
    const ferry = createFerryClient({ pool, migration: MIGRATION, registry, logger: memoryLogger(), ...options });
    closers.push(() => ferry.close());
    return { ferry, registry };
  }

  const setFlags = (assignments: string) => sql(url, `UPDATE ferry.flags SET ${assignments}, version = version + 1 WHERE migration = $1`, [MIGRATION]);

  beforeAll(async () => {
    url = await createTestDatabase('client');
    pool = new pg.Pool({ connectionString: url, max: 5 });
  });
  afterAll(async () => {
    for (const close of closers) await close();
    await pool?.end();
  });

  it('reads initialFlags at version 0 without Ferry\'s schema, then without a row, then the row', async () => {
    const noVersion: Flags = { writeOld: true, writeNew: false, readFrom: 'old', comparePercent: 0, version: 0 };
    expect(await reader().get()).toEqual(noVersion);
    await installFerrySchema(pool);
    expect(await reader().get()).toEqual(noVersion);
    await sql(url, `INSERT INTO ferry.flags (migration, write_new, compare_percent) VALUES ($1, true, 10)`, [MIGRATION]);
    const flags = reader({ clientId: 'app-1' });
    expect(await flags.get()).toEqual({ writeOld: true, writeNew: true, readFrom: 'old', comparePercent: 10, version: 1 });
    expect(flags.current()).toEqual(await flags.get());
    expect(flags.clientId).toMatch(/^app-1:\d+:[0-9a-f]{6}$/);
    await eventually(async () => (await sql(url, `SELECT 1 FROM ferry.flag_acks WHERE migration = $1 AND client_id = $2 AND version = 1`, [MIGRATION, flags.clientId])).length === 1, 5000, 'the ack');
  });

  it('says once that a name has no flags while other migrations have, naming them, and stays on the initial flags', async () => {
    const logger = memoryLogger();
    const typo = createFlagReader({ pool, migration: 'split-fullname', logger, cacheMs: 0, listen: false });
    closers.push(() => typo.close());
    expect(await typo.get()).toMatchObject({ writeOld: true, writeNew: false, readFrom: 'old', version: 0 });
    await typo.get();
    expect(logger.lines).toEqual([
      { message: expect.stringContaining('no flags row for migration "split-fullname" in this database, though other migrations have one ("split-full-name")'), details: { migration: 'split-fullname', others: [MIGRATION] } },
    ]);
    // Where no migration has set flags yet, a name with no row is just early: nothing is said.
    const early = await createTestDatabase('client-early');
    const earlyPool = new pg.Pool({ connectionString: early, max: 2 });
    try {
      await installFerrySchema(earlyPool);
      const quiet = memoryLogger();
      const before = createFlagReader({ pool: earlyPool, migration: MIGRATION, logger: quiet, listen: false });
      expect(await before.get()).toMatchObject({ version: 0 });
      await before.close();
      expect(quiet.lines).toEqual([]);
    } finally {
      await earlyPool.end();
    }
  });

  it('is known at version 0 before any flags row, and renews its acknowledgement while idle', async () => {
    const first = createFlagReader({ pool, migration: 'client-first-change', logger: memoryLogger(), listen: false, ackEveryMs: 100 });
    closers.push(() => first.close());
    expect(await first.get()).toMatchObject({ version: 0 });
    const ack = () => sql(url, `SELECT version::int, seen_at > now() - interval '1 second' AS recent FROM ferry.flag_acks WHERE client_id = $1`, [first.clientId]);
    await eventually(async () => (await ack()).length === 1, 5000, 'the ack of version 0');
    expect(await ack()).toEqual([{ version: 0, recent: true }]);
    // Idle for longer than the live window: the renewal brings it back without any read.
    await sql(url, `UPDATE ferry.flag_acks SET seen_at = now() - interval '5 minutes' WHERE client_id = $1`, [first.clientId]);
    await eventually(async () => (await ack())[0]?.recent === true, 5000, 'the renewed ack');
    // A later version recorded meanwhile (an acknowledgement that committed first) is never moved back.
    await sql(url, `UPDATE ferry.flag_acks SET version = 7, seen_at = now() - interval '5 minutes' WHERE client_id = $1`, [first.clientId]);
    await eventually(async () => (await ack())[0]?.recent === true, 5000, 'the renewed ack');
    expect(await ack()).toEqual([{ version: 7, recent: true }]);
    for (const ackEveryMs of [0, 120_000, Number.NaN]) {
      expect(() => createFlagReader({ pool, migration: MIGRATION, ackEveryMs })).toThrow('ferry: ackEveryMs must be a number of milliseconds from 1 to 60000');
    }
  });

  it('brings a change to two readers within a second over LISTEN, and each acknowledges it', async () => {
    // A long cache: only the notification can bring the change this fast.
    const first = reader({ cacheMs: 60_000, clientId: 'app-a' });
    const second = reader({ cacheMs: 60_000, clientId: 'app-b' });
    const before = await first.get();
    await second.get();
    const heard: Flags[] = [];
    first.onChange((flags) => heard.push(flags));

    const changedAt = Date.now();
    await setFlags(`read_from = 'new', compare_percent = 25`);
    await eventually(async () => first.current().readFrom === 'new' && second.current().readFrom === 'new', 1000, 'both readers to hear the change');
    expect(Date.now() - changedAt).toBeLessThan(1000);
    expect(heard).toEqual([{ ...before, readFrom: 'new', comparePercent: 25, version: before.version + 1 }]);

    const acks = await eventually(async () => {
      const rows = await sql(url, `SELECT client_id, version::int FROM ferry.flag_acks WHERE migration = $1 AND client_id IN ($2, $3) ORDER BY client_id`, [MIGRATION, first.clientId, second.clientId]);
      return rows.every((row) => row.version === before.version + 1) && rows.length === 2 && rows;
    }, 5000, 'both acks');
    expect(acks).toEqual([{ client_id: first.clientId, version: before.version + 1 }, { client_id: second.clientId, version: before.version + 1 }]);
  });

  it('listens again after its connection is killed, and still hears later changes', async () => {
    const flags = reader({ cacheMs: 60_000 });
    const before = await flags.get();
    const listeners = () => sql(url, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN ferry_flags' AND pid <> pg_backend_pid()`);
    const killed = (await sql(url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN ferry_flags'`)).length;
    expect(killed).toBeGreaterThan(0);
    // Every reader of this file reconnects; wait for all of them.
    await eventually(async () => (await listeners()).length >= killed, 10_000, 'the listeners to reconnect');

    await setFlags(`compare_percent = 50`);
    await eventually(async () => flags.current().version === before.version + 1, 1000, 'the change after reconnecting');
    expect(flags.current().comparePercent).toBe(50);
  });

  describe('dual writes on real tables', () => {
    beforeAll(async () => {
      await sql(url, `
        CREATE TABLE users (id int PRIMARY KEY, full_name text NOT NULL, team int NOT NULL DEFAULT 1);
        CREATE TABLE users_v2 (id int PRIMARY KEY, first_name text, last_name text, team int NOT NULL DEFAULT 1);`);
      await setFlags(`write_old = true, write_new = true, read_from = 'old', compare_percent = 100`);
    });

    it('writes both stores and records a difference in rows touched', async () => {
      const { ferry, registry } = client();
      const inserted = await ferry.write('insert-user', {
        old: () => pool.query(`INSERT INTO users (id, full_name) VALUES (1, 'Ann Lee'), (2, 'Bob Roe')`),
        new: () => pool.query(`INSERT INTO users_v2 (id, first_name, last_name) VALUES (1, 'Ann', 'Lee'), (2, 'Bob', 'Roe')`),
      });
      expect(inserted.rowCount).toBe(2);
      expect(await sql(url, 'SELECT id FROM users_v2 ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);

      // The new side misses a row: each write touches a different number of rows.
      await sql(url, 'DELETE FROM users_v2 WHERE id = 2');
      const moved = await ferry.write('move-team', {
        old: () => pool.query('UPDATE users SET team = 2'),
        new: () => pool.query('UPDATE users_v2 SET team = 2'),
      });
      expect(moved.rowCount).toBe(2);
      expect(await metricValue(registry, 'ferry_client_dual_write_mismatches_total', { name: 'move-team' })).toBe(1);
      expect(await metricValue(registry, 'ferry_client_dual_write_mismatches_total', { name: 'insert-user' })).toBe(0);
    });

    it('hard-deletes with a tombstone in the same transaction as the delete', async () => {
      const { ferry } = client();
      await sql(url, `INSERT INTO users_v2 (id, first_name) VALUES (2, 'Bob') ON CONFLICT DO NOTHING`);
      const deleted = await ferry.delete('delete-user', {
        table: 'public.users_v2',
        key: '2',
        old: () => pool.query('DELETE FROM users WHERE id = 2'),
        new: async (tx) => {
          // Inside the transaction the tombstone is there; outside, not before the commit.
          expect((await tx.query(`SELECT 1 FROM ferry.tombstones WHERE target_table = 'public.users_v2' AND key = '2'`)).rowCount).toBe(1);
          expect(await sql(url, `SELECT 1 FROM ferry.tombstones WHERE key = '2'`)).toEqual([]);
          return tx.query('DELETE FROM users_v2 WHERE id = 2');
        },
      });
      expect(deleted.rowCount).toBe(1);
      expect(await sql(url, 'SELECT id FROM users UNION ALL SELECT id FROM users_v2')).toEqual([{ id: 1 }, { id: 1 }]);
      expect(await sql(url, `SELECT target_table, key FROM ferry.tombstones`)).toEqual([{ target_table: 'public.users_v2', key: '2' }]);

      // A new-side delete that fails leaves no tombstone either: one transaction.
      const kept = await ferry.delete('delete-user', {
        table: 'public.users_v2',
        key: '1',
        old: () => pool.query('SELECT 1'),
        new: async (tx) => {
          await tx.query('DELETE FROM users_v2 WHERE id = 1');
          return tx.query('SELECT * FROM no_such_table');
        },
      });
      expect(kept.rowCount).toBe(1);
      expect(await sql(url, `SELECT key FROM ferry.tombstones ORDER BY key`)).toEqual([{ key: '2' }]);
      expect(await sql(url, 'SELECT id FROM users_v2')).toEqual([{ id: 1 }]);
    });

    it('refuses a delete whose table is not the migration\'s target, before either store is touched', async () => {
      const { ferry } = client();
      await sql(url, `INSERT INTO users (id, full_name) VALUES (7, 'Gus Poe') ON CONFLICT DO NOTHING;
        INSERT INTO users_v2 (id, first_name) VALUES (7, 'Gus') ON CONFLICT DO NOTHING;
        CREATE TABLE IF NOT EXISTS audit_v2 (id int PRIMARY KEY)`);
      const state = () => sql(url, `SELECT (SELECT count(*) FROM ferry.tombstones)::int AS tombstones, (SELECT count(*) FROM users WHERE id = 7)::int AS old,
                                            (SELECT count(*) FROM users_v2 WHERE id = 7)::int AS new`);
      const before = await state();
      let touched = 0;
      const remove = (table: string) =>
        ferry.delete('delete-user', {
          table,
          key: '7',
          old: () => (touched++, pool.query('DELETE FROM users WHERE id = 7')),
          new: (tx) => (touched++, tx.query('DELETE FROM users_v2 WHERE id = 7')),
        });
      // No schema, another case: no such table; the message names the one meant.
      await expect(remove('users_v2')).rejects.toThrow('names the table "users_v2", which is no table in the new store\'s database (did you mean "public.users_v2"?)');
      await expect(remove('public.Users_V2')).rejects.toThrow('(did you mean "public.users_v2"?)');
      // A table that exists, while the migration by this name copies into another.
      await sql(url, `INSERT INTO ferry.migrations (target_table, migration_id, plan_name, state) VALUES ('public.users_v2', 'client-m1', $1, 'running')`, [MIGRATION]);
      try {
        await expect(remove('public.audit_v2')).rejects.toThrow('but the migration "split-full-name" copies into "public.users_v2"');
        expect(touched).toBe(0);
        expect(await state()).toEqual(before);
        // The right name goes through, tombstone and all.
        expect((await remove('public.users_v2')).rowCount).toBe(1);
        expect(await sql(url, `SELECT 1 FROM ferry.tombstones WHERE target_table = 'public.users_v2' AND key = '7'`)).toHaveLength(1);
      } finally {
        await sql(url, `DELETE FROM ferry.migrations WHERE migration_id = 'client-m1'`);
      }
    });

    it('stops new writes after real errors (the new table dropped) and starts again on a flag change', async () => {
      const { ferry, registry } = client({ killSwitch: { maxErrors: 3, windowMs: 60_000 } });
      await sql(url, 'CREATE TABLE users_v3 (id int PRIMARY KEY)');
      const write = (id: number) =>
        ferry.write('insert-user-v3', {
          old: () => pool.query('INSERT INTO users (id, full_name) VALUES ($1, $2)', [id, `User ${id}`]),
          new: () => pool.query('INSERT INTO users_v3 (id) VALUES ($1)', [id]),
        });
      await write(10);
      await sql(url, 'DROP TABLE users_v3');
      for (let id = 11; id <= 14; id += 1) expect((await write(id)).rowCount).toBe(1);
      expect(ferry.dualWriter.killSwitch()).toMatchObject({ tripped: true });
      expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'insert-user-v3', side: 'new' })).toBe(3);
      expect(await metricValue(registry, 'ferry_client_dual_write_skipped_total', { name: 'insert-user-v3' })).toBe(1);
      expect(await metricValue(registry, 'ferry_client_kill_switch_tripped', { migration: MIGRATION, path: 'write' })).toBe(1);
      expect((await sqlRow(url, 'SELECT count(*)::int AS n FROM users WHERE id BETWEEN 10 AND 14')).n).toBe(5);

      await sql(url, 'CREATE TABLE users_v3 (id int PRIMARY KEY)');
      await setFlags('compare_percent = 100');
      await eventually(async () => !ferry.dualWriter.killSwitch().tripped, 1000, 'the flag change to reset the kill switch');
      await write(15);
      expect(await sql(url, 'SELECT id FROM users_v3')).toEqual([{ id: 15 }]);
    });

    it('compares reads of both stores and reports what differs, by key and field', async () => {
      const { ferry, registry } = client({ compare: { retryDelayMs: 50 } });
      await sql(url, `INSERT INTO users_v2 (id, first_name, last_name) VALUES (1, 'Ann', 'Lee') ON CONFLICT (id) DO UPDATE SET first_name = 'Ann', last_name = 'Lee'`);
      await sql(url, `UPDATE users_v2 SET team = 3 WHERE id = 1`);
      const oldRead = async () => (await pool.query(`SELECT id, split_part(full_name, ' ', 1) AS first, team FROM users WHERE id = 1`)).rows;
      const newRead = async () => (await pool.query(`SELECT id, first_name AS first, team FROM users_v2 WHERE id = 1`)).rows;
      const rows = await ferry.compareReads('user-by-id', { old: oldRead, new: newRead, key: (row) => String(row.id), await: true });
      expect(rows).toEqual([{ id: 1, first: 'Ann', team: 2 }]);
      expect(await metricValue(registry, 'ferry_client_read_comparisons_total', { name: 'user-by-id', result: 'mismatch', reason: 'value' })).toBe(1);
      await expect(ferry.compareReads('user-by-id', { old: oldRead, new: newRead, key: (row) => String(row.id), throwOnMismatch: true })).rejects.toMatchObject({
        mismatch: { category: 'value', keys: ['1'], fields: ['team'] },
      });
    });

    it('once reads come from the new table, a write either table refuses reaches the caller, and the kill switch skips none', async () => {
      await sql(url, `CREATE TABLE users_checked (id int PRIMARY KEY, first_name text NOT NULL CHECK (first_name <> ''))`);
      await setFlags(`write_old = true, write_new = true, read_from = 'new'`);
      const { ferry, registry } = client({ killSwitch: { maxErrors: 1 } });
      await eventually(async () => (await ferry.flags.get()).readFrom === 'new', 5000, 'reads on new');
      const write = (id: number, name: string, oldTable = 'users') =>
        ferry.write('insert-checked', {
          old: () => pool.query(`INSERT INTO ${oldTable} (id, full_name) VALUES ($1, $2)`, [id, name]),
          new: () => pool.query('INSERT INTO users_checked (id, first_name) VALUES ($1, $2)', [id, name]),
        });
      const stored = async (id: number) =>
        sqlRow(url, `SELECT (SELECT count(*) FROM users WHERE id = $1)::int AS old, (SELECT count(*) FROM users_checked WHERE id = $1)::int AS new`, [id]);

      // The new table's CHECK refuses the row: the caller hears it, and the old table is not written either.
      await expect(write(20, '')).rejects.toMatchObject({ code: '23514' });
      expect(await stored(20)).toEqual({ old: 0, new: 0 });

      // The old table failing reaches the caller too, and never trips the switch: old must keep every write for an abort.
      await expect(write(21, 'Cy', 'no_such_users')).rejects.toMatchObject({ code: '42P01' });
      expect(ferry.dualWriter.killSwitch()).toMatchObject({ tripped: false });
      expect((await write(23, 'Di')).rowCount).toBe(1);
      expect(await stored(23)).toEqual({ old: 1, new: 1 });
      expect(await metricValue(registry, 'ferry_client_dual_write_errors_total', { name: 'insert-checked', side: 'old' })).toBe(1);
      await setFlags(`read_from = 'old'`);
    });
  });
});
