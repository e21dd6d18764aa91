/**
 * What an operator says with a request must read as sent, or the request is refused with the
 * reason and nothing is sent: a pause or resume (signals, which nobody answers) that the
 * migration would ignore is refused by the CLI rather than reported sent, and a name with a
 * terminal escape, which would show in `ferry status` as someone else's, is refused everywhere.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

describe('operator notes', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    url = await createTestDatabase('operator_notes');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 5000) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('a note the migration would not read is refused before it is sent; the migration copies on unchanged and still takes a valid pause', async () => {
    const plan = validatePlan({
      name: 'operator-notes',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_v2' },
      transform: { sql: { id: 'id', label: 'label' } },
      throttle: { rowsPerSecond: 200, batchSize: 20, concurrency: 1, checkpointSeconds: 1 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const statusOf = async () => (await migrationReport(worker.client, id)).status!;
    await eventually(async () => (await statusOf()).rowsRead > 0, 30_000, 'copying');
    const as = (args: string[]) => ferry(args, worker.temporal, { FERRY_OPERATOR: 'mallory' });

    const refusals: [string[], string][] = [
      [['pause', id, '--reason', 'x'.repeat(2001)], 'refused: reason must be at most 2000 characters; nothing was sent'],
      [['pause', id, '--by', 'carol\x1b[8m'], 'refused: by must not contain control characters'],
      [['resume', id, '--by', 'mallory\rcarol'], 'refused: by must not contain control characters'],
      [['throttle', id, '--rows-per-second', '300', '--by', 'carol\x1b[8m'], 'refused: by must not contain control characters'],
    ];
    for (const [args, message] of refusals) {
      const result = await as(args);
      expect(`${result.code} ${result.stderr}`, args.slice(0, 1).join(' ')).toContain(`${ExitCode.badInput} `);
      expect(result.stderr).toContain(message);
    }
    // Signals are read in order: once a later pause shows, an earlier one would have been read.
    const paused = await as(['pause', id, '--reason', 'deploy']);
    expect(paused.code, paused.stderr).toBe(ExitCode.ok);
    const status = await eventually(async () => {
      const now = await statusOf();
      return now.paused ? now : undefined;
    }, 30_000, 'the pause');
    expect(status.paused).toMatchObject({ by: 'mallory', reason: 'deploy' });
    expect(status.throttle.rowsPerSecond).toBe(200);
    expect(status.events.map((e) => [e.kind, e.by])).toEqual([['pause', 'mallory']]);
    await handle.terminate('test over');
  });
});
