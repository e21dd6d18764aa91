/**
 * Verifier proves that the target holds what the source holds through the plan's transform,
 * says precisely where it does not (keys, categories and column names, never values), and
 * repairs it from the source. Chunks are compared by count and an order-independent digest
 * computed inside both databases at once; only chunks that differ are read row by row.
 */
import { activityInfo, ApplicationFailure, CancelledFailure, Context, heartbeat, log, sleep } from '@temporalio/activity';
import { withHeartbeats, type Heartbeats } from './heartbeats';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { describeRange, wholeKeySpace, type KeyRange, type ShardSpec } from '../lib/key-range';
import { lineageColumn, lineageProblem, targetColumns, type Plan } from '../lib/plan';
import { inCopyTransaction, writeBatch } from './batch-writer';
import type { Databases } from './connections';
import { assertPlanSqlIsSafe, oneStatement, readOnly, readOnlyQuery } from './plan-sql';
import { copyOutSql, copySpecOf, copyWithinDatabaseSql, nextBatchBoundSql, rangeRowsSql, type CopySpec } from './copy-statements';
import { createCoverageCheck } from './coverage';
import { installFerrySchema, recordFoundValues, recordMismatches, type Mismatch, type MismatchCategory } from './ferry-schema';
import { runOfPass } from './verification-runs';
import {
  copyRangeThroughModule,
  isThenable,
  loadResolvedTransform,
  loadTransform,
  postgresInputText,
  resolveTransformModule,
  sourceRowOf,
  sourceRowTypes,
  targetColumnKinds,
  transformDirFromEnv,
  type ColumnKinds,
  type RowTransform,
  type TargetRow,
} from './module-transform';
import { isRowError } from '../lib/errors';
import { redactMessage } from '../lib/errors';
import { quoteIdent, quoteLiteral, SOURCE_ALIAS } from './sql';
import type { DigestResult } from './transform-thread';
import { digestOnThread, readSourceRows } from './transform-threads';
import { workerFieldOf } from './worker-checksum';
import {
  canonicalizeValuesSql,
  chunkChecksumSql,
  columnTypesSql,
  deleteTargetGroupsSql,
  deleteTargetKeysSql,
  diffRows,
  rowHashesOf,
  rowsSql,
  sampleCondition,
  sourceKeysCondition,
  sourceKeysPresentSql,
  keyOrderSql,
  TARGET_ALIAS,
  type ColumnType,
  type RowHashes,
  type Selection,
  type VerifyShape,
} from './verify-statements';

export interface VerifyShardInput {
  migrationId: string;
  plan: Plan;
  shard: ShardSpec;
  /** Last key already verified in the shard; null to start at the shard's beginning. */
  cursor: string | null;
  /** Source keys per checksum chunk. */
  chunkSize: number;
  /** The verification pass (1, 2, ...): mismatches are recorded under it. */
  pass: number;
  /** Return after about this long so the workflow can checkpoint. (Default: 5) */
  maxSeconds?: number;
  /** How long a differing row is given to settle before it is checked again. (Default: 2000) */
  inFlightDelayMs?: number;
  /** Compare only the keys of this deterministic sample (0 to 100), on both sides. (Default: all) */
  samplePercent?: number;
}

export interface MismatchCounts {
  missing: number;
  extra: number;
  value: number;
}

/** Counts of one verifyShard call (and of the attempts it resumed from). */
export interface VerifyCounts {
  chunks: number;
  chunksDiffering: number;
  /** Source rows compared. */
  rowsChecked: number;
  mismatches: MismatchCounts;
  /** Rows that differed at first and matched when checked again: writes that were in flight. Not recorded. */
  inFlight: number;
}

export interface VerifyShardResult extends VerifyCounts {
  cursor: string | null;
  /** The shard holds no rows after the cursor. */
  done: boolean;
  /** Mismatches found in this call: keys, categories and column names only. At most MAX_EXAMPLES. */
  examples: Mismatch[];
}

/** What verifyShard heartbeats after every chunk; a retried attempt resumes from it. */
interface VerifyProgress {
  cursor: string | null;
  counts: VerifyCounts;
  examples: Mismatch[];
}

export interface RepairInput {
  migrationId: string;
  plan: Plan;
  pass: number;
}

export interface RepairResult {
  /** Target rows written (inserted or overwritten) from the source. */
  repaired: number;
  /** Target rows deleted because the source does not hold their key. */
  deleted: number;
  /** Mismatches of the pass still unresolved afterwards (rows the target refused). */
  unresolved: number;
}

