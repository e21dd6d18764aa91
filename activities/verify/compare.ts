/**
 * Comparing a shard chunk by chunk (verifyShard); carrying the open mismatches of earlier passes
 * into the current one (recheckOpenMismatches) is open-mismatches.ts's.
 */
import { activityInfo, ApplicationFailure, CancelledFailure, Context, heartbeat, log, sleep } from '@temporalio/activity';
import type { Heartbeats } from '../heartbeats';
import { describeRange, type KeyRange } from '../../lib/key-range';
import type { Databases } from '../connections';
import type { Plan } from '../../lib/plan';
import { oneStatement, readOnlyQuery } from '../plan-sql';
import { fullBatchEndSql, nextBatchBoundSql, rangeRowsSql, SOURCE_KEY_TEXT } from '../copy/copy-statements';
import { ident, sql } from '../sql';
import { installFerrySchema, type Mismatch, recordMismatches } from '../state/ferry-schema';
import { isRowError, redactErrorText } from '../../lib/errors';
import { chunkChecksumSql, diffRows, type DigestForm, type Selection } from './verify-statements';
import { columnNames, type BothSides, MIN_PAGE_ROWS, rereadWith, type Verification, zeroCounts } from './both-sides';
import { captureSettle } from './capture-settle';
import { chunkSizesOf, nextChunkSize } from './chunk-size';
import type { VerifyCounts, VerifyShardInput, VerifyShardResult } from './shard-calls';
import { createOpenMismatchRecheck } from './open-mismatches';

/** A chunk compared once, its in-flight re-read under way. */
interface PendingChunk {
  /** The chunk's last source key; null for the shard's last chunk. */
  lastKey: string | null;
  rows: number;
  settled: Promise<{ differences: Mismatch[]; inFlight: number }>;
  ready: boolean;
  /** Rows that differed at the first look, held until the re-read. */
  differing: number;
}

/**
 * Chunks whose re-reads may wait out the in-flight delay at once: under a writer that touches
 * every chunk, a shard compares at most this many chunks a delay, so it is large; the rows
 * they hold until their re-reads (keys and column names) are bounded apart.
 */
const MAX_PENDING_RECHECKS = 256;
const MAX_PENDING_DIFFERING_ROWS = 100_000;

/** What verifyShard heartbeats after every chunk; a retried attempt resumes from it. */
interface VerifyProgress {
  cursor: string | null;
  counts: VerifyCounts;
  examples: Mismatch[];
}

export const MAX_EXAMPLES = 20;

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

