/**
 * The differential tests' tables: the source a spec describes, the live application writing to
 * it during the copy, and the damage done at the gate. Values go in as Postgres input text.
 */
import pg from 'pg';
import { quote } from './comparator';
import { columnName, KEY_SQL_TYPES, PARTITION_SQL_TYPES, sourceColumns, type TargetShape } from './paths';
import type { DamageOp, SourceRow, TableSpec, WriterOp } from './table-spec';
import { ENUM_LABELS, type Hazard } from './values';

/** The enum type every generated table may use, in each database; safe to run twice. */
export async function prepareDatabase(url: string): Promise<void> {
  const labels = ENUM_LABELS.map((l) => `'${l.replace(/'/g, "''")}'`).join(', ');
  await run(url, `DO $$ BEGIN CREATE TYPE mood AS ENUM (${labels}); EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
}

export async function run(url: string, text: string, values?: unknown[]): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, application_name: 'differential-app' });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

function rowParams(spec: TableSpec, row: SourceRow): (string | null)[] {
  return [row.key, row.part, ...row.values];
}

function placeholders(spec: TableSpec, offset: number): string {
  return `(${sourceColumns(spec).map((c, i) => `$${offset + i + 1}::${c.sqlType}`).join(', ')})`;
}

export async function createSource(url: string, table: string, spec: TableSpec): Promise<void> {
  const columns = sourceColumns(spec).map((c, i) => `${quote(c.name)} ${c.sqlType}${i === 0 ? (spec.nullKeys ? ' UNIQUE' : ' PRIMARY KEY') : ''}`);
  await run(url, `CREATE TABLE ${table} (${columns.join(', ')})`);
  const width = sourceColumns(spec).length;
  for (let start = 0; start < spec.rows.length; start += 200) {
    const rows = spec.rows.slice(start, start + 200);
    await run(url, `INSERT INTO ${table} VALUES ${rows.map((_, i) => placeholders(spec, i * width)).join(', ')}`, rows.flatMap((r) => rowParams(spec, r)));
  }
  await run(url, `ANALYZE ${table}`);
}

export interface Application {
  sourceUrl: string;
  targetUrl: string;
  sourceTable: string;
  targetTable: string;
  /** As `ferry.record_delete` names it. */
  qualifiedTarget: string;
  shape: TargetShape;
  spec: TableSpec;
  /** Hazards the case leaves out. */
  excluded: readonly Hazard[];
}

/** The key (as text) at position `pick` among the table's non-NULL keys, in key order. */
async function pickKey(client: pg.Client, table: string, keyColumn: string, pick: number): Promise<string | null> {
  const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${quote(keyColumn)} IS NOT NULL`);
  const n = rows[0].n as number;
  if (n === 0) return null;
  const found = await client.query(`SELECT (${quote(keyColumn)})::text AS key FROM ${table} WHERE ${quote(keyColumn)} IS NOT NULL ORDER BY 1 OFFSET $1 LIMIT 1`, [pick % n]);
  return (found.rows[0]?.key as string | undefined) ?? null;
}

/** Applies one writer operation; false when it did not apply (a key taken, or none left). */
export async function applyWriterOp(app: Application, source: pg.Client, target: pg.Client, op: WriterOp, retired: Set<string>): Promise<boolean> {
  const { spec, sourceTable } = app;
  const keyType = KEY_SQL_TYPES[spec.keyType];
  if (op.kind === 'insert') {
    if (op.row.key !== null && retired.has(op.row.key)) return false;
    const result = await source.query(`INSERT INTO ${sourceTable} VALUES ${placeholders(spec, 0)} ON CONFLICT DO NOTHING`, rowParams(spec, op.row));
    return result.rowCount === 1;
  }
  const key = await pickKey(source, sourceTable, 'k', op.pick);
  if (key === null) return false;
  switch (op.kind) {
    case 'update': {
      const column = quote(columnName(op.column, spec));
      const type = sourceColumns(spec)[op.column + 2]!.sqlType;
      // Without the hazard, never change only a numeric's scale (0.00 to 0.0): see KNOWN_DEFECTS.
      const scaleOnly = type === 'numeric' && app.excluded.includes('numeric-scale-only') ? ` AND NOT (${column} = $2::numeric AND ${column}::text <> $2::numeric::text)` : '';
      const result = await source.query(`UPDATE ${sourceTable} SET ${column} = $2::${type} WHERE k = $1::${keyType}${scaleOnly}`, [key, op.value]);
      return result.rowCount === 1;
    }
    case 'rescale': {
      const column = quote(columnName(op.column, spec));
      const result = await source.query(
        `UPDATE ${sourceTable} SET ${column} = ${column} + 0.${'0'.repeat(33)} WHERE k = $1::${keyType} AND ${column} IS NOT NULL AND ${column} NOT IN ('NaN', 'Infinity', '-Infinity')`,
        [key],
      );
      return result.rowCount === 1;
    }
    case 'repartition':
      await source.query(`UPDATE ${sourceTable} SET part = $2::${PARTITION_SQL_TYPES[spec.partType]} WHERE k = $1::${keyType}`, [key, op.part]);
      return true;
    case 'rekey': {
      if (retired.has(op.key)) return false;
      const result = await source.query(
        `UPDATE ${sourceTable} SET k = $2::${keyType} WHERE k = $1::${keyType} AND NOT EXISTS (SELECT 1 FROM ${sourceTable} WHERE k = $2::${keyType})`,
        [key, op.key],
      );
      if (result.rowCount === 1) retired.add(key);
      return result.rowCount === 1;
    }
    case 'delete':
      return hardDelete(app, source, target, key, retired);
  }
}

