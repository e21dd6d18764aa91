/** The sql`` builder against a real Postgres: the statements it builds do to rows what their text says, and no more. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ident, join, literal, planSql, sql, tableName } from '../../activities/sql';
import { createTestDatabase, sql as run } from '../support/harness';

const TABLE = { schema: 'public', table: 'we"ird table' };
const NASTY = `it's "quoted"; DROP TABLE x; -- $1 \\ end`;

describe('the sql template on a real database', () => {
  let url: string;
  let pool: pg.Pool;

  beforeAll(async () => {
    url = await createTestDatabase('sql_builder');
    pool = new pg.Pool({ connectionString: url, max: 2 });
    await run(url, `CREATE TABLE public."we""ird table" (id int PRIMARY KEY, "full name" text, note text)`);
  });
  afterAll(async () => {
    await pool?.end();
  });

  it('inserts values that hold quotes, semicolons and placeholders as the values themselves', async () => {
    const rows = [sql`(${1}, ${NASTY}, ${null})`, sql`(${2}, ${'plain'}, ${'$2'})`];
    const insert = sql`INSERT INTO ${tableName(TABLE)} (${join([ident('id'), ident('full name'), ident('note')])}) VALUES ${join(rows)}`;
    expect(insert.text).toBe('INSERT INTO "public"."we""ird table" ("id", "full name", "note") VALUES ($1, $2, $3), ($4, $5, $6)');
    await pool.query(insert);
    const found = await run<{ id: number; sum: string }>(url, `SELECT id, md5(row("full name", note)::text) AS sum FROM public."we""ird table" ORDER BY id`);
    const expected = await run<{ id: number; sum: string }>(url, `SELECT 1 AS id, md5(row($1::text, NULL::text)::text) AS sum UNION ALL SELECT 2, md5(row('plain', '$2')::text) ORDER BY id`, [NASTY]);
    expect(found).toEqual(expected);
  });

  it('updates exactly the rows its nested conditions and plan expression select', async () => {
    const range = sql`id > ${0} AND id <= ${1}`;
    const update = sql`UPDATE ${tableName(TABLE)} AS s SET note = ${planSql(`upper(left(s."full name", 4))`, 'transform.sql.note')} WHERE ${range} AND note IS DISTINCT FROM ${'x'} RETURNING id`;
    expect(update.values).toEqual([0, 1, 'x']);
    const result = await pool.query<{ id: number }>(update);
    expect(result.rows).toEqual([{ id: 1 }]);
    expect(await run(url, `SELECT id, note FROM public."we""ird table" ORDER BY id`)).toEqual([
      { id: 1, note: "IT'S" },
      { id: 2, note: '$2' },
    ]);
  });

  it('reads with a literal where a statement takes no parameters, to the same rows', async () => {
    const byLiteral = await pool.query(sql`SELECT id FROM ${tableName(TABLE)} WHERE "full name" = ${literal(NASTY)}`);
    const byParameter = await pool.query(sql`SELECT id FROM ${tableName(TABLE)} WHERE "full name" = ${NASTY}`);
    expect(byLiteral.rows).toEqual([{ id: 1 }]);
    expect(byParameter.rows).toEqual(byLiteral.rows);
  });
});
