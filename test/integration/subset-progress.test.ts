/**
 * A migration of a subset of the source (subset.keyRange, samplePercent, where): its progress and
 * ETA measure against the rows the subset selects, not the whole table's, so a finished subset
 * reads 100%, not the share the subset is of the table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { progressLine } from '../../cli/render';
import { formatListingTable } from '../../cli/list';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 5_000;

describe('progress of a subset', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('subset_progress');
    await sql(url, `
      CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, ${ROWS}) AS i;
      ANALYZE items;
      CREATE TABLE items_v2 (id bigint PRIMARY KEY, name text NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('estimates the rows the subset selects, and a finished subset reads 100%', async () => {
    const plan = validatePlan({
      name: 'subset-progress',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_v2' },
      transform: { sql: { id: 'id', name: 'name' } },
      subset: { keyRange: { from: '1', to: '1000' }, samplePercent: 50 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    // The truth, by the test's own SQL: the target was empty, so it now holds exactly the subset.
    const { n: copied } = await sqlRow(url, 'SELECT count(*)::int AS n FROM items_v2');
    expect(copied).toBeGreaterThan(300);
    expect(copied).toBeLessThan(700);
    expect(status.rowsRead).toBe(copied);
    expect(status.inspection?.source.estimatedRows).toBe(copied);
    expect(progressLine(status)).toContain('(100.0%)');
    const listed = formatListingTable([
      { migrationId: handle.workflowId, runState: 'completed', startedAt: status.startedAt, plan: plan.name, target: 'public.items_v2', phase: status.phase, paused: false, rowsRead: status.rowsRead, estimatedRows: status.inspection?.source.estimatedRows ?? null, progressKnown: true },
    ]);
    expect(listed).toContain(' 100%');
  });
});
