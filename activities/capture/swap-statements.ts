/**
 * The SQL of the table swap, built with the sql`` template: the locks, the renames, the view of
 * the old shape and the drop of the old table. DDL takes no bind parameters, so every name here is quoted into the text.
 */
import type { Capture } from '../../lib/capture';
import { ident, join, planSql, sql, tableName, type TableName } from '../sql';

/** Both tables locked in one statement, the source first: the order of every swap. */
export function lockBothTablesSql(source: TableName, target: TableName): string {
  return sql`LOCK TABLE ${tableName(source)}, ${tableName(target)} IN ACCESS EXCLUSIVE MODE`.text;
}

export function renameTableSql(table: TableName, newName: string): string {
  return sql`ALTER TABLE ${tableName(table)} RENAME TO ${ident(newName)}`.text;
}

export function moveTableSql(table: TableName, schema: string): string {
  return sql`ALTER TABLE ${tableName(table)} SET SCHEMA ${ident(schema)}`.text;
}

export function dropTableSql(table: TableName): string {
  return sql`DROP TABLE IF EXISTS ${tableName(table)}`.text;
}

/** The view of the old shape (capture.oldShapeView) over `table`, the new table under its new name. */
export function createOldShapeViewSql(view: NonNullable<Capture['oldShapeView']>, table: TableName): string {
  const columns = Object.entries(view.columns).map(([name, expression]) => sql`${planSql(expression, `capture.oldShapeView.columns.${name}`)} AS ${ident(name)}`);
  return sql`CREATE VIEW ${ident(table.schema, view.name)} AS SELECT ${join(columns)} FROM ${tableName(table)}`.text;
}
