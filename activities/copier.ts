/**
 * Copier moves rows from source to target in keyset batches. Every batch is idempotent (rows
 * already in the target are kept), so a batch run twice after a crash changes nothing.
 */
import { activityInfo, CancelledFailure, Context, heartbeat, sleep } from '@temporalio/activity';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { KeyRange } from '../lib/key-range';
import type { Plan } from '../lib/plan';
import { withClient, type Databases } from './connections';
import {
  copyIntoStagingSql,
  copyOutSql,
  copyWithinDatabaseSql,
  createStagingSql,
  insertFromStagingSql,
  nextBatchBoundSql,
  type CopySpec,
} from './copy-statements';
import { copySpecOf } from './inspector';

export interface CopyBatchesInput {
  plan: Plan;
  /** The shard's key range. */
  range: KeyRange;
  /** Last key already copied in this range; null to start at the range's beginning. */
  cursor: string | null;
  batchSize: number;
  /** Rows per second this call may copy; 0 for no limit. */
  rowsPerSecond: number;
  /** Return after about this long so the caller can apply a new throttle. (Default: 5) */
  maxSeconds?: number;
}

export interface CopyProgress {
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
  batches: number;
}

export interface CopyBatchesResult extends CopyProgress {
  /** The range holds no rows after the cursor. */
  done: boolean;
}

/** Rows the batch inserted; the rest were already in the target. */
type RowsWritten = number;

async function copyWithinDatabase(pool: pg.Pool, spec: CopySpec, range: KeyRange): Promise<RowsWritten> {
  const { text, values } = copyWithinDatabaseSql(spec, range);
  const result = await pool.query(text, values);
  return result.rowCount ?? 0;
}

/**
 * Streams the transformed rows out of the source with COPY into a staging table on the target,
 * then inserts them in the same target transaction. Text COPY keeps every value exactly as
 * Postgres prints it (microseconds, jsonb, numeric scale).
 */
async function copyAcrossDatabases(
  sourcePool: pg.Pool,
  targetPool: pg.Pool,
  spec: CopySpec,
  range: KeyRange,
): Promise<RowsWritten> {
  return withClient(targetPool, (target) =>
    withClient(sourcePool, async (source) => {
      await target.query('BEGIN');
      try {
        await target.query(createStagingSql(spec));
        const into = target.query(copyFrom(copyIntoStagingSql(spec)));
        await pipeline(source.query(copyTo(copyOutSql(spec, range))), into);
        const inserted = await target.query(insertFromStagingSql(spec));
        await target.query('COMMIT');
        return inserted.rowCount ?? 0;
      } catch (error) {
        await target.query('ROLLBACK').catch(() => {});
        throw error;
      }
    }),
  );
}

export function createCopier(databases: Databases) {
  return {
    /**
     * Copies batches from the cursor on until the range is done or about `maxSeconds` have
     * passed. Heartbeats the cursor after every batch; a retried attempt resumes from it.
     */
    async copyBatches(input: CopyBatchesInput): Promise<CopyBatchesResult> {
      const spec = copySpecOf(input.plan);
      const sourcePool = databases.pool(input.plan.source.connection);
      const targetPool = databases.pool(input.plan.target.connection);
      const sameDatabase = databases.sameDatabase(input.plan.source.connection, input.plan.target.connection);
      const maxMs = (input.maxSeconds ?? 5) * 1000;

      const resumed = activityInfo().heartbeatDetails as CopyProgress | undefined;
      const progress: CopyProgress = resumed ?? { cursor: input.cursor, rowsRead: 0, rowsWritten: 0, batches: 0 };
      const started = Date.now();
      let rowsThisAttempt = 0;

      for (;;) {
        const range: KeyRange = { after: progress.cursor ?? input.range.after, upTo: input.range.upTo };
        const bound = nextBatchBoundSql(spec.source, range, input.batchSize);
        const next = await sourcePool.query<{ last_key: string; rows: string }>(bound.text, bound.values);
        const lastKey = next.rows[0]?.last_key;
        if (lastKey === undefined) return { ...progress, done: true };

        const batchRange: KeyRange = { after: range.after, upTo: lastKey };
        const written = sameDatabase
          ? await copyWithinDatabase(sourcePool, spec, batchRange)
          : await copyAcrossDatabases(sourcePool, targetPool, spec, batchRange);

        const read = Number(next.rows[0]?.rows);
        progress.cursor = lastKey;
        progress.rowsRead += read;
        progress.rowsWritten += written;
        progress.batches += 1;
        rowsThisAttempt += read;
        heartbeat(progress);
        if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('copy cancelled');

        const elapsed = Date.now() - started;
        if (input.rowsPerSecond > 0) {
          const due = (rowsThisAttempt / input.rowsPerSecond) * 1000;
          // Activity sleep ends early with a failure when the activity is cancelled.
          if (due > elapsed) await sleep(Math.min(due - elapsed, maxMs));
        }
        if (Date.now() - started >= maxMs) return { ...progress, done: false };
      }
    },
  };
}