export interface MismatchReportInput {
  migrationId: string;
  plan: Plan;
  /** Also return the source (transformed) and target values of the examples. (Default: false) */
  showValues?: boolean;
  /** Examples at most. (Default: 20) */
  limit?: number;
}

export interface ColumnValues {
  /** Canonical text of the value the transform makes from the source; null for NULL or no row. */
  source: string | null;
  /** Canonical text of the target's value; null for NULL or no row. */
  target: string | null;
}

export interface MismatchReportExample extends Mismatch {
  resolved: boolean;
  /** Only with showValues: per differing column (every column for missing and extra rows). */
  values?: Record<string, ColumnValues>;
  /** The values are as the pass found them (false: read when the report was made, after any repair). */
  valuesAsFound?: boolean;
}

export interface MismatchReport {
  migrationId: string;
  /** The latest pass with mismatches recorded; null when there are none. */
  pass: number | null;
  /** The verification run of that pass, and its number within the run, when the run was recorded. */
  run?: number;
  runPass?: number;
  counts: MismatchCounts;
  unresolved: MismatchCounts;
  examples: MismatchReportExample[];
}

export const MAX_EXAMPLES = 20;
/** Mismatches of a chunk whose values are kept as found. */
const MAX_VALUES_KEPT = 100;
/** Open mismatches of earlier passes checked again per query. */
const RECHECK_BATCH = 500;
/** Mismatches a repair handles per transaction. */
const REPAIR_BATCH = 500;
/** Target rows per page when reading a differing chunk row by row. */
const MIN_PAGE_ROWS = 1000;

const zeroCounts = (): MismatchCounts => ({ missing: 0, extra: 0, value: 0 });

function and(...conditions: (string | null | undefined)[]): string | null {
  const parts = conditions.filter((c): c is string => !!c);
  return parts.length ? parts.map((c) => `(${c})`).join(' AND ') : null;
}

const md5 = (text: string) => createHash('md5').update(text, 'utf8').digest('hex');

/** A chunk's row count and digest, as Postgres prints them. */
interface Sums {
  rows: string;
  digest: string;
}

interface ChunkSums {
  /** The source keys of the chunk, when the target side is selected by them (see chunkKeys). */
  keys: string[] | undefined;
  /** Null when the worker cannot make some value of a module transform's rows canonical. */
  source: Sums | null;
  target: Sums;
}

/** The sums of the next chunk, being read. */
interface ReadAhead {
  after: string | null;
  sums: Promise<ChunkSums>;
}

