/**
 * `ferry start --execute` says "started" only of a run that passed its inspection and claimed
 * its target; one that fails there gets its reason and exit 1, one aborted there exit 5, and
 * `--detach` returns at once. With no worker on the task queue nothing is started, and a run no
 * worker took is withdrawn: what the command says, Temporal confirms.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, requestAbort } from '../../operator';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';
import pg from 'pg';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-start-'));

function plan(name: string, target: string, extra = '', source = 'items'): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, `name: ${name}\nsource: { connection: START_DB, table: ${source}, key: id }\ntarget: { connection: START_DB, table: ${target} }\ntransform: { sql: { id: id, label: label } }\n${extra}`);
  return file;
}

describe('ferry start --execute', () => {
  let worker: TestWorker;
  let url: string;

  beforeAll(async () => {
    url = await createTestDatabase('start');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 200) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);`);
    worker = await startWorker({ START_DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('refuses to say "started" of a run whose target is missing, and gives the reason', async () => {
    const result = await ferry(['start', plan('start-missing', 'nowhere'), '--execute'], worker.temporal);
    expect(result.code).toBe(ExitCode.failed);
    expect(result.stdout).not.toContain('started migration');
    expect(result.stderr).toContain('target table public.nowhere does not exist');
  });

  it('says "started" once the inspection passed, and the target held a finished migration refuses a second without --rerun', async () => {
    const first = await ferry(['start', plan('start-ok', 'items_v2'), '--execute', '--wait'], worker.temporal);
    expect(first.code).toBe(ExitCode.ok);
    const again = await ferry(['start', plan('start-ok', 'items_v2'), '--execute'], worker.temporal);
    expect(again.code).toBe(ExitCode.failed);
    expect(again.stdout).not.toContain('started migration');
    expect(again.stderr).toMatch(/--rerun/);
  });

  it('returns at once with --detach, and says it did not wait', async () => {
    const result = await ferry(['start', plan('start-detached', 'nowhere'), '--execute', '--detach'], worker.temporal);
    expect(result.code).toBe(ExitCode.ok);
    expect(result.stdout).toContain('not waiting for its inspection: --detach');
  });

  it('refuses --wait or --detach without --execute, and both at once, starting nothing', async () => {
    await sql(url, 'CREATE TABLE items_unasked (LIKE items INCLUDING ALL)');
    const file = plan('start-unasked', 'items_unasked');
    const cases: [string[], RegExp][] = [
      [['--wait'], /--wait goes with --execute: without it, ferry start is a dry run/],
      [['--detach'], /--detach goes with --execute/],
      [['--execute', '--wait', '--detach'], /--wait follows the migration to its end and --detach returns at once: give one of them/],
    ];
    for (const [flags, why] of cases) {
      const id = `ferry/start-unasked/${uniqueName('run')}`;
      const result = await ferry(['start', file, ...flags, '--id', id], worker.temporal);
      expect(result.code, result.stdout + result.stderr).toBe(ExitCode.badInput);
      expect(result.stderr).toMatch(why);
      expect(await worker.client.workflow.getHandle(id).describe().catch((e: unknown) => e)).toBeInstanceOf(WorkflowNotFoundError);
    }
    expect(await sqlRow(url, 'SELECT count(*)::int AS n FROM items_unasked')).toEqual({ n: 0 });
    expect(await sqlRow(url, "SELECT count(*)::int AS n FROM ferry.migrations WHERE target_table = 'public.items_unasked'").catch(() => ({ n: 0 }))).toEqual({ n: 0 });
  });

  it('says a run aborted during its inspection was aborted, not started (exit 5)', { timeout: 90_000 }, async () => {
    // A source of its own: no other test's run reads it.
    await sql(url, 'CREATE TABLE held (LIKE items INCLUDING ALL); INSERT INTO held SELECT * FROM items; CREATE TABLE held_v2 (LIKE items INCLUDING ALL)');
    const id = `ferry/start-aborted/${uniqueName('run')}`;
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    try {
      // The inspection reads the source: it waits behind this lock while the abort comes in.
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE held IN ACCESS EXCLUSIVE MODE');
      // Dual writes come first, so nothing but the inspection reads the source before the claim.
      const dualWrites = 'lifecycle: { dualWrites: true, noApps: true, soakSeconds: 0 }\n';
      const starting = ferry(['start', plan('start-aborted', 'held_v2', dualWrites, 'held'), '--execute', '--id', id], worker.temporal);
      await eventually(async () => (await sqlRow<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.relation = 'held'::regclass AND NOT l.granted AND a.application_name = 'ferry'`)).n > 0, 20_000, 'the inspection to wait for the source');
      expect((await migrationReport(worker.client, id)).status?.phase).toBe('inspecting');
      await requestAbort(worker.client, id, { by: 'tester', reason: 'wrong plan' });
      await blocker.query('COMMIT');
      const result = await starting;
      expect(result.code, result.stdout + result.stderr).toBe(ExitCode.aborted);
      expect(result.stdout).not.toContain('started migration');
      expect(result.stderr).toContain(`migration ${id} was aborted in phase inspecting by tester: wrong plan`);
    } finally {
      await blocker.end();
    }
  });
});

describe('ferry start with no worker on the task queue', () => {
  let served: TestWorker;
  let url: string;

  beforeAll(async () => {
    url = await createTestDatabase('start_noworker');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items VALUES (1, 'one');
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);`);
    served = await startWorker({ START_DB: url });
  });
  afterAll(async () => {
    await served?.stop();
  });

  const notInTemporal = async (id: string) => {
    const found = await served.client.workflow.getHandle(id).describe().catch((error: unknown) => error);
    expect(found).toBeInstanceOf(WorkflowNotFoundError);
  };

  it.each([['--execute'], ['a dry run']])('starts nothing (%s), says so, and exits 4', { timeout: 60_000 }, async (mode) => {
    const id = `ferry/start-noworker/${uniqueName('run')}`;
    const queue = { ...served.temporal, taskQueue: uniqueName('mistyped') };
    const result = await ferry(['start', plan('start-noworker', 'items_v2'), ...(mode === '--execute' ? ['--execute'] : []), '--id', id], queue);
    expect(result.code, result.stdout + result.stderr).toBe(ExitCode.unreachable);
    expect(result.stderr).toContain(`no Ferry worker polls task queue "${queue.taskQueue}"`);
    expect(result.stderr).toContain('no migration was started; nothing was sent');
    expect(result.stdout).not.toContain('dry run');
    await notInTemporal(id);
  });

  it('withdraws a run no worker took when the worker went away just before, and says so', { timeout: 90_000 }, async () => {
    // A worker that polled and stopped: Temporal still lists it for a while, so the start goes ahead.
    const gone = await startWorker({ START_DB: url });
    await eventually(async () => {
      const response = await served.client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: gone.temporal.taskQueue } });
      return (response.pollers ?? []).length > 0;
    }, 20_000, 'the worker to poll');
    await gone.stop();
    for (const mode of [['--execute'], []]) {
      const id = `ferry/start-gone/${uniqueName('run')}`;
      const result = await ferry(['start', plan('start-gone', 'items_v2'), ...mode, '--id', id], gone.temporal);
      expect(result.code, result.stdout + result.stderr).toBe(ExitCode.unreachable);
      expect(result.stderr).toContain(
        mode.length ? `so migration ${id} was withdrawn (terminated) before anything of it ran` : `so the dry run ${id} was withdrawn (terminated; a dry run writes nothing)`,
      );
      expect(result.stdout).not.toContain('started migration');
      const description = await served.client.workflow.getHandle(id).describe();
      expect(description.status.name).toBe('TERMINATED');
    }
  });
});
