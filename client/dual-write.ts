/**
 * DualWriter writes the old store and, while the flags say so, the new one. The store reads come
 * from (flags.readFrom) is written first and its result is the caller's. While that is old, the
 * new store's trouble is kept away from the application: a failing write there is counted and,
 * past a limit, switched off in this process (the kill switch). Once it is new, both writes count.
 */
import type pg from 'pg';
import type { Flags } from '../lib/flags';
import { type FlagSource } from './flags';
import { KillSwitch, type KillSwitchOptions, type KillSwitchState } from './kill-switch';
import { consoleLogger, describeError, type ClientLogger } from './logger';

type Side = 'old' | 'new';
import type { ClientMetrics } from './metrics';

/** What a write reports: pg's QueryResult is one. */
export interface WriteResult {
  rowCount: number | null;
}

export interface WriteOperations<R extends WriteResult> {
  old: () => Promise<R>;
  new: () => Promise<R>;
}

export interface DeleteOperations<R extends WriteResult> {
  /** The target table, `schema.table`, as the migration names it: tableKey({ schema, table }). */
  table: string;
  /** The deleted row's key, as text. */
  key: string;
  old: () => Promise<R>;
  /** Runs on a client inside a transaction in which ferry.record_delete(table, key) has been called. */
  new: (client: pg.PoolClient) => Promise<R>;
}

export interface DualWriterOptions {
  flags: FlagSource;
  /** The database of the new store, where Ferry's schema lives. Needed by delete(). */
  pool?: pg.Pool;
  metrics?: ClientMetrics;
  killSwitch?: KillSwitchOptions;
  logger?: ClientLogger;
  /** Labels the kill switch gauge. (Default: 'default') */
  migration?: string;
}

export interface DualWriter {
  /**
   * Writes the store reads come from first, then the other one while the flags write both.
   * Returns the first store's result; its error reaches the caller (and the other store is not
   * written). The new store's error after an old read store's write never does; the old
   * store's after a new read store's write does.
   */
  write<R extends WriteResult>(name: string, operations: WriteOperations<R>): Promise<R>;
  /**
   * A hard delete: old as write() does; the new side in one transaction with
   * ferry.record_delete, so the backfill can never bring the row back.
   */
  delete<R extends WriteResult>(name: string, operations: DeleteOperations<R>): Promise<R>;
  killSwitch(): KillSwitchState;
  /** Puts new writes back on at once. */
  resetKillSwitch(): void;
  close(): void;
}

