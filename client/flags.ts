/**
 * FlagReader follows one migration's flags in ferry.flags: a short cache, a LISTEN connection
 * that brings a change within a second, and an acknowledgement of every version applied,
 * renewed while idle, so the migration knows when every live process follows it.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import pg from 'pg';
import { flagsColumns, flagsFromRow, initialFlags, type Flags, type FlagsRow } from '../lib/flags';
import { consoleLogger, describeError, type ClientLogger } from './logger';
import type { ClientMetrics } from './metrics';

export type { Flags };

/** The channel ferry.flags notifies on; the payload is the migration's name. */
export const FLAGS_CHANNEL = 'ferry_flags';

export interface FlagReaderOptions {
  /** The database that holds Ferry's schema (the migration's target). */
  pool: pg.Pool;
  /** The migration's plan name. */
  migration: string;
  /**
   * A name for this application in ferry.flag_acks and ferry.read_comparisons; each process adds its
   * pid and a random suffix, so that replicas given the same name keep rows of their own.
   * (Default: the hostname)
   */
  clientId?: string;
  /** How long a read of ferry.flags is reused by get(). (Default: 1000) */
  cacheMs?: number;
  /** Keep a LISTEN connection so changes arrive at once. (Default: true) */
  listen?: boolean;
  /**
   * How often this process renews its row in ferry.flag_acks, so that the migration counts it
   * among the live processes (those seen within 120 s) while it is idle: 1 to 60000. (Default: 30000)
   */
  ackEveryMs?: number;
  logger?: ClientLogger;
  metrics?: ClientMetrics;
}

/** Anything the dual writer and the read comparer can take their flags from. */
export interface FlagSource {
  get(): Promise<Flags>;
  onChange?(fn: (flags: Flags, previous: Flags) => void): () => void;
  /**
   * Marks a write made under flag version `version` as in flight until the returned function is
   * called: no other version is acknowledged before it settles.
   */
  begin?(version: number): () => void;
}

export interface FlagReader extends FlagSource {
  /**
   * The flags, at most `cacheMs` old. Before any row exists, or without Ferry's schema:
   * initialFlags with version 0; once flags were read, a row or schema that goes away keeps them. When the database cannot be reached it returns the last flags
   * read, and throws only if it never read any (guessing could send writes to the wrong store).
   * Throws too while it never read a row and the migration's row is gone though processes
   * followed it (their versions are in ferry.flag_acks): the initial flags would be a guess.
   */
  get(): Promise<Flags>;
  /** The last flags read (initialFlags, version 0, before the first read). Never throws. */
  current(): Flags;
  /** Calls `fn` after every change; returns the unsubscribe function. */
  onChange(fn: (flags: Flags, previous: Flags) => void): () => void;
  begin(version: number): () => void;
  readonly clientId: string;
  /** Stops listening and waits for acknowledgements in flight. Does not end the pool. */
  close(): Promise<void>;
}

const noFlags: Flags = { ...initialFlags, version: 0 };
const RECONNECT_MIN_MS = 100;
/** Well within the 120 s in which the migration counts a process as live. */
const ACK_EVERY_MS = 30_000;
const ACK_EVERY_MAX_MS = 60_000;
const RECONNECT_MAX_MS = 5_000;

/** SQLSTATEs of a database without Ferry's schema: the application runs before any migration. */
function isSchemaMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '42P01' || code === '3F000';
}

/** The flags row of a migration processes followed is gone: no flags can be trusted. */
class RowDeletedError extends Error {}

type Nullable<T> = { [K in keyof T]: T[K] | null };

function sameFlags(a: Flags, b: Flags): boolean {
  return a.version === b.version && a.writeOld === b.writeOld && a.writeNew === b.writeNew &&
    a.readFrom === b.readFrom && a.comparePercent === b.comparePercent;
}

export function defaultClientId(): string {
  return processClientId();
}

/**
 * This process's id in Ferry's tables: `name` (or the hostname), the pid and a random suffix. One
 * name shared by an application's replicas would be one row: a replica still on old flags would
 * be hidden by another's acknowledgement, and each replica's read tally would overwrite the others'.
 */
