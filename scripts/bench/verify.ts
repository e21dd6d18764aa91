/**
 * The benchmark's verification figure: Ferry's verifyShard over the whole table (called in this
 * process, as a worker would run it, without Temporal, with the plan's chunk size) against the
 * raw limit, per-chunk checksums (count and a sum of md5 row hashes) computed in both databases
 * at once by plain connections, in chunks of LIMIT_CHUNK keys over the same two ranges at once.
 * The bench interleaves the two, round after round.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import path from 'node:path';
import pg from 'pg';
import { createDatabases } from '../../activities/connections';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import type { KeyRange } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import { SOURCE_TABLE, TARGET_TABLE, targetColumnList, transformSelect } from './dataset';

/**
 * Source keys per checksum chunk of the limit. Ferry verifies with the plan's own
 * `verify.chunkSize` (its default, as a user gets it); the limit keeps chunks large enough that
 * its per-query cost is a small part of its time.
 */
export const LIMIT_CHUNK = 10_000;

export interface FerryVerifyRun {
  ms: number;
  rowsPerSec: number;
  /** Ferry's own calls, as the workflow would make them (one per maxSeconds). */
  calls: number;
  /** Rows that differed at a first look and matched when read again: writes in flight. */
  inFlight: number;
  /** Mismatches Ferry reported over the pass, by category. */
  mismatches: { missing: number; extra: number; value: number };
  problems: string[];
}

/** Key ranges scanned at once, by the limit and by Ferry (the bench's two verification shards). */
export const VERIFY_STREAMS = 2;

/**
 * The raw limit: both checksums of each chunk at once, chunk after chunk, on the dense integer
 * key, in VERIFY_STREAMS ranges at once (as Ferry verifies), each with its own two connections.
 */
export async function checksumLimit(sourceUrl: string, targetUrl: string, rows: number): Promise<{ ms: number; rowsPerSec: number; problems: string[] }> {
  const digest = `count(*)::text AS rows, sum(('x' || substr(md5(r::text), 1, 16))::bit(64)::bigint)::text AS digest`;
  const sourceSql = `SELECT ${digest} FROM (SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s WHERE s.id > $1 AND s.id <= $2) AS r`;
  const targetSql = `SELECT ${digest} FROM (SELECT ${targetColumnList()} FROM ${TARGET_TABLE} AS t WHERE t.id > $1 AND t.id <= $2) AS r`;
  const problems: string[] = [];
  const clients = Array.from({ length: VERIFY_STREAMS }, () => [new pg.Client({ connectionString: sourceUrl }), new pg.Client({ connectionString: targetUrl })] as const);
  await Promise.all(clients.flat().map((c) => c.connect()));
  const scan = async ([source, target]: readonly [pg.Client, pg.Client], from: number, to: number) => {
    for (let after = from; after < to; after += LIMIT_CHUNK) {
      const range = [after, Math.min(after + LIMIT_CHUNK, to)];
      const [s, t] = await Promise.all([source.query(sourceSql, range), target.query(targetSql, range)]);
      if (s.rows[0].rows !== t.rows[0].rows || s.rows[0].digest !== t.rows[0].digest) problems.push(`the limit's checksums differ in (${range.join(', ')}]`);
    }
  };
  try {
    const per = Math.ceil(rows / VERIFY_STREAMS);
    const started = performance.now();
    await Promise.all(clients.map((pair, i) => scan(pair, i * per, Math.min(rows, (i + 1) * per))));
    const ms = performance.now() - started;
    return { ms, rowsPerSec: rows / (ms / 1000), problems };
  } finally {
    await Promise.all(clients.flat().map((c) => c.end()));
  }
}

/** A freshly copied target pays for hint bits on its first read: settle it, as the source is. */
export async function settleTarget(targetUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: targetUrl });
  await admin.connect();
  await admin.query(`VACUUM (FREEZE, ANALYZE) ${TARGET_TABLE}`).finally(() => admin.end());
}

/**
 * Ferry's verifyShard over the whole table, two shards at once, on a target that holds exactly
 * the transform of the source, in chunks of the plan's `verify.chunkSize` as the verification
 * shard workflow passes it. `env` maps the plan's connection names to URLs.
 */
export async function ferryVerify(plan: Plan, env: Record<string, string>, rows: number): Promise<FerryVerifyRun> {
  const problems: string[] = [];
  const databases = createDatabases({ env });
  try {
    // The bench's JavaScript transform module lives in scripts/, as the worker process is told.
    const verifier = createVerifier(databases, path.resolve(__dirname, '..'));
    let calls = 0;
    let checked = 0;
    let inFlight = 0;
    const mismatches = { missing: 0, extra: 0, value: 0 };
    /** One shard's verification, call after call, as a verification shard workflow runs it. */
    const verifyRange = async (range: KeyRange) => {
      let cursor: string | null = null;
      for (let done = false; !done; ) {
        const last: VerifyShardResult = await new MockActivityEnvironment().run(verifier.verifyShard, {
          migrationId: `bench-verify-${process.pid}`,
          plan,
          shard: { range, partitionValue: null },
          cursor,
          chunkSize: plan.verify.chunkSize,
          pass: 1,
        });
        calls += 1;
        done = last.done;
        cursor = last.cursor;
        checked += last.rowsChecked;
        inFlight += last.inFlight;
        const { missing, extra, value } = last.mismatches;
        mismatches.missing += missing;
        mismatches.extra += extra;
        mismatches.value += value;
        if (missing + extra + value > 0) problems.push(`verifyShard reported ${missing} missing, ${extra} extra, ${value} value mismatches on equal data`);
      }
    };
    // Two shards at once, as the migration verifies with the bench's concurrency of 2.
    const middle = String(Math.ceil(rows / VERIFY_STREAMS));
    const started = performance.now();
    await Promise.all([verifyRange({ after: null, upTo: middle }), verifyRange({ after: middle, upTo: null })]);
    const ms = performance.now() - started;
    if (checked !== rows) problems.push(`verifyShard checked ${checked} rows, the source has ${rows}`);
    return { ms, rowsPerSec: rows / (ms / 1000), calls, inFlight, mismatches, problems };
  } finally {
    await databases.close();
  }
}
