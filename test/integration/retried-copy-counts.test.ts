/**
 * Counts of a copy call retried after its worker died, against real PostgreSQL. Heartbeats reach
 * the server every few seconds, so the retried attempt resumes from a checkpoint behind what the
 * lost attempt wrote and copies those batches again. The rows Ferry wrote must still count as
 * written, not as found already present; rows the application wrote still count as present.
 * The test's own SQL checks the target against the source (md5 of each row's text).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Info } from '@temporalio/activity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { createCopier, type CopyBatchesInput, type CopyBatchesResult } from '../../activities/copy/copier';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { upgradeFerrySchema } from '../../activities/state/schema-version';
import { FERRY_SCHEMA_MIGRATIONS, FERRY_SCHEMA_VERSION } from '../../activities/state/schema-migrations';
import { wholeKeySpace } from '../../lib/key-range';
import type { CopyProgress } from '../../lib/progress';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, sql } from '../support/harness';

const ROWS = 30;
const BATCH = 10;

/** One attempt of a copy call, as Temporal would run it, with the checkpoints it heartbeated. */
async function attempt(databases: Databases, input: CopyBatchesInput, info: Partial<Info>) {
  const env = new MockActivityEnvironment(info);
  const beats: CopyProgress[] = [];
  env.on('heartbeat', (details: unknown) => beats.push(structuredClone(details) as CopyProgress));
  const result: CopyBatchesResult = await env.run(createCopier(databases, undefined, null).copyBatches, input);
  return { result, beats };
}

const call = (shard: string, activityId: string) => ({ activityId, workflowExecution: { workflowId: shard, runId: 'run-1' } });

async function rowsDiffering(sourceUrl: string, targetUrl: string): Promise<number> {
  const side = (url: string) => sql<{ id: string; md5: string }>(url, `SELECT id::text, md5(ROW(id, name)::text) AS md5 FROM ${url === sourceUrl ? 'items' : 'items_v2'}`);
  const [source, target] = await Promise.all([side(sourceUrl), side(targetUrl)]);
  const byId = new Map(target.map((r) => [r.id, r.md5]));
  return source.filter((r) => byId.get(r.id) !== r.md5).length + Math.max(0, target.length - source.length);
}

describe.each([
  { path: 'within one database', across: false },
  { path: 'across databases', across: true },
])('a copy call retried after its worker died, $path', ({ path, across }) => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  const input = (name: string): CopyBatchesInput => ({
    migrationId: `retried-${name}`,
    plan: validatePlan({
      name,
      source: { connection: 'SOURCE', table: 'items', key: 'id' },
      target: { connection: 'TARGET', table: 'items_v2' },
      transform: { sql: { id: 'id', name: 'name' } },
    }),
    shard: { range: wholeKeySpace, partitionValue: null },
    cursor: null,
    batchSize: BATCH,
    maxBatchSize: BATCH,
    rowsPerSecond: null,
    failureBudget: 1,
    maxSeconds: 60,
  });

  beforeAll(async () => {
    const slug = across ? 'retried-across' : 'retried-within';
    sourceUrl = await createTestDatabase(slug);
    targetUrl = across ? await createTestDatabase(`${slug}-target`) : sourceUrl;
    await sql(sourceUrl, `CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, ${ROWS}) i;`);
    await sql(targetUrl, 'CREATE TABLE items_v2 (id bigint PRIMARY KEY, name text NOT NULL)');
    databases = createDatabases({ env: { SOURCE: sourceUrl, TARGET: targetUrl } });
    // The target's Ferry schema as an older release left it: the copy call brings the ledger.
    await upgradeFerrySchema(databases.pool('TARGET'), FERRY_SCHEMA_MIGRATIONS.slice(0, 1));
  });
  afterAll(() => databases?.close());

  it(`counts the rows the lost attempt wrote after its last checkpoint as written (${path})`, async () => {
    const first = await attempt(databases, input('lost'), { ...call('shard-lost', 'copy-1'), attempt: 1 });
    expect(first.result).toMatchObject({ done: true, rowsRead: ROWS, rowsWritten: ROWS });
    expect((await sql<{ version: number }>(targetUrl, 'SELECT max(version) AS version FROM ferry.schema_version'))[0]!.version).toBe(FERRY_SCHEMA_VERSION);
    // The server kept only the checkpoint after the first batch; the worker died after the last.
    const kept = first.beats.find((b) => b?.cursor === String(BATCH))!;
    expect(kept).toMatchObject({ rowsRead: BATCH, rowsWritten: BATCH });
    const retried = await attempt(databases, input('lost'), { ...call('shard-lost', 'copy-1'), attempt: 2, heartbeatDetails: kept });
    expect(retried.result).toMatchObject({ done: true, rowsRead: ROWS, rowsWritten: ROWS, rowsFailed: 0 });
    expect(await rowsDiffering(sourceUrl, targetUrl)).toBe(0);

    // The shard's next call starts its own count: the rows are there, and it wrote none of them.
    const next = await attempt(databases, input('lost'), { ...call('shard-lost', 'copy-2'), attempt: 1 });
    expect(next.result).toMatchObject({ done: true, rowsRead: ROWS, rowsWritten: 0 });
    // A retried attempt of a call that never wrote takes nothing from another call's count.
    const other = await attempt(databases, input('lost'), { ...call('shard-lost', 'copy-3'), attempt: 2 });
    expect(other.result).toMatchObject({ done: true, rowsRead: ROWS, rowsWritten: 0 });
  });

  it(`still counts the rows the application wrote as present (${path})`, async () => {
    await sql(targetUrl, `TRUNCATE items_v2; INSERT INTO items_v2 SELECT i, 'item ' || i FROM generate_series(${ROWS - BATCH + 1}, ${ROWS}) i`);
    const first = await attempt(databases, input('app'), { ...call('shard-app', 'copy-1'), attempt: 1 });
    expect(first.result).toMatchObject({ done: true, rowsRead: ROWS, rowsWritten: ROWS - BATCH });
    const kept = first.beats.find((b) => b?.cursor === String(BATCH))!;
    const retried = await attempt(databases, input('app'), { ...call('shard-app', 'copy-1'), attempt: 2, heartbeatDetails: kept });
    expect(retried.result).toMatchObject({ done: true, rowsRead: ROWS, rowsWritten: ROWS - BATCH });
    expect(await rowsDiffering(sourceUrl, targetUrl)).toBe(0);
  });
});

describe('the copy ledger on a target whose schema is current', () => {
  it('is installed with the rest of the schema', async () => {
    const url = await createTestDatabase('retried-schema');
    const databases = createDatabases({ env: { DB: url } });
    try {
      await installFerrySchema(databases.pool('DB'));
      expect((await sql<{ t: string | null }>(url, "SELECT to_regclass('ferry.copy_ledger')::text AS t"))[0]!.t).toBe('ferry.copy_ledger');
    } finally {
      await databases.close();
    }
  });
});