export function processClientId(name?: unknown): string {
  if (name !== undefined && (typeof name !== 'string' || name.trim() === '')) {
    throw new Error(`ferry: clientId must be a name for this application, not ${JSON.stringify(name) ?? String(name)}`);
  }
  return `${name ?? os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export function createFlagReader(options: FlagReaderOptions): FlagReader {
  const { pool, migration, cacheMs = 1000, listen = true, ackEveryMs = ACK_EVERY_MS, logger = consoleLogger, metrics } = options;
  if (typeof ackEveryMs !== 'number' || !(ackEveryMs >= 1 && ackEveryMs <= ACK_EVERY_MAX_MS)) {
    throw new Error(`ferry: ackEveryMs must be a number of milliseconds from 1 to ${ACK_EVERY_MAX_MS} (within the 120 s a process counts as live), not ${String(ackEveryMs)}`);
  }
  // Without a name no row ever matches: the process would follow the initial flags for ever.
  if (typeof migration !== 'string' || migration.trim() === '') {
    throw new Error(`ferry: the migration must be its plan's name, not ${JSON.stringify(migration) ?? String(migration)}`);
  }
  const clientId = processClientId(options.clientId);
  const listeners = new Set<(flags: Flags, previous: Flags) => void>();
  const pendingAcks = new Set<Promise<void>>();
  /** Writes in flight, by the flag version they were made under. */
  const writing = new Map<number, number>();
  const writesSettled = new Set<() => void>();

  let flags: Flags = noFlags;
  let everRead = false;
  let readAt = -Infinity;
  let inFlight: Promise<Flags> | null = null;
  /** A notification came while a read was in flight: that read may predate the change. */
  let readAgain = false;
  let closed = false;
  let warnedNoRow = false;
  let warnedUnknownName = false;
  /** The latest version recorded as followed (0: the initial flags), and the renewal timer. */
  let acked = 0;
  let ackTimer: NodeJS.Timeout | null = null;
  let warnedAckFailed = false;

  let listener: pg.Client | null = null;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let reconnectAttempts = 0;
  let firstListen: Promise<void> | null = null;

  async function readRow(): Promise<Flags> {
    try {
      // One round trip: the row, and only when there is none, the highest version processes followed.
      const { rows } = await pool.query<Nullable<FlagsRow> & { followed: string | null }>(
        `SELECT ${flagsColumns},
                CASE WHEN version IS NULL THEN (SELECT max(a.version)::text FROM ferry.flag_acks a WHERE a.migration = $1 AND a.version > 0) END AS followed
           FROM (VALUES (1)) AS one LEFT JOIN ferry.flags ON ferry.flags.migration = $1`,
        [migration],
      );
      const row = rows[0]!;
      if (row.version !== null) return flagsFromRow(row as FlagsRow);
      if (flags.version === 0) {
        refuseIfRowDeleted(row.followed);
        await warnIfOtherMigrations();
      }
      return noRow();
    } catch (error) {
      if (isSchemaMissing(error)) return noRow();
      throw error;
    }
  }

  /**
   * A process that never saw the row, where processes followed it (ferry.flag_acks holds a version
   * above 0), would take the initial flags: after a cutover, the table the migration retired. It
   * refuses instead (get() and every write throw), until the row is back or the migration's
   * acknowledgements are deleted too.
   */
  function refuseIfRowDeleted(followed: string | null): void {
    if (!followed) return;
    throw new RowDeletedError(
      `ferry: migration ${JSON.stringify(migration)} has no flags row, though application processes followed its flags up to version ${followed} (ferry.flag_acks): ` +
        'the row was deleted, and the initial flags (the old table alone) may name a table the migration retired; nothing was written. ' +
        "Put the row back as the migration left it (`ferry report` shows its last flags), or, once no process runs Ferry's client for this migration, " +
        `remove the client from the application and delete its acknowledgements: DELETE FROM ferry.flag_acks WHERE migration = '${migration.replaceAll("'", "''")}'`,
    );
  }

  /**
   * A name with no flags row where other migrations have one is most often a typo: the process
   * would follow the initial flags (the old store alone) for ever. Said once, naming the others.
   */
  async function warnIfOtherMigrations(): Promise<void> {
    if (warnedUnknownName) return;
    warnedUnknownName = true;
    const { rows } = await pool.query<{ migration: string }>('SELECT migration FROM ferry.flags ORDER BY updated_at DESC LIMIT 5');
    if (rows.length === 0) return;
    const others = rows.map((r) => r.migration);
    logger.warn(
      `ferry: no flags row for migration ${JSON.stringify(migration)} in this database, though other migrations have one (${others.map((m) => JSON.stringify(m)).join(', ')}): ` +
        'until one by this name starts, this process writes and reads the old store only; check that the name is the plan\'s',
      { migration, others },
    );
  }

  /**
   * No row (or no schema): the initial flags before any was read. Once a migration set flags, a
   * row that goes away does not send writes and reads back to the old store alone, which after
   * a cutover would leave the new store behind: the last flags stand until a row comes back.
   */
  function noRow(): Flags {
    if (flags.version === 0) return noFlags;
    if (!warnedNoRow) logger.warn('ferry: the flags row is gone; going on with the last flags read', { migration, version: flags.version });
    warnedNoRow = true;
    return flags;
  }

  function apply(next: Flags): void {
    const first = !everRead;
    everRead = true;
    if (next !== flags) warnedNoRow = false;
    readAt = Date.now();
    const previous = flags;
    const changed = !sameFlags(previous, next);
    if (changed) follow(next, previous);
    // From the first read on, the initial flags (version 0) too: at a migration's first change a process is known as not yet following it.
    if (first) startRenewingAck(!changed);
  }

  function follow(next: Flags, previous: Flags): void {
    flags = next;
    metrics?.flagsVersion.set({ migration }, next.version);
    for (const fn of listeners) {
      try {
        fn(next, previous);
      } catch (error) {
        logger.warn('ferry: a flags listener threw', { migration, ...describeError(error) });
      }
    }
    // Known at once as still on the earlier version, while writes made under it hold the new one's acknowledgement.
    if (!settledFor(next.version)) renewAck();
    acknowledge(next.version);
  }

  /** Whether no write made under another version than `version` is in flight. */
  function settledFor(version: number): boolean {
    return [...writing.keys()].every((v) => v === version);
  }

  /**
   * Records this process in ferry.flag_acks as following `version`, seen now. The version never
   * goes back: two recordings that commit out of order leave the later version. Never throws.
   */
  function recordAck(version: number): Promise<void> {
    const recorded = pool
      .query(
        `INSERT INTO ferry.flag_acks (migration, client_id, version, seen_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (migration, client_id) DO UPDATE SET version = greatest(ferry.flag_acks.version, EXCLUDED.version), seen_at = EXCLUDED.seen_at`,
        [migration, clientId, version],
      )
      .then(
        () => {
          acked = Math.max(acked, version);
          warnedAckFailed = false;
        },
        (error: unknown) => {
          // Without Ferry's schema no migration waits for this process: nothing to say.
          if (isSchemaMissing(error) || warnedAckFailed) return;
          warnedAckFailed = true;
          logger.warn('ferry: could not acknowledge a flag version', { migration, version, ...describeError(error) });
        },
      )
      .finally(() => pendingAcks.delete(recorded));
    pendingAcks.add(recorded);
    return recorded;
  }

  /**
   * Keeps this process among the live ones while it is idle (it acknowledges otherwise only on a
   * change): the version it follows, or, while writes made under an earlier version are in
   * flight, the last version it recorded, so the hold of acknowledge() is kept.
   */
  function renewAck(): void {
    if (closed) return;
    void recordAck(settledFor(flags.version) ? flags.version : acked);
  }

  function startRenewingAck(now: boolean): void {
    if (now) renewAck();
    ackTimer = setInterval(renewAck, ackEveryMs);
    ackTimer.unref?.();
  }

  /** Resolves once no write made under another version than `version` is in flight. */
  function othersSettled(version: number): Promise<void> {
    const settled = () => [...writing.keys()].every((v) => v === version);
    if (settled()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!settled() && !closed) return;
        writesSettled.delete(check);
        resolve();
      };
      writesSettled.add(check);
    });
  }

  /**
   * Records that this process follows `version`: once the writes made under earlier flags have
   * settled, since the migration goes on (a backfill starts) as soon as every process follows.
   */
  function acknowledge(version: number): void {
    const ack = othersSettled(version)
      .then(async () => {
        // A later version came meanwhile: its own acknowledgement follows.
        // Nor is a version recorded whose hold close() let go while earlier writes are still in flight.
        if (flags.version !== version || !settledFor(version)) return;
        await recordAck(version);
      })
      .finally(() => pendingAcks.delete(ack));
    pendingAcks.add(ack);
  }

  /** Reads the row now; concurrent callers share one query. */
  function refresh(): Promise<Flags> {
    if (inFlight) {
      readAgain = true;
      return inFlight;
    }
    readAgain = false;
    const read: Promise<Flags> = readRow()
      .then((next) => {
        apply(next);
        return flags;
      })
      .finally(() => {
        inFlight = null;
        if (readAgain && !closed) void refresh().catch(() => {});
      });
    inFlight = read;
    return read;
  }

  function startListening(): Promise<void> {
    if (closed) return Promise.resolve();
    const client = new pg.Client({ ...pool.options, application_name: pool.options.application_name ?? 'ferry-client' });
    let dropped = false;
    const drop = () => {
      if (dropped) return;
      dropped = true;
      if (listener === client) listener = null;
      client.end().catch(() => {});
      scheduleReconnect();
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', (message) => {
      if (message.channel === FLAGS_CHANNEL && message.payload === migration) void refresh().catch(() => {});
    });
    return client
      .connect()
      .then(() => client.query(`LISTEN ${FLAGS_CHANNEL}`))
      .then(() => {
        if (closed) {
          dropped = true;
          void client.end().catch(() => {});
          return;
        }
        listener = client;
        if (reconnectAttempts > 0) {
          // Changes made while no connection listened were never heard: read once now.
          reconnectAttempts = 0;
          void refresh().catch(() => {});
        }
      })
      .catch((error: unknown) => {
        if (reconnectAttempts === 0) logger.warn('ferry: cannot listen for flag changes; retrying', { migration, ...describeError(error) });
        drop();
      });
  }

  function scheduleReconnect(): void {
    if (closed || reconnectTimer) return;
    const delay = Math.min(RECONNECT_MIN_MS * 2 ** reconnectAttempts, RECONNECT_MAX_MS);
    reconnectAttempts += 1;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = null;
      void startListening();
    }, delay);
    reconnectTimer.unref?.();
  }

  return {
    clientId,
    async get() {
      // The first read waits for LISTEN, so no change after it can go unheard.
      if (listen && !firstListen) firstListen = startListening();
      if (firstListen) await firstListen;
      if (Date.now() - readAt < cacheMs && everRead) return flags;
      try {
        return await refresh();
      } catch (error) {
        if (!everRead || error instanceof RowDeletedError) throw error;
        logger.warn('ferry: cannot read flags; going on with the last ones read', { migration, version: flags.version, ...describeError(error) });
        readAt = Date.now(); // Not one failing query per call while the database is away.
        return flags;
      }
    },
    current() {
      return flags;
    },
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    begin(version) {
      writing.set(version, (writing.get(version) ?? 0) + 1);
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        const left = writing.get(version)! - 1;
        if (left > 0) writing.set(version, left);
        else writing.delete(version);
        for (const check of [...writesSettled]) check();
      };
    },
    async close() {
      closed = true;
      if (ackTimer) clearInterval(ackTimer);
      ackTimer = null;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      reconnectTimer = null;
      const client = listener;
      listener = null;
      if (client) await client.end().catch(() => {});
      for (const check of [...writesSettled]) check();
      await Promise.allSettled([inFlight, ...pendingAcks]);
    },
  };
}
