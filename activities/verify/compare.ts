/**
 * Comparing a shard chunk by chunk (verifyShard), and carrying the open mismatches of earlier
 * passes into the current one (recheckOpenMismatches).
 */
import { activityInfo, ApplicationFailure, CancelledFailure, Context, heartbeat, log, sleep } from '@temporalio/activity';
import type { Heartbeats } from '../heartbeats';
import type pg from 'pg';
import { describeRange, type KeyRange, type ShardSpec } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { oneStatement, readOnlyQuery } from '../plan-sql';
import { nextBatchBoundSql, rangeRowsSql } from '../copy/copy-statements';
import { type Mismatch, recordMismatches } from '../state/ferry-schema';
import { isRowError } from '../pacing';
import { redactMessage } from '../../lib/errors';
import { chunkChecksumSql, diffRows } from './verify-statements';
import { columnNames, type BothSides, ensureMismatchesTable, MIN_PAGE_ROWS, type MismatchCounts, type Verification, zeroCounts } from './both-sides';
import type { RepairInput } from './repair';

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

export const MAX_EXAMPLES = 20;
/** Open mismatches of earlier passes checked again per query. */
const RECHECK_BATCH = 500;

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

export function createShardComparison(databases: Databases, { verificationOf, bothSides, captureFoundValues }: BothSides) {
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
          `verification cannot compare a row of shard ${describeRange(input.shard.range)}: ${redactMessage((error as Error).message)}; ` +
            'fix the source row (or the transform) and verify again',
          'VerificationRowError',
        );
      }
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
  };
}
