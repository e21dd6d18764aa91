/**
 * Transform fit: the dry run's proof that the sampled rows' transform output would go into the
 * target's columns, and which column a SQL transform that does not run breaks on.
 */
import type pg from 'pg';
import type { ColumnInfo } from '../../lib/inspection';
import { redactErrorText } from '../../lib/errors';
import { oneStatement, readOnly } from '../plan-sql';
import { ferrySql, ident, join, planSql, sql, SOURCE_ALIAS, tableName, type Sql, type TableName } from '../sql';

/** One sampled source row: its key and what the transform made of it, per target column, as text. */
export interface SampledRow {
  sourceKey: string;
  values: Record<string, string | null>;
}

/** Types whose explicit cast truncates where an INSERT or COPY raises "value too long". */
const LENGTH_LIMITED = /^(character varying|character)\(\d+\)$/;

function errorText(error: unknown, showValues: boolean): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? ` [${code}]` : '';
  return `${showValues ? message : redactErrorText(error)}${sqlState}`;
}

function keyText(sourceKey: string): string {
  return `source key ${sourceKey}`;
}

/**
 * Each sampled value cast into its target column's type on the target, in a READ ONLY
 * transaction: `CAST($1 AS type)` makes Postgres parse the text with the type's own input
 * function, as the copy's COPY does, so its own error comes back. A NULL into a NOT NULL column
 * counts too. One problem per column is enough; the rest of the sample fails the same way.
 */
export async function castProblems(
  targetPool: pg.Pool,
  targetName: string,
  columns: ColumnInfo[],
  rows: SampledRow[],
  expressions: Record<string, string> | null,
  showValues: boolean,
): Promise<string[]> {
  const problems: string[] = [];
  const byName = new Map(columns.map((c) => [c.name, c]));
  const failed = new Set<string>();
  const describe = (column: string) => {
    const expression = expressions?.[column];
    return `target column "${column}" (${byName.get(column)?.type ?? 'unknown type'})${expression === undefined ? '' : ` from transform.sql.${column} = ${expression}`}`;
  };
  const together = await castTogether(targetPool, rows, byName);
  for (const [index, row] of rows.entries()) {
    for (const [column, value] of Object.entries(row.values)) {
      const info = byName.get(column);
      if (!info || failed.has(column)) continue;
      if (value === null) {
        if (info.notNull) {
          failed.add(column);
          problems.push(
            `${describe(column)} cannot take the transform's output for ${keyText(row.sourceKey)}: null value violates its NOT NULL constraint`,
          );
        }
        continue;
      }
      try {
        const whole =
          together?.get(castKey(index, column)) ??
          (
            await readOnly(targetPool, (client) =>
              client.query<{ whole: boolean }>(
                oneStatement({ text: `SELECT CAST($1 AS ${info.type})::text = $1::text AS whole`, values: [value] }),
              ),
            )
          ).rows[0]?.whole;
        // An explicit cast cuts a string to a length limit; the copy's input refuses it instead.
        if (LENGTH_LIMITED.test(info.type) && whole === false) throw new Error(`value too long for type ${info.type}`);
      } catch (error) {
        failed.add(column);
        problems.push(
          `${describe(column)} cannot take the transform's output for ${keyText(row.sourceKey)}: ${errorText(error, showValues)}`,
        );
      }
    }
  }
  if (problems.length > 0) problems.push(`every such row would fail the copy into ${targetName}; fix the transform or the target column`);
  return problems;
}

const castKey = (row: number, column: string) => `${row}\u0000${column}`;

/**
 * Every non-null sampled value cast at once, in one statement (the same cast castProblems makes
 * of each): whether each came back whole, by castKey. Null when one of them does not cast, and
 * each is then cast on its own, to name the column and row it breaks on.
 */
async function castTogether(targetPool: pg.Pool, rows: SampledRow[], columns: Map<string, ColumnInfo>): Promise<Map<string, boolean> | null> {
  const casts = rows.flatMap((row, index) =>
    Object.entries(row.values).flatMap(([column, value]) => {
      const type = columns.get(column)?.type;
      return type !== undefined && value !== null ? [{ key: castKey(index, column), type, value }] : [];
    }),
  );
  if (casts.length === 0) return null;
  const select = casts.map((cast, i) => `CAST($${i + 1} AS ${cast.type})::text = $${i + 1}::text`).join(', ');
  try {
    const result = await readOnly(targetPool, (client) =>
      client.query<boolean[]>(oneStatement({ text: `SELECT ${select}`, values: casts.map((cast) => cast.value), rowMode: 'array' as const })),
    );
    const wholes = result.rows[0] ?? [];
    return new Map(casts.map((cast, i) => [cast.key, wholes[i] === true]));
  } catch {
    return null;
  }
}

/**
 * Within one database the copy is `INSERT ... SELECT`: an expression whose type has no
 * assignment cast to its column's type (text into integer) fails on every row whatever the
 * values. EXPLAIN plans the statement without running it, in a READ ONLY transaction.
 */
export async function assignmentProblems(
  pool: pg.Pool,
  source: TableName,
  target: TableName,
  columns: Record<string, string>,
): Promise<string[]> {
  const explain = (names: string[]) =>
    readOnly(pool, (client) =>
      client.query(
        oneStatement(
          sql`EXPLAIN INSERT INTO ${tableName(target)} (${join(names.map((name) => ident(name)))}) SELECT ${join(
            names.map((name) => planSql(columns[name]!, `transform.sql.${name}`)),
          )} FROM ${tableName(source)} AS ${ferrySql(SOURCE_ALIAS)} WHERE false`,
        ),
      ),
    );
  try {
    await explain(Object.keys(columns));
    return [];
  } catch {
    const problems: string[] = [];
    for (const name of Object.keys(columns)) {
      try {
        await explain([name]);
      } catch (error) {
        problems.push(`transform.sql.${name} = ${columns[name]} does not fit target column "${name}": ${errorText(error, false)}`);
      }
    }
    return problems;
  }
}

/**
 * When the whole sample select fails, each column's expression alone, so the failure names the
 * column it is in (a syntax error says only `at or near ")"`).
 */
export async function expressionProblems(
  pool: pg.Pool,
  source: TableName,
  filter: string | null,
  columns: Record<string, string>,
): Promise<string[]> {
  // The filter is Ferry's composition of the plan's subset (see sourceFilter).
  const where = filter ? sql`(${ferrySql(filter)})` : sql`true`;
  const select = (expression: Sql) =>
    readOnly(pool, (client) => client.query(oneStatement(sql`SELECT ${expression} AS value FROM ${tableName(source)} AS ${ferrySql(SOURCE_ALIAS)} WHERE ${where} LIMIT 5`)));
  // A filter that fails would fail every expression alike: no column is to blame then.
  if (!(await select(sql`(1)`).then(() => true, () => false))) return [];
  const problems: string[] = [];
  for (const [name, expression] of Object.entries(columns)) {
    try {
      await select(planSql(expression, `transform.sql.${name}`));
    } catch (error) {
      problems.push(`transform.sql.${name} = ${expression} does not run: ${errorText(error, false)}`);
    }
  }
  return problems;
}