export function createDualWriter(options: DualWriterOptions): DualWriter {
  const { flags: source, pool, metrics, logger = consoleLogger, migration = 'default' } = options;
  const killSwitch = new KillSwitch(options.killSwitch, (tripped) => {
    // Counted up and down, not set: other clients of the migration in this process share the series.
    if (tripped) metrics?.killSwitchTripped.inc({ migration, path: 'write' });
    else metrics?.killSwitchTripped.dec({ migration, path: 'write' });
    logger.warn(tripped ? 'ferry: kill switch tripped; new-store writes stop in this process' : 'ferry: kill switch reset; new-store writes resume', {
      migration,
      path: 'write',
    });
  });
  metrics?.killSwitchTripped.inc({ migration, path: 'write' }, 0);
  const unsubscribe = source.onChange?.(() => killSwitch.reset());

  /**
   * While reads come from old, old is written first and counts: its error reaches the caller
   * (new is then not written); new's trouble is counted and logged and, past the kill switch's
   * limit, new writes stop in this process. Once reads come from new, new is written first (a
   * write it refuses reaches the caller, and old is not written) and then old, whose error
   * reaches the caller too and which the kill switch never skips: an abort sends the
   * application back to old alone, so old must hold every write the caller was told succeeded.
   */
  async function dualWrite<R extends WriteResult>(name: string, flags: Flags, old: () => Promise<R>, write: () => Promise<R>): Promise<R> {
    // Flags that write neither store are a mistake upstream; the old store is the safe reading.
    const writeOld = flags.writeOld || !flags.writeNew;
    if (!flags.writeNew || !writeOld) {
      // One store alone: its errors are the caller's, and the kill switch cannot apply.
      const side: Side = flags.writeNew ? 'new' : 'old';
      return writeSide(name, side, side === 'new' ? write : old);
    }
    if (flags.readFrom === 'new') {
      const newResult = await writeSide(name, 'new', write);
      const oldResult = await writeSide(name, 'old', old);
      compareRowCounts(name, oldResult, newResult);
      return newResult;
    }
    const oldResult = await writeSide(name, 'old', old);
    if (!killSwitch.allows(flags.version)) {
      metrics?.writesSkipped.inc({ name });
      return oldResult;
    }
    let newResult: R;
    try {
      newResult = await write();
    } catch (error) {
      metrics?.writeErrors.inc({ name, side: 'new' });
      logger.warn('ferry: new-store write failed; the old write stands', { name, ...describeError(error) });
      killSwitch.recordError(flags.version);
      return oldResult;
    }
    compareRowCounts(name, oldResult, newResult);
    return oldResult;
  }

  function compareRowCounts(name: string, oldResult: WriteResult, newResult: WriteResult): void {
    const oldRows = oldResult.rowCount ?? 0;
    const newRows = newResult.rowCount ?? 0;
    if (oldRows !== newRows) {
      metrics?.writeMismatches.inc({ name });
      logger.warn('ferry: dual write touched different numbers of rows', { name, oldRows, newRows });
    }
  }

  async function writeSide<R extends WriteResult>(name: string, side: Side, run: () => Promise<R>): Promise<R> {
    try {
      return await run();
    } catch (error) {
      metrics?.writeErrors.inc({ name, side });
      throw error;
    }
  }

  /** Table names a running migration confirmed for deletes: checked once each. */
  const checkedTables = new Set<string>();

  /**
   * A tombstone under a name that is not the migration's target protects nothing: the backfill
   * can bring the row back. Refused before either store is touched, when the new store's database
   * says the name is no table there, or that the running migration by this name copies into
   * another; when the database cannot answer, the delete goes on as before.
   */
  async function deleteTableProblem(table: string): Promise<string | null> {
    if (checkedTables.has(table)) return null;
    let found: { exists: boolean; like: string[]; running: string | null };
    try {
      const { rows } = await pool!.query<{ exists: boolean; like: string[] }>(
        `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname || '.' || c.relname = $1 AND c.relkind IN ('r', 'p')) AS exists,
                ARRAY(SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind IN ('r', 'p') AND (lower(c.relname) = lower($1) OR lower(n.nspname || '.' || c.relname) = lower($1))
                       ORDER BY 1 LIMIT 3) AS like`,
        [table],
      );
      const running = await pool!
        .query<{ target_table: string }>(`SELECT target_table FROM ferry.migrations WHERE plan_name = $1 AND state = 'running' LIMIT 1`, [migration])
        .then((r) => r.rows[0]?.target_table ?? null, () => null);
      found = { ...rows[0]!, running };
    } catch {
      return null;
    }
    if (!found.exists) {
      const like = found.like.length ? ` (did you mean ${found.like.map((t) => JSON.stringify(t)).join(' or ')}?)` : '';
      return `ferry: dualWriter.delete names the table ${JSON.stringify(table)}, which is no table in the new store's database${like}: name it as the migration does, schema.table; nothing was deleted`;
    }
    if (found.running !== null && found.running !== table) {
      return (
        `ferry: dualWriter.delete names the table ${JSON.stringify(table)}, but the migration ${JSON.stringify(migration)} copies into ${JSON.stringify(found.running)}: ` +
        'a tombstone under another name would not stop its backfill bringing the row back; nothing was deleted'
      );
    }
    // Checked again until a running migration confirms it: one may start with another target.
    if (found.running !== null) checkedTables.add(table);
    return null;
  }

  async function inDeleteTransaction<R extends WriteResult>(table: string, key: string, run: (client: pg.PoolClient) => Promise<R>): Promise<R> {
    const client = await pool!.connect();
    const ignore = () => {};
    client.on('error', ignore);
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT ferry.record_delete($1, $2)', [table, key]);
      const result = await run(client);
      // COMMIT of a transaction a failed statement aborted rolls back without an error.
      const commit = await client.query('COMMIT');
      if (commit.command !== 'COMMIT') throw new Error(`ferry: the new-store delete from ${table} was rolled back: a statement in its transaction failed`);
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.off('error', ignore);
      client.release(broken);
    }
  }

  return {
    async write(name, operations) {
      const flags = await source.get();
      const done = source.begin?.(flags.version);
      try {
        return await dualWrite(name, flags, operations.old, operations.new);
      } finally {
        done?.();
      }
    },
    async delete(name, operations) {
      const { table, key } = operations;
      // Checked before either store is touched: this is a programming error, not a new-store failure.
      if (!pool) throw new Error('ferry: dualWriter.delete needs the pool of the new store; pass `pool` to createDualWriter');
      const flags = await source.get();
      const problem = flags.writeNew ? await deleteTableProblem(table) : null;
      if (problem) throw new Error(problem);
      const done = source.begin?.(flags.version);
      try {
        return await dualWrite(name, flags, operations.old, () => inDeleteTransaction(table, key, operations.new));
      } finally {
        done?.();
      }
    },
    killSwitch: () => killSwitch.state(),
    resetKillSwitch: () => killSwitch.reset(),
    close() {
      unsubscribe?.();
      if (killSwitch.state().tripped) metrics?.killSwitchTripped.dec({ migration, path: 'write' });
      killSwitch.dispose();
    },
  };
}
