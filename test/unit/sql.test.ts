/** The sql`` builder: the text and the parameters it builds (what they do to rows: test/integration/sql-builder.test.ts). */
import { describe, expect, it } from 'vitest';
import { ferrySql, ident, join, literal, planSql, sql, tableName } from '../../activities/sql';

describe('the sql template', () => {
  it('binds every interpolated value as a parameter numbered in order', () => {
    const query = sql`SELECT * FROM ferry.flags WHERE migration = ${'a'} AND version > ${3} AND set_by = ${null}`;
    expect(query.text).toBe('SELECT * FROM ferry.flags WHERE migration = $1 AND version > $2 AND set_by = $3');
    expect(query.values).toEqual(['a', 3, null]);
  });

  it('renumbers the parameters of nested fragments, however deep', () => {
    const inner = sql`k > ${'10'} AND k <= ${'20'}`;
    expect(inner.text).toBe('k > $1 AND k <= $2');
    const query = sql`SELECT ${'x'}, (SELECT 1 WHERE ${inner}) WHERE ${sql`a = ${1} OR ${sql`b = ${2}`}`} AND ${inner}`;
    expect(query.text).toBe('SELECT $1, (SELECT 1 WHERE k > $2 AND k <= $3) WHERE a = $4 OR b = $5 AND k > $6 AND k <= $7');
    expect(query.values).toEqual(['x', '10', '20', 1, 2, '10', '20']);
  });

  it('never puts a value into the text, whatever it holds', () => {
    const query = sql`SELECT ${"'; DROP TABLE t; --"}::text`;
    expect(query.text).toBe('SELECT $1::text');
    expect(query.values).toEqual(["'; DROP TABLE t; --"]);
  });

  it('quotes names, qualified or not', () => {
    expect(ident('full name').text).toBe('"full name"');
    expect(ident('ferry', 'we"ird').text).toBe('"ferry"."we""ird"');
    expect(tableName({ schema: 'public', table: 'Users' }).text).toBe('"public"."Users"');
    expect(sql`SELECT ${ident('a')} FROM ${tableName({ schema: 's', table: 't' })} WHERE ${ident('a')} = ${5}`).toMatchObject({
      text: 'SELECT "a" FROM "s"."t" WHERE "a" = $1',
      values: [5],
    });
  });

  it('joins fragments with a separator, parameters and all', () => {
    const query = join([sql`a = ${1}`, sql`b = ${2}`, sql`c`], sql` AND `);
    expect(query).toMatchObject({ text: 'a = $1 AND b = $2 AND c', values: [1, 2] });
    expect(join([ident('a'), ident('b')]).text).toBe('"a", "b"');
    expect(join([]).text).toBe('');
  });

  it('writes literals only where asked, quoted', () => {
    expect(sql`COPY (SELECT * FROM t WHERE k > ${literal("it's")}) TO STDOUT`).toMatchObject({
      text: "COPY (SELECT * FROM t WHERE k > 'it''s') TO STDOUT",
      values: [],
    });
  });

  it("embeds a plan's SQL in parentheses, after the same check the plan schema makes", () => {
    expect(sql`SELECT ${planSql("s.first || ' ' || s.last", 'transform.sql.name')} AS ${ident('name')}`.text).toBe(
      `SELECT (s.first || ' ' || s.last) AS "name"`,
    );
    expect(() => planSql('1); DELETE FROM t; SELECT (1', 'subset.where')).toThrow(/the plan's SQL is refused: subset.where must be one SQL expression/);
    expect(() => planSql('s.a -- x', 'transform.sql.a')).toThrow(/transform.sql.a must not contain comments/);
    expect(() => planSql('s.a)', 'subset.where')).toThrow(/closes a parenthesis it never opened/);
  });

  it("embeds Ferry's own text as it is", () => {
    expect(sql`SELECT ${ferrySql('a, b')} FROM t WHERE x = ${1}`).toMatchObject({ text: 'SELECT a, b FROM t WHERE x = $1', values: [1] });
  });
});
