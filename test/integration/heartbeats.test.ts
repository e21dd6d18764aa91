/**
 * Heartbeats from a timer, against real PostgreSQL: a copy batch that is one long statement,
 * and a verification waiting out its in-flight delay, both heartbeat every few seconds (well
 * within the workflows' 10 s heartbeat timeout), and a copy waiting under a rows/s limit ends
 * at once when it is cancelled.
 */
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createCopier, type CopyBatchesInput } from '../../activities/copy/copier';
import type { CopyProgress } from '../../lib/progress';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { createVerifier } from '../../activities/verify/verifier';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';

const ROWS = 24;
/** pg_sleep per row of the slow transform: one batch of every row is one statement of about 6 s. */
const SLOW_ROW_SECONDS = 0.25;

/** Runs an activity in a mock context, noting when each heartbeat came and what it carried. */
async function runWithHeartbeats<I, O>(activity: (input: I) => Promise<O>, input: I, cancelAfterMs?: number) {
  const env = new MockActivityEnvironment();
  const beats: { at: number; details: unknown }[] = [];
  // A snapshot: the copier heartbeats its progress object, which it goes on changing.
  env.on('heartbeat', (details: unknown) => beats.push({ at: Date.now(), details: details === undefined ? undefined : structuredClone(details) }));
  const started = Date.now();
  const timer = cancelAfterMs === undefined ? undefined : setTimeout(() => env.cancel(), cancelAfterMs);
  try {
    const result = await env.run(activity, input).then(
      (value) => ({ value, error: null }),
      (error: unknown) => ({ value: null, error }),
    );
    return { ...result, beats, started, ended: Date.now() };
  } finally {
    clearTimeout(timer);
  }
}

/** The longest silence between the call's start, its heartbeats and its end, in ms. */
function longestSilence(run: { beats: { at: number }[]; started: number; ended: number }): number {
  const times = [run.started, ...run.beats.map((b) => b.at), run.ended];
  return Math.max(...times.slice(1).map((t, i) => t - times[i]!));
}

describe('heartbeats from a timer', () => {
  let url: string;
  let databases: Databases;
  const plan = (name: string, nameExpression: string, extra: Partial<PlanInput> = {}) =>
    validatePlan({
      name,
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_v2' },
      transform: { sql: { id: 'id', name: nameExpression } },
      ...extra,
    });
  const copyInput = (name: string, nameExpression: string, extra: Partial<CopyBatchesInput> = {}): CopyBatchesInput => ({
    migrationId: `heartbeats-${name}`,
    plan: plan(name, nameExpression),
    shard: { range: wholeKeySpace, partitionValue: null },
    cursor: null,
    batchSize: ROWS,
    maxBatchSize: ROWS,
    rowsPerSecond: null,
    failureBudget: 1,
    maxSeconds: 60,
    ...extra,
  });

  beforeAll(async () => {
    url = await createTestDatabase('heartbeats');
    await sql(url, `
      CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE items_v2 (id bigint PRIMARY KEY, name text NOT NULL);
      CREATE FUNCTION slow_name(value text) RETURNS text LANGUAGE sql STABLE AS $$ SELECT value FROM pg_sleep(${SLOW_ROW_SECONDS}) $$;`);
    databases = createDatabases({ env: { DB: url } });
    await installFerrySchema(databases.pool('DB'));
  });
  afterAll(() => databases?.close());

  it('a copy batch that is one statement of about 6 s heartbeats every 2 s meanwhile, and its last details are its checkpoint', async () => {
    const copier = createCopier(databases);
    const run = await runWithHeartbeats(copier.copyBatches, copyInput('slow-statement', 'slow_name(name)'));
    expect(run.error).toBeNull();
    expect(run.value).toMatchObject({ done: true, rowsRead: ROWS, rowsWritten: ROWS, batches: 1 });
    expect(run.ended - run.started).toBeGreaterThan(ROWS * SLOW_ROW_SECONDS * 1000 * 0.9);
    expect(longestSilence(run)).toBeLessThan(3000);
    // The timer beats the checkpoint as it stands: the cursor moves only once the batch is in.
    const cursors = run.beats.map((b) => (b.details as CopyProgress | undefined)?.cursor ?? null);
    expect(cursors.slice(0, -1).every((c) => c === null)).toBe(true);
    expect(cursors.at(-1)).toBe(String(ROWS));
    expect((await sql<{ n: number }>(url, 'SELECT count(*)::int AS n FROM items_v2'))[0]!.n).toBe(ROWS);
  });

  it('a copy waiting under a rows/s limit heartbeats, and ends at once when cancelled', async () => {
    await sql(url, 'TRUNCATE items_v2');
    const copier = createCopier(databases);
    // 12 rows at 1 row/s: after the first batch the copier waits about 12 s.
    const run = await runWithHeartbeats(copier.copyBatches, copyInput('paced', 'name', { batchSize: 12, maxBatchSize: 12, rowsPerSecond: 1 }), 5000);
    expect(run.error).toBeInstanceOf(CancelledFailure);
    expect(run.ended - run.started).toBeLessThan(7000);
    expect(longestSilence(run)).toBeLessThan(3000);
  });

  it('a verification waiting out a long in-flight delay heartbeats every 2 s meanwhile', async () => {
    await sql(url, `TRUNCATE items_v2; INSERT INTO items_v2 SELECT id, name FROM items; UPDATE items_v2 SET name = 'changed' WHERE id = 7`);
    const verifier = createVerifier(databases);
    const run = await runWithHeartbeats(verifier.verifyShard, {
      migrationId: 'heartbeats-verify',
      plan: plan('verify-delay', 'name'),
      shard: { range: wholeKeySpace, partitionValue: null },
      cursor: null,
      chunkSize: 100,
      pass: 1,
      inFlightDelayMs: 7000,
      maxSeconds: 60,
    });
    expect(run.error).toBeNull();
    expect(run.value).toMatchObject({ done: true, mismatches: { missing: 0, extra: 0, value: 1 } });
    expect(run.ended - run.started).toBeGreaterThan(7000);
    expect(longestSilence(run)).toBeLessThan(3000);
  });
});