/**
 * A hard delete as README's "Deletes" section asks: ferry.record_delete in the transaction that
 * deletes from the target, and the row deleted from the source too.
 */
async function hardDelete(app: Application, source: pg.Client, target: pg.Client, key: string, retired: Set<string>): Promise<boolean> {
  const keyType = KEY_SQL_TYPES[app.spec.keyType];
  const targetFilter = app.shape.lineageColumn ? `${quote(app.shape.lineageColumn)} = $1::${keyType}` : `${quote(app.shape.key)} = $1::${keyType}`;
  await target.query('BEGIN');
  try {
    await target.query('SELECT ferry.record_delete($1, $2)', [app.qualifiedTarget, key]);
    await target.query(`DELETE FROM ${app.targetTable} WHERE ${targetFilter}`, [key]);
    await source.query(`DELETE FROM ${app.sourceTable} WHERE k = $1::${keyType}`, [key]);
    await target.query('COMMIT');
  } catch (error) {
    await target.query('ROLLBACK').catch(() => {});
    throw error;
  }
  retired.add(key);
  return true;
}

/** Applies one damage operation at the gate (nothing else writes then); false when it did not apply. */
export async function applyDamage(app: Application, op: DamageOp, touched: Set<string>): Promise<boolean> {
  const { spec, shape } = app;
  const keyType = KEY_SQL_TYPES[spec.keyType];
  const onTarget = op.kind === 'drop-target' || op.kind === 'extra-target' || op.kind === 'alter-target';
  const url = onTarget ? app.targetUrl : app.sourceUrl;
  const table = onTarget ? app.targetTable : app.sourceTable;
  const keyColumn = onTarget ? shape.key : 'k';
  const client = new pg.Client({ connectionString: url, application_name: 'differential-damage' });
  await client.connect();
  try {
    const key = await pickKey(client, table, keyColumn, op.pick);
    if (key === null || touched.has(`${onTarget}:${key}`)) return false;
    touched.add(`${onTarget}:${key}`);
    const targetKeyType = shape.columns.find((c) => c.name === shape.key)!.sqlType;
    const where = `${quote(keyColumn)} = $1::${onTarget ? targetKeyType : keyType}`;
    switch (op.kind) {
      case 'drop-target':
      case 'delete-source':
        await client.query(`DELETE FROM ${table} WHERE ${where}`, [key]);
        return true;
      case 'extra-target': {
        const names = shape.columns.map((c) => quote(c.name));
        const values = shape.columns.map((c) => (c.name === shape.key ? `$2::${targetKeyType}` : quote(c.name)));
        const fresh = shape.lineageColumn ? `${op.key}#extra` : op.key;
        const result = await client.query(
          `INSERT INTO ${table} (${names.join(', ')}) SELECT ${values.join(', ')} FROM ${table} WHERE ${where} ON CONFLICT DO NOTHING`,
          [key, fresh],
        );
        return result.rowCount === 1;
      }
      case 'alter-target':
      case 'alter-source': {
        const column = columnName(op.column, spec);
        const type = sourceColumns(spec)[op.column + 2]!.sqlType;
        // NULL becomes a value and a value becomes NULL: always a difference, whatever the normalisation.
        await client.query(`UPDATE ${table} SET ${quote(column)} = CASE WHEN ${quote(column)} IS NULL THEN $2::${type} END WHERE ${where}`, [key, op.value]);
        return true;
      }
    }
  } finally {
    await client.end();
  }
}
