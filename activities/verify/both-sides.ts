/**
 * What both sides of a comparison read: the verification of a plan (the target's column types,
 * the filters of both sides, a module transform's rows and digests) and the rows of a selection
 * as canonical texts or hashes, on the source through the transform and on the target.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { KeyRange } from '../../lib/key-range';
import { lineageColumn, lineageProblem, type Plan, targetColumns } from '../../lib/plan';
import type { Databases } from '../connections';
import { assertPlanSqlIsSafe, oneStatement, readOnlyQuery } from '../plan-sql';
import { type CopySpec, copySpecOf } from '../copy/copy-statements';
import { convertedColumnsFor } from '../copy/copy-format';
import { type Mismatch, recordFoundValues, unresolvedFailedKeys } from '../state/ferry-schema';
import { resolveTransformModule } from '../transform/load';
import { targetColumnKinds } from '../transform/copy-text';
import { quoteIdent, quoteLiteral, SOURCE_ALIAS, sql } from '../sql';
import type { DigestResult } from '../transform/thread-messages';
import { digestOnThread, readSourceRows } from '../transform/transform-threads';
import { keysToReadAgain, type Reread } from './capture-settle';
import { workerFieldOf } from '../transform/worker-checksum';
import { allConditions, type ColumnType, columnTypesSql, diffRows, type RowHashes, rowHashesOf, rowsSql, sampleCondition, type Selection, TARGET_ALIAS, type VerifyShape } from './verify-statements';
import { hashesUtf8, moduleSourceRows } from './module-rows';
import { keyOrdersDiffer, keyRangeOrderProblem } from '../inspect/key-order';

export interface MismatchCounts {
  missing: number;
  extra: number;
  value: number;
}

export interface ColumnValues {
  /** Canonical text of the value the transform makes from the source; null for NULL or no row. */
  source: string | null;
  /** Canonical text of the target's value; null for NULL or no row. */
  target: string | null;
}

export const zeroCounts = (): MismatchCounts => ({ missing: 0, extra: 0, value: 0 });

/** timestamp and date: types whose text names no time zone. */
const LOCAL_TIME_TYPES = new Set([1114, 1082]);

/** Mismatches of a chunk whose values are kept as found. */
const MAX_VALUES_KEPT = 100;
/** Target rows per page when reading a differing chunk row by row. */
export const MIN_PAGE_ROWS = 1000;

const md5 = (text: string) => createHash('md5').update(text, 'utf8').digest('hex');

export interface Verification {
  shape: VerifyShape;
  spec: CopySpec;
  /**
   * The source filter depends on more than the key (a where clause, a partition): target rows
   * cannot be judged by it, so the target side reads the keys the source chunk holds, and rows
   * only in the target (extra) are left to the final check of the pass (see coverage.ts).
   */
  rowDependent: boolean;
  /** Canonical texts of source rows as the transform makes them, for a module transform. */
  moduleRows: ((selection: Selection) => Promise<RowHashes[]>) | null;
  /**
   * The count and digest of a range's source rows through a module transform, computed in the
   * worker; null when the worker cannot make some value canonical. Unset when the target has a
   * column type the worker does not know, or once the worker's digest has disagreed with
   * Postgres in this call (then Postgres compares every chunk).
   */
  moduleDigest: ((range: KeyRange) => Promise<DigestResult>) | null;
}

