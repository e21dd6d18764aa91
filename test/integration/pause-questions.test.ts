/**
 * A pause for a person is never hidden behind an operator's pause: when a question comes up
 * while an operator has paused the migration (here: no application follows the dual-write
 * flags), it is shown and recorded, so the resume that ends the pause answers it knowingly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

describe('pauses over pauses', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('pause_questions');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 300) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('an operator paused the migration before dual writes found no application: the question shows, and the resume answers it on the record', async () => {
    const plan = validatePlan({
      name: 'pause-questions',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_v2' },
      transform: { sql: { id: 'id', label: 'label' } },
      lifecycle: { dualWrites: true, soakSeconds: 1 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await handle.signal('pause', { by: 'bob', reason: 'hold on' });

    // The operator's pause shows while the migration waits; then the question it must not hide.
    const paused = await eventually(async () => {
      const { status } = await migrationReport(worker.client, id);
      return status?.paused?.by === 'ferry' ? status.paused : undefined;
    }, 30_000, 'the question about applications');
    expect(paused.reason).toMatch(/^no application process follows the flags \(version 1\) after 1 s: .*; also paused by bob: hold on$/);
    const audited = await eventually(async () => {
      const rows = await sql(url, `SELECT kind, by, detail FROM ferry.audit WHERE migration_id = $1 AND kind IN ('pause', 'auto-pause') ORDER BY at, entry`, [id]);
      return rows.length === 2 ? rows : undefined;
    }, 30_000, 'both pauses in ferry.audit');
    expect(audited.map((r) => [r.kind, r.by])).toEqual([['pause', 'bob'], ['auto-pause', 'ferry']]);
    expect(audited[1]!.detail).toMatch(/^no application process follows the flags/);
    expect((await migrationReport(worker.client, id)).status!.rowsRead).toBe(0);

    await handle.signal('resume', { by: 'bob' });
    const done = await handle.result();
    expect(done.phase).toBe('completed');
    const resume = done.events.find((e) => e.kind === 'resume')!;
    expect(resume.by).toBe('bob');
    expect(resume.detail).toMatch(/^resumed after: no application process follows the flags/);
  });
});
