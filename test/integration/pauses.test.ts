/**
 * A pause says what is true. A question for a person is never hidden behind an operator's pause:
 * when one comes up while an operator has paused the migration (here: no application follows the
 * dual-write flags), it is shown and recorded, so the resume that ends the pause answers it
 * knowingly. And a migration that ended is not "PAUSED", whatever pause its last steps left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

describe('pauses', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('pause_questions');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 300) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);
      CREATE TABLE items_v3 (id int PRIMARY KEY, label text NOT NULL);`);
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

  it('paused at a gate: an approval is refused and moves nothing; rejected, the ended migration is not shown paused, and the pause stays on the record', async () => {
    const plan = validatePlan({
      name: 'pauses-ended',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_v3' },
      transform: { sql: { id: 'id', label: 'label' } },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const waitAt = (gate: string) =>
      eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === gate ? true : undefined), 60_000, `gate ${gate}`);
    await waitAt('cutover-reads');
    await handle.signal('pause', { by: 'bob', reason: 'freeze' });
    await eventually(async () => (await migrationReport(worker.client, id)).status?.paused?.by === 'bob', 30_000, 'the pause');
    // A pause holds the gate: an approval is refused and moves nothing.
    const before = (await migrationReport(worker.client, id)).status!;
    const approved = await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'carol'], worker.temporal);
    expect(approved.code).not.toBe(ExitCode.ok);
    expect(approved.stderr).toContain('the migration is paused (by bob: freeze); resume it first (ferry resume), then approve');
    const held = (await migrationReport(worker.client, id)).status!;
    expect({ gate: held.gate?.name, flags: held.flags, paused: held.paused }).toEqual({ gate: 'cutover-reads', flags: before.flags, paused: before.paused });
    expect(held.events.some((e) => e.kind === 'approve')).toBe(false);
    // A rejection still ends it, and the ended migration is not shown paused.
    await handle.executeUpdate('reject', { args: [{ gate: 'cutover-reads', by: 'carol', reason: 'not during the freeze' }] });
    const done = await handle.result();
    expect(done.phase).toBe('aborted');
    expect(done.paused).toBeNull();
    expect(done.events.filter((e) => e.kind === 'pause').map((e) => e.by)).toEqual(['bob']);
    const status = await ferry(['status', id], worker.temporal);
    expect(status.code, status.stderr).toBe(ExitCode.aborted);
    expect(status.stdout).toMatch(/^phase {5}aborted/m);
    expect(status.stdout).not.toContain('PAUSED');
    const list = await ferry(['list', '--all', '--plan', 'pauses-ended'], worker.temporal);
    expect(list.stdout).toContain('aborted');
    expect(list.stdout).not.toContain('paused');
  });
});