interface Verification {
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

/** Keys of a migration's failed records not yet fixed; none when Ferry's schema is not there yet. */
async function unresolvedFailedKeys(pool: pg.Pool, migrationId: string): Promise<string[]> {
  try {
    const result = await pool.query<{ key: string }>(
      'SELECT key FROM ferry.failed_records WHERE migration_id = $1 AND resolved_at IS NULL',
      [migrationId],
    );
    return result.rows.map((r) => r.key);
  } catch (error) {
    if ((error as { code?: string }).code === '42P01') return [];
    throw error;
  }
}

export function createVerifier(databases: Databases, transformDir: string | null = transformDirFromEnv()) {
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
    const sourceKey = `${SOURCE_ALIAS}.${quoteIdent(plan.source.key)}`;
    // Subsets and failed records name source keys: on the target they are the lineage column's.
    const targetKey = `${TARGET_ALIAS}.${quoteIdent(lineage ?? spec.target.key)}`;
    const range = plan.subset?.keyRange;
    const targetFilter = and(
      range?.from !== undefined ? `${targetKey} >= ${quoteLiteral(range.from)}` : null,
      range?.to !== undefined ? `${targetKey} <= ${quoteLiteral(range.to)}` : null,
      plan.subset?.samplePercent !== undefined ? sampleCondition(targetKey, plan.subset.samplePercent) : null,
      samplePercent !== undefined ? sampleCondition(targetKey, samplePercent) : null,
    );
    // Rows the copier could not copy are already reported as failed records (their transform or
    // insert fails): comparing them would fail the same way, so both sides leave them out.
    const failed = migrationId ? await unresolvedFailedKeys(targetPool, migrationId) : [];
    const notFailed = (key: string) => (failed.length ? `NOT (${key}::text = ANY(ARRAY[${failed.map(quoteLiteral).join(', ')}]::text[]))` : null);
    const shape: VerifyShape = {
      source: spec.source,
      target: spec.target,
      columns: spec.columns,
      types: names.map((n) => byName.get(n)!),
      sourceFilter: and(spec.filter, samplePercent !== undefined ? sampleCondition(sourceKey, samplePercent) : null, notFailed(sourceKey)),
      targetFilter: and(targetFilter, notFailed(targetKey)),
      lineage,
    };
    const rowDependent =
      !!plan.subset?.where || (!!plan.shards.partitionColumn && (partitionValue !== null || !!plan.subset?.partitionValues));

    let moduleRows: Verification['moduleRows'] = null;
    let moduleDigest: Verification['moduleDigest'] = null;
    if (plan.transform.module) {
      const modulePath = await resolveTransformModule(plan.transform.module, transformDir);
      const transform = await loadResolvedTransform(modulePath);
      const kinds = await targetColumnKinds(targetPool, spec.target);
      moduleRows = (selection) => moduleSourceRows(sourcePool, targetPool, shape, kinds, transform, selection, plan.transform.module!);
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
    const sourceByKey = new Map(sourceRows.map((r) => [r.key, r.columns]));
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

  /** verifyShard's work; row errors are turned into a clear failure by the activity. */
  async function verifyShardChunks(input: VerifyShardInput, heartbeats?: Heartbeats): Promise<VerifyShardResult> {
    const { plan } = input;
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    await ensureMismatchesTable(targetPool);
    const v = await verificationOf(plan, input.shard.partitionValue, input.samplePercent, input.migrationId);
    const chunkSize = Math.max(1, Math.trunc(input.chunkSize));
    const pageRows = Math.max(MIN_PAGE_ROWS, chunkSize * 2);
    const maxMs = (input.maxSeconds ?? 5) * 1000;
    const inFlightDelayMs = input.inFlightDelayMs ?? 2000;
    const bounds = { source: v.shape.source, filter: v.shape.sourceFilter };

    const resumed = activityInfo().heartbeatDetails as VerifyProgress | undefined;
    const progress: VerifyProgress = resumed ?? {
      cursor: input.cursor,
      counts: { chunks: 0, chunksDiffering: 0, rowsChecked: 0, mismatches: zeroCounts(), inFlight: 0 },
      examples: [],
    };
    heartbeats?.follow(() => progress);
    const started = Date.now();
    const finish = (done: boolean): VerifyShardResult => ({ ...progress.counts, cursor: progress.cursor, done, examples: progress.examples });

    const nextBound = (after: string | null) => {
      const query = nextBatchBoundSql(bounds, { after, upTo: input.shard.range.upTo }, chunkSize);
      const found = readOnlyQuery<{ last_key: string; rows: string }>(sourcePool, query).then((r) => r.rows[0] ?? null);
      found.catch(() => {});
      return found;
    };

    /** The source keys of a chunk, for a target side that cannot be filtered like the source. */
    const chunkKeys = async (range: KeyRange): Promise<string[] | undefined> => {
      if (!v.rowDependent) return undefined;
      const query = rangeRowsSql(bounds, range);
      const result = await readOnlyQuery<{ key: string }>(sourcePool, {
        text: `SELECT "ferry source key" AS key FROM (${query.text}) AS chunk`,
        values: query.values,
      });
      return result.rows.map((r) => r.key);
    };

    /**
     * The count and digest of a chunk on both sides: the source's through the transform (in the
     * worker for a module transform, null when the worker cannot tell), and the target's.
     */
    const chunkSums = async (range: KeyRange): Promise<ChunkSums> => {
      const keys = await chunkKeys(range);
      const targetSum = chunkChecksumSql('target', v.shape, { range, keys });
      const moduleDigest = v.moduleDigest;
      const [source, target] = await Promise.all([
        v.moduleRows
          ? (moduleDigest?.(range).then((d) => d && { rows: String(d.rows), digest: d.digest }) ?? null)
          : readOnlyQuery<Sums>(sourcePool, chunkChecksumSql('source', v.shape, { range })).then((r) => r.rows[0]!),
        targetPool.query<Sums>(oneStatement(targetSum)).then((r) => r.rows[0]!),
      ]);
      return { keys, source, target };
    };

    /**
     * Sums of the chunk after this one, read while this one is compared: a module transform's
     * digest keeps the worker busy, and the databases can read meanwhile. Not started when the
     * call is about to end, so as not to read a chunk for nothing.
     */
    const readAhead = (after: string, nextBound: Promise<{ last_key: string } | null>): ReadAhead | null => {
      if (!v.moduleDigest || Date.now() - started > maxMs * 0.8) return null;
      // A failure here is the next chunk's to report (its bound or sums are awaited again then);
      // unhandled meanwhile, it would end the process.
      const sums = nextBound.then((found) => chunkSums({ after, upTo: found ? found.last_key : input.shard.range.upTo }));
      sums.catch(() => {});
      return { after, sums };
    };

    /** The chunk's differences that remain after in-flight writes have had time to land. */
    const verifyChunk = async (range: KeyRange, prefetched: ReadAhead | null): Promise<{ rows: number; differences: Mismatch[]; inFlight: number }> => {
      const useModuleDigest = !!v.moduleDigest || !!prefetched;
      let rows: number;
      let first: Mismatch[];
      if (!v.moduleRows || useModuleDigest) {
        const sums = prefetched && prefetched.after === range.after ? await prefetched.sums : await chunkSums(range);
        if (sums.source) {
          rows = Number(sums.source.rows);
          if (sums.source.rows === sums.target.rows && sums.source.digest === sums.target.digest) return { rows, differences: [], inFlight: 0 };
        } else {
          // A value the worker cannot make canonical is likely to come back in every chunk.
          v.moduleDigest = null;
        }
        const [s, t] = await bothSides(plan, v, { range }, { range, keys: sums.keys }, pageRows);
        rows = v.moduleRows ? s.length : Number(sums.source!.rows);
        first = diffRows(columnNames(v), s, t);
        if (v.moduleRows && sums.source && first.length === 0) {
          // Postgres found the chunk equal where the worker's digest did not: a canonical text
          // the worker gets wrong, or a write between the reads. Either way, trust Postgres.
          v.moduleDigest = null;
          log.warn('verification compares the rest of this call in Postgres: the worker checksum of a chunk differed where Postgres found none', {
            range: describeRange(range),
          });
        }
      } else {
        const [s, t] = await bothSides(plan, v, { range }, { range, keys: await chunkKeys(range) }, pageRows);
        rows = s.length;
        first = diffRows(columnNames(v), s, t);
      }
      if (first.length === 0) return { rows, differences: [], inFlight: 0 };
      // A row the application is writing to both sides may be caught between the two reads. The
      // timer's heartbeats go on meanwhile, and a cancellation ends the wait.
      await sleep(inFlightDelayMs);
      // With a lineage column, the differing rows' groups are read again: by their source keys.
      const differing = v.shape.lineage ? [...new Set(first.flatMap((d) => (d.sourceKey == null ? [] : [d.sourceKey])))] : first.map((d) => d.key);
      const [s, t] = await bothSides(plan, v, { keys: differing }, { keys: differing }, pageRows);
      const seen = new Set(first.map((d) => d.key));
      const differences = diffRows(columnNames(v), s, t).filter((d) => seen.has(d.key));
      return { rows, differences, inFlight: first.length - differences.length };
    };

    let bound = nextBound(progress.cursor ?? input.shard.range.after);
    let ahead: ReadAhead | null = null;
    for (;;) {
      const next = await bound;
      const after = progress.cursor ?? input.shard.range.after;
      // After the source's last key, the rest of the shard is one more chunk: empty in the
      // source, and whatever the target holds there is extra.
      const range: KeyRange = { after, upTo: next ? next.last_key : input.shard.range.upTo };
      const prefetched = ahead;
      ahead = null;
      if (next) {
        bound = nextBound(next.last_key);
        ahead = readAhead(next.last_key, bound);
      }
      const { rows, differences, inFlight } = await verifyChunk(range, prefetched);
      await recordMismatches(targetPool, input.migrationId, input.pass, differences);
      await captureFoundValues(plan, v, input.migrationId, input.pass, differences);

      const counts = progress.counts;
      counts.chunks += 1;
      counts.rowsChecked += rows;
      counts.inFlight += inFlight;
      if (differences.length > 0) counts.chunksDiffering += 1;
      for (const d of differences) {
        counts.mismatches[d.category] += 1;
        if (progress.examples.length < MAX_EXAMPLES) progress.examples.push(d);
      }
      if (!next) return finish(true);
      progress.cursor = next.last_key;
      heartbeat(progress);
      if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('verification cancelled');
      if (Date.now() - started >= maxMs) return finish(false);
    }
  }

  /**
   * Repair by lineage column: each source key with an unresolved mismatch gets its group of target
   * rows rewritten as a whole. The rows it produces now are copied over the target's; then the
   * target rows whose lineage column holds that source key and that it no longer produces are
   * deleted. A target row is deleted only so, traced to a source key that no longer makes it:
   * one with no source key stays, reported. Safe to run twice.
   */
  async function repairGroups(
    { plan, migrationId, pass }: RepairInput,
    lineage: string,
    base: CopySpec,
    copyKeys: (keys: string[]) => Promise<{ written: number; refused: string[] }>,
  ): Promise<RepairResult> {
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    const v = await verificationOf(plan, null);
    /** Every target key the source keys produce now. */
    const producedKeys = async (keys: string[]): Promise<string[]> => {
      if (v.moduleRows) return (await v.moduleRows({ keys })).map((r) => r.key);
      const query = rowsSql('source', v.shape, { keys }, 'hash');
      return rowHashesOf((await sourcePool.query<unknown[]>({ ...query, rowMode: 'array' })).rows, v.shape).map((r) => r.key);
    };
    let repaired = 0;
    let deleted = 0;
    let after: string | null = null;
    const refused: string[] = [];
    for (;;) {
      const batch: pg.QueryResult<{ source_key: string }> = await targetPool.query(
        `SELECT DISTINCT k AS source_key FROM ferry.mismatches, unnest(source_keys) AS k
          WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL AND ($3::text IS NULL OR k > $3)
          ORDER BY k LIMIT $4`,
        [migrationId, pass, after, REPAIR_BATCH],
      );
      if (batch.rows.length === 0) break;
      const groups = batch.rows.map((r) => r.source_key);
      after = groups[groups.length - 1]!;
      const copied = await copyKeys(groups);
      repaired += copied.written;
      // A group the target refused, or whose transform fails, is not known whole: nothing of it is deleted.
      refused.push(...copied.refused);
      const settled = groups.filter((k) => !copied.refused.includes(k));
      if (settled.length > 0) {
        const statement = deleteTargetGroupsSql(base.target, lineage, settled, await producedKeys(settled));
        deleted += await inCopyTransaction(targetPool, base, async (c) => (await c.query(statement)).rowCount ?? 0);
      }
      heartbeat({ repaired, deleted, after });
    }
    // Resolved: each difference whose every group was rewritten. One with no source key stays.
    await targetPool.query(
      `UPDATE ferry.mismatches SET resolved_at = now()
        WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL AND cardinality(source_keys) > 0 AND NOT (source_keys && $3::text[])`,
      [migrationId, pass, refused],
    );
    const left = await targetPool.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM ferry.mismatches WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL`,
      [migrationId, pass],
    );
    return { repaired, deleted, unresolved: left.rows[0]?.count ?? 0 };
  }

  const coverage = createCoverageCheck(databases, {
    shapeOf: async (plan, samplePercent, migrationId) => (await verificationOf(plan, null, samplePercent, migrationId)).shape,
    bothSides: async (plan, keys, samplePercent, migrationId) => {
      const v = await verificationOf(plan, null, samplePercent, migrationId);
      return bothSides(plan, v, { keys }, { keys }, Math.max(MIN_PAGE_ROWS, keys.length + 1));
    },
  });

  const activities = {
    ...coverage,
    /**
     * Verifies chunks of a shard from the cursor on until the shard is done or about
     * `maxSeconds` have passed, recording every mismatch in ferry.mismatches on the target.
     * Its progress is heartbeated after every chunk and every few seconds; a retried attempt
     * resumes from it. Safe to run twice: a chunk verified again records the same keys again.
     */
    async verifyShard(input: VerifyShardInput, heartbeats?: Heartbeats): Promise<VerifyShardResult> {
      try {
        return await verifyShardChunks(input, heartbeats);
      } catch (error) {
        // A source row the transform cannot evaluate fails the same way on every retry.
        if (!isRowError((error as { code?: string }).code)) throw error;
        throw ApplicationFailure.nonRetryable(
          `verification cannot compare a row of shard ${describeRange(input.shard.range)}: ${redactMessage((error as Error).message)}; ` +
            'fix the source row (or the transform) and verify again',
          'VerificationRowError',
        );
      }
    },

    /**
     * Repairs the unresolved mismatches of a pass from the source: missing and value rows are
     * copied again through the transform and overwrite the target's row (keys with a tombstone
     * are skipped); extra rows are deleted when the source (checked now) does not hold the key,
     * and copied when it does. Holds the copy lock while it writes. Safe to run twice.
     */
    async repairMismatches(input: RepairInput, heartbeats?: Heartbeats): Promise<RepairResult> {
      const { plan, migrationId, pass } = input;
      // Repairs COPY from the source, over the simple protocol: the plan's SQL must be one expression.
      assertPlanSqlIsSafe(plan);
      const sourcePool = databases.pool(plan.source.connection);
      const targetPool = databases.pool(plan.target.connection);
      await ensureMismatchesTable(targetPool);
      const base: CopySpec = { ...copySpecOf(plan), conflict: { policy: 'overwrite' } };
      const transform = plan.transform.module ? await loadTransform(plan.transform.module, transformDir) : null;
      const sameDatabase = databases.sameDatabase(plan.source.connection, plan.target.connection);

      /** Copies the source rows of `keys` over the target's; returns rows written and keys the target refused. */
      const copyKeys = async (keys: string[]): Promise<{ written: number; refused: string[] }> => {
        if (keys.length === 0) return { written: 0, refused: [] };
        const spec: CopySpec = { ...base, filter: and(base.filter, sourceKeysCondition(plan.source.key, keys)) };
        try {
          if (transform) {
            const outcome = await copyRangeThroughModule(sourcePool, targetPool, spec, wholeKeySpace, plan.transform.module!, transformDir);
            return { written: outcome.written, refused: outcome.failed.map((f) => f.key) };
          }
          if (sameDatabase) {
            const { text, values } = copyWithinDatabaseSql(spec, wholeKeySpace);
            return { written: await inCopyTransaction(targetPool, spec, async (c) => (await c.query(oneStatement({ text, values }))).rowCount ?? 0), refused: [] };
          }
          const out = copyOutSql(spec, wholeKeySpace);
          const written = await writeBatch(targetPool, spec, wholeKeySpace, (send) => readOnly(sourcePool, (s) => send(s.query(copyTo(out)))));
          return { written, refused: [] };
        } catch (error) {
          if (!isRowError((error as { code?: string }).code)) throw error;
          if (keys.length === 1) return { written: 0, refused: keys };
          // One row the target refuses must not keep the others from being repaired.
          let written = 0;
          const refused: string[] = [];
          for (const key of keys) {
            const one = await copyKeys([key]);
            written += one.written;
            refused.push(...one.refused);
          }
          return { written, refused };
        }
      };

      /** The keys of a list the transform makes a row for from the source now. */
      const producedKeys = async (keys: string[]): Promise<Set<string>> => {
        if (transform) {
          const v = await verificationOf(plan, null);
          return new Set((await v.moduleRows!({ keys })).map((r) => r.key));
        }
        const present = await readOnlyQuery<{ key: string }>(sourcePool, sourceKeysPresentSql(base.source, base.filter ?? null, keys));
        return new Set(present.rows.map((r) => r.key));
      };

      const lineage = lineageColumn(plan);
      if (lineage) return repairGroups(input, lineage, base, copyKeys);

      let repaired = 0;
      let deleted = 0;
      let after: string | null = null;
      heartbeats?.follow(() => ({ repaired, deleted, after }));
      for (;;) {
        const batch: pg.QueryResult<{ key: string; category: MismatchCategory }> = await targetPool.query(
          `SELECT key, category FROM ferry.mismatches
            WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL AND ($3::text IS NULL OR key > $3) ORDER BY key LIMIT $4`,
          [migrationId, pass, after, REPAIR_BATCH],
        );
        if (batch.rows.length === 0) break;
        after = batch.rows[batch.rows.length - 1]!.key;
        const extra = batch.rows.filter((r) => r.category === 'extra').map((r) => r.key);
        const toCopy = batch.rows.filter((r) => r.category !== 'extra').map((r) => r.key);
        let toDelete: string[] = [];
        if (extra.length > 0) {
          const inSource = await producedKeys(extra);
          toCopy.push(...extra.filter((k) => inSource.has(k)));
          toDelete = extra.filter((k) => !inSource.has(k));
        }
        const copied = await copyKeys(toCopy);
        repaired += copied.written;
        if (toDelete.length > 0) {
          const statement = deleteTargetKeysSql(base.target, toDelete);
          deleted += await inCopyTransaction(targetPool, base, async (c) => (await c.query(statement)).rowCount ?? 0);
        }
        const refused = new Set(copied.refused);
        await targetPool.query(
          `UPDATE ferry.mismatches SET resolved_at = now() WHERE migration_id = $1 AND pass = $2 AND key = ANY($3::text[])`,
          [migrationId, pass, batch.rows.map((r) => r.key).filter((k) => !refused.has(k))],
        );
      }
      const left = await targetPool.query<{ count: number }>(
        `SELECT count(*)::int AS count FROM ferry.mismatches WHERE migration_id = $1 AND pass = $2 AND resolved_at IS NULL`,
        [migrationId, pass],
      );
      return { repaired, deleted, unresolved: left.rows[0]?.count ?? 0 };
    },

    /**
     * Carries what earlier passes left unresolved into this pass, so a pass that did not compare
     * those keys (a sample, a narrower scope) neither forgets nor clears them: each such key is
     * compared again now; one that still differs is recorded under this pass (values as found),
     * one that is equal is resolved. Earlier passes then hold nothing open. Safe to run twice.
     */
    async recheckOpenMismatches(input: RepairInput): Promise<MismatchCounts> {
      const { plan, migrationId, pass } = input;
      const targetPool = databases.pool(plan.target.connection);
      await ensureMismatchesTable(targetPool);
      const counts = zeroCounts();
      let v: Verification | null = null;
      let after: string | null = null;
      for (;;) {
        const open: pg.QueryResult<{ key: string }> = await targetPool.query(
          `SELECT DISTINCT key FROM ferry.mismatches m
            WHERE migration_id = $1 AND pass < $2 AND resolved_at IS NULL AND ($3::text IS NULL OR key > $3)
              AND NOT EXISTS (SELECT 1 FROM ferry.mismatches c WHERE c.migration_id = $1 AND c.pass = $2 AND c.key = m.key)
            ORDER BY key LIMIT $4`,
          [migrationId, pass, after, RECHECK_BATCH],
        );
        if (open.rows.length === 0) break;
        const keys = open.rows.map((r) => r.key);
        after = keys[keys.length - 1]!;
        v ??= await verificationOf(plan, null, undefined, migrationId);
        const [s, t] = await bothSides(plan, v, { keys }, { keys }, Math.max(MIN_PAGE_ROWS, keys.length + 1));
        const differences = diffRows(columnNames(v), s, t);
        await recordMismatches(targetPool, migrationId, pass, differences);
        await captureFoundValues(plan, v, migrationId, pass, differences);
        for (const d of differences) counts[d.category] += 1;
        heartbeat({ after });
      }
      await targetPool.query(`UPDATE ferry.mismatches SET resolved_at = now() WHERE migration_id = $1 AND pass < $2 AND resolved_at IS NULL`, [migrationId, pass]);
      return counts;
    },

    /**
     * The latest pass's mismatches: counts per category and examples (keys, categories, column
     * names). Values only with showValues, as canonical text: as the pass found them, or read
     * now from both sides for mismatches whose values were not kept (said so per example).
     */
    async mismatchReport(input: MismatchReportInput): Promise<MismatchReport> {
      const { plan, migrationId } = input;
      const targetPool = databases.pool(plan.target.connection);
      const report: MismatchReport = { migrationId, pass: null, counts: zeroCounts(), unresolved: zeroCounts(), examples: [] };
      const exists = await targetPool.query<{ present: boolean }>(`SELECT to_regclass('ferry.mismatches') IS NOT NULL AS present`);
      if (!exists.rows[0]?.present) return report;
      const latest = await targetPool.query<{ pass: number | null }>(`SELECT max(pass) AS pass FROM ferry.mismatches WHERE migration_id = $1`, [migrationId]);
      const pass = latest.rows[0]?.pass ?? null;
      if (pass === null) return report;
      report.pass = pass;
      const counts = await targetPool.query<{ category: MismatchCategory; all: number; open: number }>(
        `SELECT category, count(*)::int AS all, (count(*) FILTER (WHERE resolved_at IS NULL))::int AS open
           FROM ferry.mismatches WHERE migration_id = $1 AND pass = $2 GROUP BY category`,
        [migrationId, pass],
      );
      for (const row of counts.rows) {
        report.counts[row.category] = row.all;
        report.unresolved[row.category] = row.open;
      }
      const examples = await targetPool.query<{ key: string; category: MismatchCategory; columns: string[]; resolved: boolean; found: Record<string, ColumnValues> | null; source_keys: string[] | null }>(
        `SELECT key, category, columns, resolved_at IS NOT NULL AS resolved, found_values AS found, source_keys FROM ferry.mismatches
          WHERE migration_id = $1 AND pass = $2 ORDER BY resolved_at IS NOT NULL, ${keyOrderSql('key')} LIMIT $3`,
        [migrationId, pass, input.limit ?? MAX_EXAMPLES],
      );
      report.examples = examples.rows.map((r) => ({ key: r.key, category: r.category, columns: r.columns, resolved: r.resolved }));
      const run = await runOfPass(targetPool, migrationId, pass);
      if (run) Object.assign(report, { run: run.run, runPass: run.pass });
      if (!input.showValues || report.examples.length === 0) return report;

      // Values as the pass found them; those it did not keep are read now, and say so.
      const notKept = examples.rows.filter((r) => !r.found);
      const readNow = notKept.length ? await rowValues(plan, await verificationOf(plan, null), notKept.map((r) => r.key), notKept.flatMap((r) => r.source_keys ?? [])) : null;
      report.examples.forEach((example, i) => {
        const found = examples.rows[i]!.found;
        example.values = found ?? readNow!(example);
        example.valuesAsFound = found !== null;
      });
      return report;
    },
  };

  // Heartbeats from a timer, whatever a call is doing: a long statement, the in-flight delay.
  return {
    ...activities,
    verifyShard: (input: VerifyShardInput): Promise<VerifyShardResult> => withHeartbeats((heartbeats) => activities.verifyShard(input, heartbeats)),
    repairMismatches: (input: RepairInput): Promise<RepairResult> => withHeartbeats((heartbeats) => activities.repairMismatches(input, heartbeats)),
  };
}

function columnNames(v: Verification): string[] {
  return v.shape.types.map((c) => c.name);
}

/** Installs Ferry's schema when the mismatches table, or its newest column, is not there yet (older installs). */
async function ensureMismatchesTable(pool: pg.Pool): Promise<void> {
  const exists = await pool.query<{ present: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('ferry.mismatches') AND attname = 'found_values') AS present`,
  );
  if (!exists.rows[0]?.present) await installFerrySchema(pool);
}

/**
 * Source rows of a selection through a module transform, as canonical texts: the rows are read
 * and transformed in the worker, then parsed with the target's column types on the target
 * database (which writes nothing) and made canonical by the same expressions as the target's
 * rows. A row whose transform throws is not expected in the target: the copier records it as a
 * failed row instead. Each row carries the source key it came from, and must be traceable to it
 * (see rowsOfSourceKey): a transform that breaks that cannot be verified and fails the call.
 */
async function moduleSourceRows(
  sourcePool: pg.Pool,
  targetPool: pg.Pool,
  shape: VerifyShape,
  kinds: ColumnKinds,
  transform: RowTransform,
  selection: Selection,
  modulePath: string,
): Promise<RowHashes[]> {
  const names = shape.types.map((c) => c.name);
  const encoded: (string | null)[][] = [];
  const sourceKeys: string[] = [];
  for (const { key, rows } of await transformedSourceRows(sourcePool, shape, transform, selection)) {
    try {
      const lines = rows.map((row) => encodeRow(row, names, kinds));
      encoded.push(...lines);
      sourceKeys.push(...lines.map(() => key));
    } catch {
      // A value with no database form: the copier records the source row as failed.
    }
  }
  const canonical = await canonicalize(targetPool, shape, encoded);
  const traced: RowHashes[] = [];
  const checkTrace = rowsOfSourceKey(shape, modulePath);
  canonical.forEach((row, i) => {
    if (!row) return;
    checkTrace(row, sourceKeys[i]!);
    traced.push(shape.lineage ? { ...row, lineage: sourceKeys[i]! } : row);
  });
  return traced;
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

/**
 * The target rows a module transform makes of each source row of a selection, in key order, with
 * the source key. A source row whose transform throws is left out: the copier records it as a
 * failed row.
 */
async function transformedSourceRows(
  sourcePool: pg.Pool,
  shape: VerifyShape,
  transform: RowTransform,
  selection: Selection,
): Promise<{ key: string; rows: TargetRow[] }[]> {
  const filter = and(shape.sourceFilter, selection.keys ? sourceKeysCondition(shape.source.key, selection.keys) : null);
  const select = rangeRowsSql({ source: shape.source, filter }, selection.range ?? wholeKeySpace);
  const result = await readOnlyQuery<unknown[]>(sourcePool, { text: select.text, values: select.values, rowMode: 'array', types: sourceRowTypes });
  const fieldNames = result.fields.slice(1).map((f) => f.name);
  const produced: { key: string; rows: TargetRow[] }[] = [];
  for (const values of result.rows) {
    try {
      let output = transform(sourceRowOf(fieldNames, values));
      if (isThenable(output)) output = await output;
      if (output === null || output === undefined) continue;
      produced.push({ key: String(values[0]), rows: Array.isArray(output) ? output : [output] });
    } catch {
      continue;
    }
  }
  return produced;
}

/** Whether the target hashes text as the worker does: md5 of its UTF-8 bytes. */
async function hashesUtf8(pool: pg.Pool): Promise<boolean> {
  const result = await pool.query<{ encoding: string }>('SELECT current_setting($1) AS encoding', ['server_encoding']);
  return ['UTF8', 'SQL_ASCII'].includes(result.rows[0]?.encoding ?? '');
}

function encodeRow(row: TargetRow, names: string[], kinds: ColumnKinds): (string | null)[] {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new TypeError('a target row must be an object');
  return names.map((name) => postgresInputText(row[name], name, kinds[name]));
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
