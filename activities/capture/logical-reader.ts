/**
 * Logical capture's reader: it streams the migration's replication slot (pgoutput, through
 * pg-logical-replication) and logs each changed key, with its transaction's xid, in the change
 * log the trigger mode writes, so the snapshot watermarks and the applier work unchanged. It
 * confirms a position to the slot only once the keys before it are committed in the log: a
 * killed reader's successor reads them again (a key logged twice is applied once more, no harm),
 * and none is lost.
 *
 * Why the streaming protocol rather than pg_logical_slot_peek_binary_changes: each SQL call
 * decodes again from the slot's restart position, which moves only at the server's
 * running-transactions records (every 15 s), so polling every fraction of a second would decode
 * the same WAL many times over. One stream per call of the activity decodes it once.
 */
import { ApplicationFailure, CancelledFailure, Context, sleep } from '@temporalio/activity';
import type pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { logicalCaptureName } from '../../lib/ids';
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { withHeartbeats } from '../heartbeats';
import { sql } from '../sql';
import { inTransaction } from '../transaction';
import {
  flushWalSql,
  logKeysSql,
  logWriteLockSql,
  nudgeWalFlushSql,
  readThroughSql,
  slotStateSql,
  snapshotAndPositionSql,
  terminateSlotReaderSql,
  walBytesHeldSql,
  walPositionSql,
} from './logical-statements';

export interface ReadChangesInput {
  migrationId: string;
  plan: Plan;
  /** Return after about this long, so the workflow's history grows by one event a minute, not one a change. (Default: 60) */
  maxSeconds?: number;
}

export interface ReadChangesResult {
  transactions: number;
  keysLogged: number;
  /** The position the slot confirms now: every change before it is in the change log. */
  confirmedLsn: string;
}

/**
 * The reader logs what it decoded as soon as a commit or a keepalive arrives, but at most once per
 * LOG_GAP_MS (a busy table's commits are logged in batches), and at least every FLUSH_EVERY_MS;
 * when idle it asks the server where it stands every PING_EVERY_MS. The watermarks wait for it.
 */
const FLUSH_EVERY_MS = 100;
const LOG_GAP_MS = 20;
const PING_EVERY_MS = 100;
/** Keys per INSERT into the change log. */
const LOG_BATCH = 5_000;

/** Positions as numbers, to compare and to step back by one (pg_lsn text is HI/LO in hex). */
export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

function bigIntToLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * The replication connection's settings: the source pool's, in replication mode, with the
 * settings that make a key's text what the trigger logs (the server writes the values' text).
 */
function replicationConfig(pool: pg.Pool): pg.ClientConfig {
  const { host, port, user, password, database, ssl } = pool.options;
  return { host, port, user, password, database, ssl, application_name: 'ferry capture', options: "-c datestyle=ISO,YMD -c intervalstyle=postgres -c extra_float_digits=3" };
}

/** The parser, keeping every value as the text the server sent: keys are logged as text, as the trigger logs them. */
function textPlugin(publication: string): PgoutputPlugin {
  const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [publication] });
  const parse = plugin.parse.bind(plugin);
  plugin.parse = (buffer: Buffer) => {
    const message = parse(buffer);
    if (message.tag === 'relation') for (const column of message.columns) column.parser = (raw: unknown) => raw;
    return message;
  };
  return plugin;
}

/**
 * Ends the session reading the slot for an earlier attempt (its worker died, or it was timed
 * out), so this one can start; returns the position the slot confirms.
 */
async function takeOverSlot(pool: pg.Pool, name: string): Promise<string> {
  for (let tries = 0; ; tries += 1) {
    const slot = (await pool.query<{ active: boolean; confirmed: string }>(slotStateSql(name))).rows[0];
    if (!slot) {
      throw ApplicationFailure.nonRetryable(`the replication slot ${name} is gone: changes since it went cannot be read; abort the migration and start it again`, 'LogicalCaptureSlotMissing');
    }
    if (!slot.active) return slot.confirmed;
    if (tries >= 50) throw ApplicationFailure.retryable(`the replication slot ${name} is still read by another session; tried again`, 'SlotBusy');
    await pool.query(terminateSlotReaderSql(name));
    await sleep(200);
  }
}

