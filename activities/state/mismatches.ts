/**
 * The open mismatches of a migration in ferry.mismatches, as verification re-checks them and
 * repair works through them: pages of unresolved keys (or source-key groups), and resolving them.
 * Every page is in key order after `after`, `limit` long: callers loop until a page is empty.
 */
import type pg from 'pg';
import type { MismatchCategory } from './ferry-schema';
import { sql } from '../sql';

export interface PassPage {
  migrationId: string;
  pass: number;
  /** The last key of the page before; null for the first page. */
  after: string | null;
  limit: number;
}

/** Keys left unresolved by passes before `pass` that `pass` has not recorded itself. */
export async function openKeysOfEarlierPasses(pool: pg.Pool, { migrationId, pass, after, limit }: PassPage): Promise<string[]> {
  const { rows } = await pool.query<{ key: string }>(
    sql`SELECT DISTINCT key FROM ferry.mismatches m
         WHERE migration_id = ${migrationId} AND pass < ${pass} AND resolved_at IS NULL AND (${after}::text IS NULL OR key > ${after})
           AND NOT EXISTS (SELECT 1 FROM ferry.mismatches c WHERE c.migration_id = ${migrationId} AND c.pass = ${pass} AND c.key = m.key)
         ORDER BY key LIMIT ${limit}`,
  );
  return rows.map((r) => r.key);
}

/**
 * With a lineage column: the source keys recorded for some keys left unresolved by passes before
 * `pass` (the keys are target keys; their rows are read by source key).
 */
export async function sourceKeysOfEarlierPasses(pool: pg.Pool, migrationId: string, pass: number, keys: string[]): Promise<string[]> {
  const { rows } = await pool.query<{ source_key: string }>(
    sql`SELECT DISTINCT k AS source_key FROM ferry.mismatches, unnest(source_keys) AS k
         WHERE migration_id = ${migrationId} AND pass < ${pass} AND resolved_at IS NULL AND key = ANY(${keys}::text[])`,
  );
  return rows.map((r) => r.source_key);
}

/** Resolves everything passes before `pass` left open: `pass` has carried it over. */
export async function resolveEarlierPasses(pool: pg.Pool, migrationId: string, pass: number): Promise<void> {
  await pool.query(sql`UPDATE ferry.mismatches SET resolved_at = now() WHERE migration_id = ${migrationId} AND pass < ${pass} AND resolved_at IS NULL`);
}

/** The unresolved mismatches of a pass, with their category. */
export async function openMismatches(pool: pg.Pool, { migrationId, pass, after, limit }: PassPage): Promise<{ key: string; category: MismatchCategory }[]> {
  const { rows } = await pool.query<{ key: string; category: MismatchCategory }>(
    sql`SELECT key, category FROM ferry.mismatches
         WHERE migration_id = ${migrationId} AND pass = ${pass} AND resolved_at IS NULL AND (${after}::text IS NULL OR key > ${after}) ORDER BY key LIMIT ${limit}`,
  );
  return rows;
}

/** With a lineage column: the source keys whose groups hold an unresolved mismatch of a pass. */
export async function openSourceKeyGroups(pool: pg.Pool, { migrationId, pass, after, limit }: PassPage): Promise<string[]> {
  const { rows } = await pool.query<{ source_key: string }>(
    sql`SELECT DISTINCT k AS source_key FROM ferry.mismatches, unnest(source_keys) AS k
         WHERE migration_id = ${migrationId} AND pass = ${pass} AND resolved_at IS NULL AND (${after}::text IS NULL OR k > ${after})
         ORDER BY k LIMIT ${limit}`,
  );
  return rows.map((r) => r.source_key);
}

/** Resolves these mismatches of a pass: repaired. In the caller's transaction, which records what the repair wrote beside it. */
export async function resolveMismatchKeys(client: pg.ClientBase, migrationId: string, pass: number, keys: string[]): Promise<void> {
  await client.query(sql`UPDATE ferry.mismatches SET resolved_at = now() WHERE migration_id = ${migrationId} AND pass = ${pass} AND key = ANY(${keys}::text[])`);
}

/**
 * With a lineage column: resolves each open mismatch of a pass whose every source-key group was
 * rewritten, that is none of them is in `refused`. One with no source key stays open.
 */
export async function resolveRewrittenGroups(pool: pg.Pool, migrationId: string, pass: number, refused: string[]): Promise<void> {
  await pool.query(
    sql`UPDATE ferry.mismatches SET resolved_at = now()
         WHERE migration_id = ${migrationId} AND pass = ${pass} AND resolved_at IS NULL AND cardinality(source_keys) > 0 AND NOT (source_keys && ${refused}::text[])`,
  );
}

/** How many mismatches of a pass are still open. */
export async function openMismatchCount(pool: pg.Pool, migrationId: string, pass: number): Promise<number> {
  const { rows } = await pool.query<{ count: number }>(
    sql`SELECT count(*)::int AS count FROM ferry.mismatches WHERE migration_id = ${migrationId} AND pass = ${pass} AND resolved_at IS NULL`,
  );
  return rows[0]?.count ?? 0;
}