export function createShardComparison(databases: Databases, sides: BothSides) {
  const { verificationOf, bothSides, captureFoundValues } = sides;
  const rereadOf = (plan: Plan, v: Verification, pageRows: number) => rereadWith(bothSides, plan, v, pageRows);

  /** verifyShard's work; row errors are turned into a clear failure by the activity. */
  async function verifyShardChunks(input: VerifyShardInput, heartbeats?: Heartbeats): Promise<VerifyShardResult> {
    const { plan } = input;
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    await installFerrySchema(targetPool);
    const v = await verificationOf(plan, input.shard.partitionValue, input.samplePercent, input.migrationId);
    const sizes = chunkSizesOf(input.chunkSize);
    /** Keys of the next chunk whose bound is looked up (see VerifyShardInput.chunkSize). */
    let chunkSize = sizes.max;
    const pageRows = Math.max(MIN_PAGE_ROWS, sizes.max * 2);
    const maxMs = (input.maxSeconds ?? 60) * 1000;
    const inFlightDelayMs = input.inFlightDelayMs ?? 2000;
    const bounds = { source: v.shape.source, filter: v.shape.sourceFilter };
    // A module transform's digest is the worker's, which writes rows as canonicalText does.
    const form: DigestForm = v.moduleRows ? 'canonical' : 'native';

    const resumed = activityInfo().heartbeatDetails as VerifyProgress | undefined;
    const progress: VerifyProgress = resumed ?? {
      cursor: input.cursor,
      counts: { chunks: 0, chunksDiffering: 0, rowsChecked: 0, mismatches: zeroCounts(), inFlight: 0 },
      examples: [],
    };
    heartbeats?.follow(() => progress);
    const started = Date.now();
    /** How long the last chunk's first look took: about how long the next one will. */
    let lastChunkMs = 0;
    const finish = (done: boolean): VerifyShardResult => ({ ...progress.counts, cursor: progress.cursor, done, examples: progress.examples });

    /** The last key of the next chunk; null after the source's last key in the shard. */
    const nextBound = (after: string | null) => {
      const range = { after, upTo: input.shard.range.upTo };
      // A full chunk's end is one index walk; counting what is left is needed only once a shard.
      const found = readOnlyQuery<{ last_key: string }>(sourcePool, fullBatchEndSql(bounds, range, chunkSize)).then(async (full) =>
        full.rows[0] ?? (await readOnlyQuery<{ last_key: string }>(sourcePool, nextBatchBoundSql(bounds, range, chunkSize))).rows[0] ?? null,
      );
      found.catch(() => {});
      return found;
    };

    /** The source keys of a chunk, for a target side that cannot be filtered like the source. */
    const chunkKeys = async (range: KeyRange): Promise<string[] | undefined> => {
      if (!v.rowDependent) return undefined;
      const result = await readOnlyQuery<{ key: string }>(sourcePool, sql`SELECT ${ident(SOURCE_KEY_TEXT)} AS key FROM (${rangeRowsSql(bounds, range)}) AS chunk`);
      return result.rows.map((r) => r.key);
    };

    /**
     * What the target side of a chunk reads: the chunk's range, and the source's keys of it when
     * the target cannot be filtered like the source. Where the target orders keys otherwise than
     * the source (another collation), the range would hold other keys there: only the keys count.
     */
    const targetSelection = (range: KeyRange, keys: string[] | undefined): Selection => (v.shape.keyOrderDiffers ? { keys: keys ?? [] } : { range, keys });

    /**
     * The count and digest of a chunk on both sides: the source's through the transform (in the
     * worker for a module transform, null when the worker cannot tell), and the target's.
     */
    const chunkSums = async (range: KeyRange): Promise<ChunkSums> => {
      const keys = await chunkKeys(range);
      const targetSum = chunkChecksumSql('target', v.shape, targetSelection(range, keys), form);
      const moduleDigest = v.moduleDigest;
      const [source, target] = await Promise.all([
        v.moduleRows
          ? (moduleDigest?.(range).then((d) => d && { rows: String(d.rows), digest: d.digest }) ?? null)
          : readOnlyQuery<Sums>(sourcePool, chunkChecksumSql('source', v.shape, { range }, form)).then((r) => r.rows[0]!),
        targetPool.query<Sums>(oneStatement(targetSum)).then((r) => r.rows[0]!),
      ]);
      return { keys, source, target };
    };

    /**
     * Sums of the chunk after this one, read while this one is compared: a module transform's
     * digest keeps the worker busy, and the databases can read meanwhile. Not started when the
     * call will end after this chunk (if it takes as long as the last one), so as not to read a
     * chunk for nothing.
     */
    const readAhead = (after: string, nextBound: Promise<{ last_key: string } | null>): ReadAhead | null => {
      if (!v.moduleDigest || Date.now() - started + lastChunkMs >= maxMs) return null;
      // A failure here is the next chunk's to report (its bound or sums are awaited again then);
      // unhandled meanwhile, it would end the process.
      const sums = nextBound.then((found) => chunkSums({ after, upTo: found ? found.last_key : input.shard.range.upTo }));
      sums.catch(() => {});
      return { after, sums };
    };

    /** The chunk's rows, and its differences at a first look (before in-flight writes land). */
    const firstLook = async (range: KeyRange, prefetched: ReadAhead | null): Promise<{ rows: number; first: Mismatch[] }> => {
      const useModuleDigest = !!v.moduleDigest || !!prefetched;
      let rows: number;
      let first: Mismatch[];
      if (!v.moduleRows || useModuleDigest) {
        const sums = prefetched && prefetched.after === range.after ? await prefetched.sums : await chunkSums(range);
        if (sums.source) {
          rows = Number(sums.source.rows);
          if (sums.source.rows === sums.target.rows && sums.source.digest === sums.target.digest) return { rows, first: [] };
        } else {
          // A value the worker cannot make canonical is likely to come back in every chunk.
          v.moduleDigest = null;
        }
        const [s, t] = await bothSides(plan, v, { range }, targetSelection(range, sums.keys), pageRows);
        rows = v.moduleRows ? s.filter((r) => !r.unwritable).length : Number(sums.source!.rows);
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
        const [s, t] = await bothSides(plan, v, { range }, targetSelection(range, await chunkKeys(range)), pageRows);
        rows = s.filter((r) => !r.unwritable).length;
        first = diffRows(columnNames(v), s, t);
      }
      return { rows, first };
    };

    const reread = rereadOf(plan, v, pageRows);
    const settle = captureSettle(sourcePool, targetPool, plan, input.migrationId, !!v.shape.lineage);

    /**
     * The differences that remain once in-flight writes have had time to land: a row the
     * application is writing to both sides may be caught between the two reads, and under
     * capture a row may wait for the change apply. The timer's heartbeats go on meanwhile, and a
     * cancellation ends the wait.
     */
    const recheck = async (first: Mismatch[]): Promise<{ differences: Mismatch[]; inFlight: number }> => {
      if (first.length === 0) return { differences: [], inFlight: 0 };
      await sleep(inFlightDelayMs);
      const differences = await settle(await reread(first), reread);
      return { differences, inFlight: first.length - differences.length };
    };

    // Chunks compared once whose differing rows wait out the in-flight delay while later chunks
    // are compared: the cursor moves past a chunk only once its re-read is recorded, in order.
    const pending: PendingChunk[] = [];
    const settleOldest = async (): Promise<boolean> => {
      const chunk = pending.shift()!;
      const { differences, inFlight } = await chunk.settled;
      await recordMismatches(targetPool, input.migrationId, input.pass, differences);
      await captureFoundValues(plan, v, input.migrationId, input.pass, differences);
      const counts = progress.counts;
      counts.chunks += 1;
      counts.rowsChecked += chunk.rows;
      counts.inFlight += inFlight;
      if (differences.length > 0) counts.chunksDiffering += 1;
      for (const d of differences) {
        counts.mismatches[d.category] += 1;
        if (progress.examples.length < MAX_EXAMPLES) progress.examples.push(d);
      }
      if (chunk.lastKey === null) return true;
      progress.cursor = chunk.lastKey;
      heartbeat(progress);
      return false;
    };

    let bound = nextBound(progress.cursor ?? input.shard.range.after);
    let ahead: ReadAhead | null = null;
    let scanned = progress.cursor ?? input.shard.range.after;
    for (;;) {
      const next = await bound;
      // After the source's last key, the rest of the shard is one more chunk: empty in the
      // source, and whatever the target holds there is extra.
      const range: KeyRange = { after: scanned, upTo: next ? next.last_key : input.shard.range.upTo };
      const prefetched = ahead;
      ahead = null;
      if (next) {
        bound = nextBound(next.last_key);
        ahead = readAhead(next.last_key, bound);
      }
      const looked = Date.now();
      const { rows, first } = await firstLook(range, prefetched);
      lastChunkMs = Date.now() - looked;
      const size = nextChunkSize(chunkSize, sizes, first.length > 0);
      const shrunk = size < chunkSize;
      chunkSize = size;
      // The next chunk was bounded at the old size: after a difference it is bounded again, smaller
      // (a growing size waits a chunk). What was read ahead for the old bound is dropped.
      if (shrunk && next) {
        bound = nextBound(next.last_key);
        ahead = readAhead(next.last_key, bound);
      }
      const chunk: PendingChunk = { lastKey: next ? next.last_key : null, rows, settled: recheck(first), ready: first.length === 0, differing: first.length };
      chunk.settled.then(() => (chunk.ready = true)).catch(() => {});
      pending.push(chunk);
      if (next) scanned = next.last_key;
      const cancelled = Context.current().cancellationSignal.aborted;
      const ending = !next || cancelled || Date.now() - started >= maxMs;
      const full = () => pending.length > MAX_PENDING_RECHECKS || pending.reduce((n, c) => n + c.differing, 0) > MAX_PENDING_DIFFERING_ROWS;
      while (pending.length > 0 && (ending || full() || pending[0]!.ready)) {
        if (await settleOldest()) return finish(true);
      }
      if (cancelled) throw new CancelledFailure('verification cancelled');
      if (ending) return finish(false);
    }
  }

  return {
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
          `verification cannot compare a row of shard ${describeRange(input.shard.range)}: ${redactErrorText(error)}; ` +
            'fix the source row (or the transform) and verify again',
          'VerificationRowError',
        );
      }
    },
    ...createOpenMismatchRecheck(databases, sides),
  };
}