/** The reads of both sides, shared by the verifier's activities (compare, repair, report, coverage). */
export function createBothSides(databases: Databases, transformDir: string | null) {
  /** Looks up the target's column types once and builds what both sides of a comparison read. */
  async function verificationOf(plan: Plan, partitionValue: string | null, samplePercent?: number, migrationId?: string): Promise<Verification> {
    assertPlanSqlIsSafe(plan);
    const unverifiable = lineageProblem(plan);
    if (unverifiable) {
      throw ApplicationFailure.nonRetryable(`this plan cannot be verified: ${unverifiable.path} ${unverifiable.message}`, 'VerificationImpossible');
    }
    const lineage = lineageColumn(plan);
    const spec = copySpecOf(plan, partitionValue);
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    const names = targetColumns(plan);
    const found = await targetPool.query<ColumnType>(columnTypesSql(spec.target, names));
    const byName = new Map(found.rows.map((c) => [c.name, c]));
    const absent = names.filter((n) => !byName.has(n));
    if (absent.length) {
      throw ApplicationFailure.nonRetryable(
        `target table ${spec.target.schema}.${spec.target.table} has no column ${absent.map((n) => `"${n}"`).join(', ')}; ` +
          'verification compares every column the transform produces',
        'TargetColumnMissing',
      );
    }
    const orders = await keyOrdersDiffer(
      { pool: sourcePool, table: spec.source, column: plan.source.key },
      { pool: targetPool, table: spec.target, column: lineage ?? spec.target.key },
    );
    if (orders && plan.subset?.keyRange) {
      throw ApplicationFailure.nonRetryable(keyRangeOrderProblem(plan, orders), 'VerificationImpossible');
    }
    const sourceKey = `${SOURCE_ALIAS}.${quoteIdent(plan.source.key)}`;
    // Subsets and failed records name source keys: on the target they are the lineage column's.
    const targetKey = `${TARGET_ALIAS}.${quoteIdent(lineage ?? spec.target.key)}`;
    const range = plan.subset?.keyRange;
    const targetFilter = allConditions(
      range?.from !== undefined ? `${targetKey} >= ${quoteLiteral(range.from)}` : null,
      range?.to !== undefined ? `${targetKey} <= ${quoteLiteral(range.to)}` : null,
      plan.subset?.samplePercent !== undefined ? sampleCondition(targetKey, plan.subset.samplePercent) : null,
      samplePercent !== undefined ? sampleCondition(targetKey, samplePercent) : null,
    );
    // Rows the copier could not copy are already reported as failed records (their transform or
    // insert fails): comparing them would fail the same way, so both sides leave them out.
    const failed = migrationId ? await unresolvedFailedKeys(targetPool, migrationId) : [];
    const notFailed = (key: string) => (failed.length ? `NOT (${key}::text = ANY(ARRAY[${failed.map(quoteLiteral).join(', ')}]::text[]))` : null);
    // Between two databases a SQL transform's values reach the target as text where the types differ.
    const converted =
      plan.transform.sql && !databases.sameDatabase(plan.source.connection, plan.target.connection)
        ? await convertedColumnsFor(sourcePool, targetPool, spec)
        : [];
    const localTimes = converted.filter((c) => LOCAL_TIME_TYPES.has(c.sourceType ?? 0) && byName.get(c.name)?.base === 'timestamptz').map((c) => c.name);
    const zone = localTimes.length ? (await targetPool.query<{ zone: string }>(sql`SELECT current_setting('TimeZone') AS zone`)).rows[0]!.zone : null;
    const shape: VerifyShape = {
      source: spec.source,
      target: spec.target,
      columns: spec.columns,
      types: names.map((n) => byName.get(n)!),
      sourceFilter: allConditions(spec.filter, samplePercent !== undefined ? sampleCondition(sourceKey, samplePercent) : null, notFailed(sourceKey)),
      targetFilter: allConditions(targetFilter, notFailed(targetKey)),
      lineage,
      ...(converted.length ? { converted: converted.map((c) => c.name) } : {}),
      ...(zone ? { localTimes: { zone, columns: localTimes } } : {}),
      ...(orders ? { keyOrderDiffers: true } : {}),
    };
    const rowDependent =
      !!plan.subset?.where || (!!plan.shards.partitionColumn && (partitionValue !== null || !!plan.subset?.partitionValues)) || !!orders;

    let moduleRows: Verification['moduleRows'] = null;
    let moduleDigest: Verification['moduleDigest'] = null;
    if (plan.transform.module) {
      const modulePath = await resolveTransformModule(plan.transform.module, transformDir);
      const kinds = await targetColumnKinds(targetPool, spec.target);
      const module = { resolved: modulePath, named: plan.transform.module };
      moduleRows = (selection) => moduleSourceRows(sourcePool, targetPool, shape, kinds, selection, module);
      if (shape.types.every((c) => workerFieldOf(c) !== null) && (await hashesUtf8(targetPool))) {
        // Made canonical and hashed on a transform thread, as the target's rows are in SQL.
        moduleDigest = async (range) =>
          digestOnThread(modulePath, await readSourceRows(sourcePool, { source: shape.source, filter: shape.sourceFilter }, range), shape.types);
      }
    }
    return { shape, spec, rowDependent, moduleRows, moduleDigest };
  }

  /** Every target row of a selection in key order, a page at a time, as canonical texts or hashes. */
  async function targetRows(pool: pg.Pool, shape: VerifyShape, selection: Selection, mode: 'hash' | 'text', pageRows: number): Promise<RowHashes[]> {
    if (shape.lineage) {
      // Selected by source keys, so not in pages of target keys: a chunk's groups are read whole.
      const query = rowsSql('target', shape, selection, mode);
      return rowHashesOf((await pool.query<unknown[]>({ ...query, rowMode: 'array' })).rows, shape);
    }
    const rows: RowHashes[] = [];
    let after = selection.range?.after ?? null;
    for (;;) {
      const query = rowsSql('target', shape, { ...selection, range: { after, upTo: selection.range?.upTo ?? null } }, mode, pageRows);
      const page = rowHashesOf((await pool.query<unknown[]>(oneStatement({ ...query, rowMode: 'array' as const }))).rows);
      rows.push(...page);
      if (page.length < pageRows) return rows;
      after = page[page.length - 1]!.key;
    }
  }

  /** Per-row hashes of both sides of a selection, read at once. */
  async function bothSides(plan: Plan, v: Verification, source: Selection, target: Selection, pageRows: number): Promise<[RowHashes[], RowHashes[]]> {
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    if (v.moduleRows) {
      const hashed = (rows: RowHashes[]) => rows.map((r) => ({ ...r, columns: r.columns.map((c) => (c === null ? null : md5(c))) }));
      const [s, t] = await Promise.all([v.moduleRows(source), targetRows(targetPool, v.shape, target, 'text', pageRows)]);
      return [hashed(s), hashed(t)];
    }
    const query = rowsSql('source', v.shape, source, 'hash');
    return Promise.all([
      readOnlyQuery<unknown[]>(sourcePool, { ...query, rowMode: 'array' }).then((r) => rowHashesOf(r.rows, v.shape)),
      targetRows(targetPool, v.shape, target, 'hash', pageRows),
    ]);
  }

  /** The canonical texts of some keys' rows on both sides, read now, per column name. */
  async function rowValues(plan: Plan, v: Verification, targetKeys: string[], sourceKeys: string[] = []): Promise<(mismatch: Mismatch) => Record<string, ColumnValues>> {
    const targetPool = databases.pool(plan.target.connection);
    // With a lineage column both sides are read by the source keys, then matched by target key.
    const keys = v.shape.lineage ? [...new Set(sourceKeys)] : targetKeys;
    const sourceQuery = rowsSql('source', v.shape, { keys }, 'text');
    const [sourceRows, targetRowsRead] = await Promise.all([
      v.moduleRows
        ? v.moduleRows({ keys })
        : readOnlyQuery<unknown[]>(databases.pool(plan.source.connection), { ...sourceQuery, rowMode: 'array' }).then((r) => rowHashesOf(r.rows, v.shape)),
      targetRows(targetPool, v.shape, { keys }, 'text', Math.max(MIN_PAGE_ROWS, keys.length + 1)),
    ]);
    const names = columnNames(v);
    const sourceByKey = new Map(sourceRows.filter((r) => !r.unwritable).map((r) => [r.key, r.columns]));
    const targetByKey = new Map(targetRowsRead.map((r) => [r.key, r.columns]));
    return (mismatch) =>
      Object.fromEntries(
        (mismatch.columns.length ? mismatch.columns : names).map((column) => {
          const i = names.indexOf(column);
          return [column, { source: sourceByKey.get(mismatch.key)?.[i] ?? null, target: targetByKey.get(mismatch.key)?.[i] ?? null }];
        }),
      );
  }

  /**
   * Keeps the values of differences as found, before any repair, in ferry.mismatches on the
   * target (the first MAX_VALUES_KEPT of a chunk; the report reads the others then).
   */
  async function captureFoundValues(plan: Plan, v: Verification, migrationId: string, pass: number, differences: Mismatch[]): Promise<void> {
    const kept = differences.slice(0, MAX_VALUES_KEPT);
    if (kept.length === 0) return;
    const valuesOf = await rowValues(plan, v, kept.map((d) => d.key), kept.flatMap((d) => (d.sourceKey == null ? [] : [d.sourceKey])));
    await recordFoundValues(databases.pool(plan.target.connection), migrationId, pass, kept.map((d) => ({ key: d.key, values: valuesOf(d) })));
  }

  return { verificationOf, bothSides, rowValues, captureFoundValues };
}

export type BothSides = ReturnType<typeof createBothSides>;

export function columnNames(v: Verification): string[] {
  return v.shape.types.map((c) => c.name);
}

/** Reads the rows of some differences again: returns those that still differ. */
export const rereadWith =
  (bothSides: BothSides['bothSides'], plan: Plan, v: Verification, pageRows: number): Reread =>
  async (earlier) => {
    const differing = keysToReadAgain(earlier, !!v.shape.lineage);
    const [s, t] = await bothSides(plan, v, { keys: differing }, { keys: differing }, pageRows);
    const seen = new Set(earlier.map((d) => d.key));
    return diffRows(columnNames(v), s, t).filter((d) => seen.has(d.key));
  };
