/**
 * Batch writer puts one batch of rows (a stream of COPY text, or one statement within a
 * database) into the target, under the copy lock that orders batches against application
 * deletes: straight in when the key range is still empty there, otherwise through a staging
 * table (or the statement) with the plan's conflict policy and tombstones.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { KeyRange } from '../../lib/key-range';
import { poolingOfPool } from '../connections';
import { inTransaction } from '../transaction';
import {
  copyIntoStagingSql,
  copyIntoTargetSql,
  copyLockSql,
  copyOutSql,
  copyWithinDatabaseSql,
  createStagingSql,
  insertIntoClearRangeSql,
  insertFromStagingSql,
  targetRangeIsClearSql,
  type CopySpec,
} from './copy-statements';
import { COPY_LOCK_CLASS } from '../state/ferry-schema';
import { ledgerEntrySql } from './copy-ledger';
import { oneStatement, readOnly } from '../plan-sql';

const UNIQUE_VIOLATION = '23505';

/**
 * Runs `write` in a transaction on the target that holds the copy lock when it honours
 * tombstones, and adds the rows it wrote to the spec's copy ledger in the same transaction.
 */
export async function inCopyTransaction(pool: pg.Pool, spec: CopySpec, write: (client: pg.PoolClient) => Promise<number>): Promise<number> {
  return inTransaction(pool, async (client) => {
    if (spec.honourTombstones) await client.query(copyLockSql(spec.target, COPY_LOCK_CLASS));
    const written = await write(client);
    if (spec.ledger) await client.query(ledgerEntrySql(spec.ledger, written));
    return written;
  });
}

/**
 * Copies a key range within one database in one target transaction under the copy lock: a plain
 * INSERT ... SELECT while the range is still empty there (no conflict check or tombstone probe
 * per row), the idempotent statement otherwise or when the application wrote a key meanwhile.
 */
export function copyWithinDatabase(pool: pg.Pool, spec: CopySpec, range: KeyRange): Promise<number> {
  return inCopyTransaction(pool, spec, async (client) => {
    if ((await client.query<{ clear: boolean }>(targetRangeIsClearSql(spec, range))).rows[0]?.clear) {
      await client.query('SAVEPOINT direct_insert');
      try {
        return (await client.query(oneStatement(insertIntoClearRangeSql(spec, range)))).rowCount ?? 0;
      } catch (error) {
        if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
        await client.query('ROLLBACK TO SAVEPOINT direct_insert');
      }
    }
    return (await client.query(oneStatement(copyWithinDatabaseSql(spec, range)))).rowCount ?? 0;
  });
}

/**
 * Where a batch's rows come from: it calls `send` with a stream of COPY text, and looks after
 * whatever the stream needs (a source connection). It may be called twice, when a straight COPY
 * has to fall back to staging.
 */
export type RowSource = (send: (rows: Readable) => Promise<void>) => Promise<void>;

/** Writes one batch in one target transaction; returns the rows it inserted (or updated). */
export function writeBatch(targetPool: pg.Pool, spec: CopySpec, range: KeyRange, rows: RowSource): Promise<number> {
  return inCopyTransaction(targetPool, spec, async (target) => {
    // The first pass over a range usually finds it empty: then the rows go straight in, written
    // once. Should the application have written one of the keys since the check, the unique
    // key refuses the COPY and the batch takes the staging path after all.
    if ((await target.query<{ clear: boolean }>(targetRangeIsClearSql(spec, range))).rows[0]?.clear) {
      await target.query('SAVEPOINT direct_copy');
      try {
        let copied = 0;
        await rows(async (stream) => {
          const into = target.query(copyFrom(copyIntoTargetSql(spec)));
          await pipeline(stream, into);
          copied = into.rowCount;
        });
        return copied;
      } catch (error) {
        if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
        await target.query('ROLLBACK TO SAVEPOINT direct_copy');
      }
    }
    await target.query(createStagingSql(spec, poolingOfPool(targetPool) === 'transaction' ? 'DROP' : 'DELETE ROWS'));
    await rows((stream) => pipeline(stream, target.query(copyFrom(copyIntoStagingSql(spec)))));
    return (await target.query(insertFromStagingSql(spec))).rowCount ?? 0;
  });
}

/**
 * Streams the transformed rows out of the source with COPY into the target (straight in, or
 * through a staging table), in one target transaction. Binary COPY where both sides' types are
 * the same built-in ones, else text, which keeps every value exactly as Postgres prints it.
 */
export async function copyAcrossDatabases(sourcePool: pg.Pool, targetPool: pg.Pool, spec: CopySpec, range: KeyRange): Promise<number> {
  const copyOut = copyOutSql(spec, range);
  // COPY goes over the simple protocol: the plan's SQL was checked to hold one expression
  // (assertPlanSqlIsSafe), and the source side reads in a READ ONLY transaction.
  return writeBatch(targetPool, spec, range, (send) => readOnly(sourcePool, (source) => send(source.query(copyTo(copyOut)))));
}
