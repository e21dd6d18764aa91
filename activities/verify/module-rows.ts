/**
 * Canonical forms of a module transform's rows: the source rows are transformed on a transform
 * thread (as the copy's are), then made canonical by the target database with the same
 * expressions as the target's rows, and each is traced to the source key it came from.
 */
import { ApplicationFailure } from '@temporalio/activity';
import pg from 'pg';
import { wholeKeySpace } from '../../lib/key-range';
import { sql } from '../sql';
import { inputTextsOnThread, readSourceRows } from '../transform/transform-threads';
import type { ColumnKinds } from '../transform/exact-values';
import { allConditions, canonicalizeValuesSql, type RowHashes, rowHashesOf, type Selection, sourceKeysCondition, type VerifyShape } from './verify-statements';

/**
 * Source rows of a selection through a module transform, as canonical texts: the rows are read
 * as COPY text and transformed on a transform thread, so that a slow transform holds neither the
 * event loop nor the heartbeats (and one that never returns ends its thread), then parsed with
 * the target's column types on the target database (which writes nothing) and made canonical by
 * the same expressions as the target's rows. A row whose transform throws, or whose value the
 * target refuses, is not expected in the target (the copier records it as a failed row instead)
 * and comes back unwritable. Each row carries the source key it came from, and must be traceable
 * to it (see rowsOfSourceKey): a transform that breaks that cannot be verified and fails the call.
 */
export async function moduleSourceRows(
  sourcePool: pg.Pool,
  targetPool: pg.Pool,
  shape: VerifyShape,
  kinds: ColumnKinds,
  selection: Selection,
  module: { resolved: string; named: string },
): Promise<RowHashes[]> {
  const names = shape.types.map((c) => c.name);
  const encoded: (string | null)[][] = [];
  const sourceKeys: string[] = [];
  const filter = allConditions(shape.sourceFilter, selection.keys ? sourceKeysCondition(shape.source.key, selection.keys) : null);
  const source = await readSourceRows(sourcePool, { source: shape.source, filter }, selection.range ?? wholeKeySpace);
  const produced = await inputTextsOnThread(module.resolved, source, names, kinds);
  /** Source keys whose row the copier would record as failed: the transform throws, or the target refuses a value. */
  const unwritable = new Set<string>();
  produced.keys.forEach((key, i) => {
    const rows = produced.rows[i];
    if (!rows) return void unwritable.add(key);
    encoded.push(...rows);
    sourceKeys.push(...rows.map(() => key));
  });
  const canonical = await canonicalize(targetPool, shape, encoded);
  const byKey = new Map<string, RowHashes[]>();
  const checkTrace = rowsOfSourceKey(shape, module.named);
  canonical.forEach((row, i) => {
    const key = sourceKeys[i]!;
    if (!row) return void unwritable.add(key);
    checkTrace(row, key);
    byKey.set(key, [...(byKey.get(key) ?? []), shape.lineage ? { ...row, lineage: key } : row]);
  });
  // A target row of an unwritable source row's key, or group, differs, and is no extra row to
  // delete: its source row is there (repair leaves a refused row or group alone).
  const unwritableRow = (key: string): RowHashes[] => [{ key, columns: names.map(() => null), unwritable: true, ...(shape.lineage ? { lineage: key } : {}) }];
  return produced.keys.flatMap((key) => (unwritable.has(key) ? unwritableRow(key) : (byKey.get(key) ?? [])));
}

/** Key types whose text a transform's value and the source key's text share, so they can be compared as text. */
const TEXT_COMPARABLE_KEYS = new Set(['int2', 'int4', 'int8', 'text', 'varchar', 'bpchar', 'uuid']);

/**
 * A check that each row a module transform makes can be traced to the source row it came from:
 * by its lineage column (which must hold that source key), or, without one, by its key (which
 * must be the source key: one target row per source row). Verification compares target rows
 * with source rows by that trace, so a transform that breaks it could only be verified wrongly.
 */
function rowsOfSourceKey(shape: VerifyShape, modulePath: string): (row: RowHashes, sourceKey: string) => void {
  const column = shape.lineage ?? shape.target.key;
  const index = shape.types.findIndex((c) => c.name === column);
  const type = shape.types[index];
  const comparable = !!type && TEXT_COMPARABLE_KEYS.has(type.base);
  const seen = new Set<string>();
  return (row, sourceKey) => {
    if (!comparable) return;
    const traced = shape.lineage ? row.columns[index] : row.key;
    if (traced !== sourceKey && !(type!.base === 'uuid' && traced?.toLowerCase() === sourceKey.toLowerCase())) {
      throw ApplicationFailure.nonRetryable(
        shape.lineage
          ? `transform module ${modulePath} made a row whose "${column}" (target.sourceKey) is ${traced === null ? 'NULL' : `"${traced}"`} ` +
              `from source key "${sourceKey}"; it must hold the source key the row came from`
          : `transform module ${modulePath} made a row with key "${row.key}" from source key "${sourceKey}": verification compares each ` +
              `target row with the source row of the same key; when target rows are not one per source key, set target.sourceKey ` +
              `to the target column that holds the source key each row came from`,
        'VerificationImpossible',
      );
    }
    if (shape.lineage) return;
    if (seen.has(sourceKey)) {
      throw ApplicationFailure.nonRetryable(
        `transform module ${modulePath} made more than one row from source key "${sourceKey}": verification compares each target ` +
          `row with the source row of the same key; set target.sourceKey to the target column that holds the source key each row came from`,
        'VerificationImpossible',
      );
    }
    seen.add(sourceKey);
  };
}

/** Whether the target hashes text as the worker does: md5 of its UTF-8 bytes. */
export async function hashesUtf8(pool: pg.Pool): Promise<boolean> {
  const result = await pool.query<{ encoding: string }>(sql`SELECT current_setting(${'server_encoding'}) AS encoding`);
  return ['UTF8', 'SQL_ASCII'].includes(result.rows[0]?.encoding ?? '');
}

/**
 * Canonical texts of encoded rows, one for each (in order); null for a row whose value the
 * target's type refuses, which the copier leaves out too.
 */
async function canonicalize(pool: pg.Pool, shape: VerifyShape, rows: (string | null)[][]): Promise<(RowHashes | null)[]> {
  if (rows.length === 0) return [];
  const query = canonicalizeValuesSql(shape, shape.types.map((_, i) => rows.map((row) => row[i] ?? null)));
  try {
    // unnest yields the rows in the order of the arrays, and nothing in the query reorders them.
    return rowHashesOf((await pool.query<unknown[]>({ ...query, rowMode: 'array' })).rows);
  } catch (error) {
    if (!(error instanceof pg.DatabaseError) || !error.code?.startsWith('22')) throw error;
    if (rows.length === 1) return [null];
    const each = await Promise.all(rows.map((row) => canonicalize(pool, shape, [row])));
    return each.flat();
  }
}