export function createLogicalReader(databases: Databases) {
  async function readChanges({ migrationId, plan, maxSeconds = 60 }: ReadChangesInput): Promise<ReadChangesResult> {
    const pool = databases.pool(plan.source.connection);
    const name = logicalCaptureName(migrationId);
    const key = plan.source.key;
    const startedAt = await takeOverSlot(pool, name);

    const service = new LogicalReplicationService(replicationConfig(pool), { acknowledge: { auto: false, timeoutSeconds: 0 } });
    // Never confirm less than the slot has: the server takes a lower position as it is, and the waiters would wait again.
    const result: ReadChangesResult = { transactions: 0, keysLogged: 0, confirmedLsn: startedAt };
    let failure: unknown = null;
    let open: { xid: number; keys: Set<string> } | null = null;
    /** Committed transactions decoded and not yet logged, in commit order. */
    let decoded: { xid: number; keys: string[]; endLsn: string }[] = [];
    /** A keepalive's position with no transaction open: every commit before it was decoded before it came. */
    let keepalive: { lsn: string; afterCommits: number } | null = null;
    let commitsSeen = 0;
    let commitsLogged = 0;
    let wake: (() => void) | null = null;
    const wakeUp = () => {
      wake?.();
      wake = null;
    };
    const nap = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });

    const keyOf = (tuple: Record<string, unknown> | null, what: string): string => {
      const value = tuple?.[key];
      if (typeof value !== 'string') {
        throw ApplicationFailure.nonRetryable(`a change to ${plan.source.table} came without the ${what}'s ${key}: the replica identity must cover the key`, 'LogicalCaptureNotPossible');
      }
      return value;
    };
    const onMessage = (message: Pgoutput.Message) => {
      switch (message.tag) {
        case 'begin':
          open = { xid: message.xid, keys: new Set() };
          return;
        case 'insert':
          open?.keys.add(keyOf(message.new, 'new row'));
          return;
        case 'update': {
          // An old key comes only when the key changed (or with REPLICA IDENTITY FULL): a key change is the old key's delete and the new key's insert.
          const old = message.key ?? message.old;
          if (old) open?.keys.add(keyOf(old, 'old row'));
          // A key stored out of line that did not change comes without its value (an "unchanged
          // TOAST" column); the server then sends the old key, which is the same: logged above.
          if (old && message.new?.[key] === undefined) return;
          open?.keys.add(keyOf(message.new, 'new row'));
          return;
        }
        case 'delete':
          open?.keys.add(keyOf(message.key ?? message.old, 'old row'));
          return;
        case 'commit':
          decoded.push({ xid: open?.xid ?? 0, keys: [...(open?.keys ?? [])], endLsn: message.commitEndLsn! });
          open = null;
          commitsSeen += 1;
          wakeUp();
          return;
        default:
          return;
      }
    };
    service.on('data', (_lsn: string, message: Pgoutput.Message) => {
      try {
        onMessage(message);
      } catch (error) {
        failure ??= error;
      }
    });
    service.on('heartbeat', (lsn: string) => {
      if (open === null) keepalive = { lsn, afterCommits: commitsSeen };
      wakeUp();
    });
    service.on('error', (error: Error) => {
      failure ??= error;
    });

    /** Logs what was decoded, then confirms the position after it (the library confirms the position it is given plus one). */
    const logDecoded = async () => {
      const batch = decoded;
      decoded = [];
      const keys: string[] = [];
      const xids: number[] = [];
      for (const t of batch) {
        for (const k of t.keys) {
          keys.push(k);
          xids.push(t.xid);
        }
      }
      if (keys.length > 0) {
        const logged = await inTransaction(pool, async (client) => {
          await client.query(logWriteLockSql(migrationId));
          let rows = 0;
          for (let i = 0; i < keys.length; i += LOG_BATCH) rows += (await client.query(logKeysSql(migrationId, name, keys.slice(i, i + LOG_BATCH), xids.slice(i, i + LOG_BATCH)))).rowCount ?? 0;
          return rows;
        });
        // The slot went (an abort's removal, or by hand) while these keys were on their way: the log is no longer this reader's.
        if (logged < keys.length) throw ApplicationFailure.nonRetryable(`the replication slot ${name} is gone: the changes decoded last were not logged`, 'LogicalCaptureSlotMissing');
      }
      commitsLogged += batch.length;
      result.transactions += batch.length;
      result.keysLogged += keys.length;
      let confirm = batch.length ? lsnToBigInt(batch[batch.length - 1]!.endLsn) : null;
      const k = keepalive as { lsn: string; afterCommits: number } | null;
      if (k && k.afterCommits <= commitsLogged && (confirm === null || lsnToBigInt(k.lsn) > confirm)) confirm = lsnToBigInt(k.lsn);
      if (confirm !== null && confirm > lsnToBigInt(result.confirmedLsn)) {
        await service.acknowledge(bigIntToLsn(confirm - 1n));
        result.confirmedLsn = bigIntToLsn(confirm);
      }
    };

    const streaming = service.subscribe(textPlugin(name), name).catch((error: unknown) => {
      failure ??= error;
    });
    const cancelled = Context.current().cancellationSignal;
    const deadline = Date.now() + maxSeconds * 1000;
    let lastPing = 0;
    try {
      while (Date.now() < deadline && failure === null && !cancelled.aborted) {
        await nap(FLUSH_EVERY_MS);
        await logDecoded();
        await new Promise((resolve) => setTimeout(resolve, LOG_GAP_MS));
        if (open === null && decoded.length === 0 && Date.now() - lastPing > PING_EVERY_MS && !service.isStop()) {
          // Asks the server for a keepalive: its position lets the slot move on while the table is quiet.
          lastPing = Date.now();
          await service.acknowledge(bigIntToLsn(lsnToBigInt(result.confirmedLsn) - 1n), true);
        }
      }
      if (failure === null) await logDecoded();
    } finally {
      await service.destroy();
      await streaming;
    }
    if (failure !== null) throw failure;
    if (cancelled.aborted) throw new CancelledFailure('the change reader was cancelled');
    return result;
  }

  return {
    /** Reads the slot into the change log for about `maxSeconds`, heartbeating. */
    readLogicalChanges: (input: ReadChangesInput): Promise<ReadChangesResult> => withHeartbeats(() => readChanges(input)),
  };
}

