/**
 * The order a key column's values sort in (its collation, or the database's default), read on
 * each side: a key range `(after, upTo]` holds the same keys on both sides only when both order
 * the same way. Equality of keys is the same under every deterministic collation.
 */
import type pg from 'pg';
import { lineageColumn, targetKey, type Plan } from '../../lib/plan';
import { displayName, qualifiedName, sql, type TableName } from '../sql';

/** How one key column orders text; null for a key type with no collation (integers, uuids, ...). */
export interface KeyOrder {
  /** As a person would name it (and as redaction keeps it): `collation "C"`, or `the database's default collation "en_US.UTF-8"`. */
  name: string;
  /** Equal for two columns that order every value the same way (as far as the catalogs tell). */
  sortsAs: string;
  /** False for a collation that takes some different texts for equal ('a' and 'A', say). */
  deterministic: boolean;
}

type Row = Record<string, string | boolean | null | undefined>;

/** Byte order: C and POSIX, and C.UTF-8 whose code point order is the byte order of UTF-8. */
const BYTE_ORDER = /^(C|POSIX|C\.UTF-?8)$/i;

/**
 * Field names differ between server versions (colliculocale in 15 and 16, colllocale from 17;
 * no provider for a database before 15), so the catalog rows are read as JSON and picked here.
 */
function describe(provider: string, locale: string | null, rules: string | null, version: string | null, deterministic: boolean): string {
  if ((provider === 'c' || provider === 'b') && locale !== null && BYTE_ORDER.test(locale) && deterministic) return 'bytes';
  // A version only one side reports cannot tell them apart; two different ones can.
  return JSON.stringify([provider, locale, rules ?? '', deterministic, version ?? '']);
}

export async function keyOrderOf(pool: pg.Pool, table: TableName, column: string): Promise<KeyOrder | null> {
  const found = await pool.query<{ name: string | null; collation: Row | null; database: Row }>(
    sql`SELECT c.collname AS name, to_jsonb(c) AS collation,
               (SELECT to_jsonb(d) - 'datacl' FROM pg_database d WHERE d.datname = current_database()) AS database
          FROM pg_attribute a LEFT JOIN pg_collation c ON c.oid = a.attcollation
         WHERE a.attrelid = to_regclass(${qualifiedName(table)}) AND a.attname = ${column} AND a.attnum > 0 AND NOT a.attisdropped AND a.attcollation <> 0`,
  );
  const row = found.rows[0];
  if (!row?.collation) return null;
  const c = row.collation;
  const text = (value: unknown) => (typeof value === 'string' ? value : null);
  const deterministic = c.collisdeterministic !== false;
  if (c.collprovider !== 'd') {
    const provider = text(c.collprovider) ?? 'c';
    // Before 15 an ICU collation kept its locale in collcollate.
    const locale = text(c.colllocale) ?? text(c.colliculocale) ?? text(c.collcollate);
    return { name: `collation "${row.name}"`, sortsAs: describe(provider, locale, text(c.collicurules), text(c.collversion), deterministic), deterministic };
  }
  const d = row.database;
  const provider = text(d.datlocprovider) ?? 'c';
  const locale = provider === 'c' ? text(d.datcollate) : (text(d.datlocale) ?? text(d.daticulocale));
  return { name: `the database's default collation "${locale ?? '?'}"`, sortsAs: describe(provider, locale, text(d.daticurules), text(d.datcollversion), true), deterministic: true };
}

/**
 * The orders of the source key and of the target column a key range selects target rows by (the
 * key, or target.sourceKey), when they differ; null when they are the same (or neither has one).
 */
export async function keyOrdersDiffer(
  source: { pool: pg.Pool; table: TableName; column: string },
  target: { pool: pg.Pool; table: TableName; column: string },
): Promise<{ source: KeyOrder; target: KeyOrder } | null> {
  const [s, t] = await Promise.all([keyOrderOf(source.pool, source.table, source.column), keyOrderOf(target.pool, target.table, target.column)]);
  if (!s || !t || s.sortsAs === t.sortsAs) return null;
  return { source: s, target: t };
}

/**
 * subset.keyRange bounds keys in the source's order; the target's rows in scope would be judged
 * in the target's, which holds other keys between the same bounds. Refused, as verification could
 * neither tell which target rows are in scope nor stop finding rows missing that are there.
 */
export function keyRangeOrderProblem(plan: Plan, orders: { source: KeyOrder; target: KeyOrder }): string {
  const targetColumn = lineageColumn(plan) ?? targetKey(plan);
  return (
    `subset.keyRange cannot be used: source key column "${plan.source.key}" of ${displayName(plan.source)} sorts by ${orders.source.name}, ` +
    `target column "${targetColumn}" of ${displayName(plan.target)} by ${orders.target.name}, so one key range holds other keys on each side; ` +
    `give both columns the same collation, or migrate without subset.keyRange`
  );
}

/**
 * A target key whose collation is nondeterministic (and not the source's) takes keys the source
 * holds apart for one: the copy would keep one of them, and a repair would write the other's
 * values over it. Refused.
 */
export function nondeterministicTargetProblem(plan: Plan, orders: { source: KeyOrder; target: KeyOrder }): string | null {
  if (orders.target.deterministic) return null;
  const targetColumn = lineageColumn(plan) ?? targetKey(plan);
  return (
    `target column "${targetColumn}" of ${displayName(plan.target)} sorts by ${orders.target.name}, which is nondeterministic: it takes keys that ` +
    `source key column "${plan.source.key}" (${orders.source.name}) holds apart, such as keys differing only in case, for one key; ` +
    `give the target column the source's collation or a deterministic one`
  );
}