/**
 * Flushes the WAL up to here: a transactional logical message (the reader does not ask for
 * messages, so it sees none) committed with synchronous_commit on. Where the function is not
 * granted, an xid committed asynchronously, which the WAL writer flushes within wal_writer_delay.
 */
async function flushWal(pool: pg.Pool): Promise<void> {
  try {
    await inTransaction(pool, async (client) => {
      await client.query(sql`SELECT set_config('synchronous_commit', 'on', true)`);
      await client.query(flushWalSql);
    });
  } catch (error) {
    if ((error as { code?: string }).code !== '42501') throw error;
    await pool.query(nudgeWalFlushSql);
  }
}

/**
 * Waits until the reader has logged every change committed before `lsn`; false when `maxMs`
 * passed first. The reader decodes only flushed WAL: records not flushed yet (asynchronous
 * commits, a quiet server's last records) would wait for a flush that nothing asks for, so the
 * wait flushes them.
 */
export async function waitUntilRead(pool: pg.Pool, migrationId: string, lsn: string, maxMs: number): Promise<{ read: boolean; behind: number | null }> {
  const name = logicalCaptureName(migrationId);
  const started = Date.now();
  let nudged = false;
  for (;;) {
    const row = (await pool.query<{ read: boolean | null; flushed: boolean; behind: number | null }>(readThroughSql(name, lsn))).rows[0]!;
    if (row.read === null) throw ApplicationFailure.nonRetryable(`the replication slot ${name} is gone: changes cannot be read; abort the migration`, 'LogicalCaptureSlotMissing');
    if (row.read) return { read: true, behind: 0 };
    if (Date.now() - started >= maxMs) return { read: false, behind: row.behind };
    if (!row.flushed && !nudged) {
      await flushWal(pool);
      nudged = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * An applier round's snapshot under logical capture: taken with a WAL position, and returned
 * once the reader logged everything before it, so every change visible in it is in the log.
 * Null when the reader did not get there within `maxMs`.
 */
export async function snapshotReadThrough(pool: pg.Pool, migrationId: string, maxMs: number): Promise<string | null> {
  const { snapshot, lsn } = (await pool.query<{ snapshot: string; lsn: string }>(snapshotAndPositionSql)).rows[0]!;
  return (await waitUntilRead(pool, migrationId, lsn, maxMs)).read ? snapshot : null;
}

/** How long a chunk waits for the reader to pass its high watermark before its activity gives up and is tried again. */
const CHUNK_WAIT_MS = 120_000;

/**
 * A chunk's high watermark under logical capture: the WAL position after its read and write.
 * Returns once the reader logged every change before it, so the chunk's look at the log for the
 * changes its read may have missed sees all of them.
 */
export async function waitForHighWatermark(pool: pg.Pool, migrationId: string): Promise<void> {
  const { lsn } = (await pool.query<{ lsn: string }>(walPositionSql)).rows[0]!;
  const waited = await waitUntilRead(pool, migrationId, lsn, CHUNK_WAIT_MS);
  if (!waited.read) {
    throw ApplicationFailure.retryable(
      `the change reader is ${waited.behind ?? '?'} bytes of WAL behind this chunk's high watermark after ${CHUNK_WAIT_MS / 1000} s; the chunk is copied again`,
      'CaptureReaderBehind',
    );
  }
}

/** Bytes of WAL the migration's slot holds on the source; null when it has none. */
export async function walBytesHeld(pool: pg.Pool, migrationId: string): Promise<number | null> {
  const row = (await pool.query<{ held: number | null }>(walBytesHeldSql(logicalCaptureName(migrationId)))).rows[0];
  return row?.held == null ? null : Math.max(0, Number(row.held));
}
