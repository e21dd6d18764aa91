/**
 * The CLI says what is true, quickly: with no worker, or one that polled and then froze, it fails
 * fast having sent nothing (and claims no more than it knows of the frozen one), `list`
 * reads visibility, `resume` says whether there was a pause, and an aborted migration is aborted
 * everywhere (status, exit code, report) with the rows it left behind.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { temporalSettings } from '../../lib/settings';
import type { MigrationStatus } from '../../lib/status';
import { createFerryWorker } from '../../workers/worker';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, uniqueName, type TestWorker } from '../support/harness';
import { startWorkerProcess } from '../support/worker-process';

const ROWS = 20_000;

const planInput = (name: string, table: string, rowsPerSecond: number) => ({
  name,
  source: { connection: 'SOURCE_URL', table: 'events', key: 'id' },
  target: { connection: 'TARGET_URL', table },
  transform: { sql: { id: 'id', kind: 'kind' } },
  throttle: { batchSize: 200, rowsPerSecond, concurrency: 1, checkpointSeconds: 1 },
});

/** Rows the migration reports written so far (0 before it can answer). */
async function rowsWritten(handle: WorkflowHandle): Promise<number> {
  const status = await handle.query<MigrationStatus>('status').catch(() => null);
  return status?.rowsWritten ?? 0;
}

describe('operator truth', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  const env = () => ({ SOURCE_URL: sourceUrl, TARGET_URL: targetUrl });

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('truth_src'), createTestDatabase('truth_dst')]);
    await sql(sourceUrl, `
      CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL);
      INSERT INTO events SELECT i, 'kind ' || (i % 7) FROM generate_series(1, ${ROWS}) AS i;
      ANALYZE events;`);
    worker = await startWorker(env());
  });
  afterAll(async () => {
    await worker?.stop();
  });

  const start = async (table: string, rowsPerSecond: number, taskQueue = worker.temporal.taskQueue) => {
    await sql(targetUrl, `CREATE TABLE ${table} (id bigint PRIMARY KEY, kind text NOT NULL)`);
    const plan = validatePlan(planInput(table.replace(/_/g, '-'), table, rowsPerSecond));
    return startMigration(worker.client, { ...worker.temporal, taskQueue }, plan, { execute: true });
  };

  it('with no worker polling: status, throttle and list answer within seconds, exit 4, and nothing is sent', async () => {
    const idleQueue = uniqueName('idle');
    // No worker copies until the late one below: the rate needs only to differ from the refused one.
    const handle = await start('truth_idle', 10_000, idleQueue);

    let began = Date.now();
    const status = await ferry(['status', handle.workflowId], worker.temporal);
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(status.code).toBe(ExitCode.unreachable);
    expect(status.stderr).toContain(`no Ferry worker polls task queue "${idleQueue}"`);
    expect(status.stderr).toContain(`FERRY_TASK_QUEUE=${idleQueue} ferry worker`);
    expect(status.stdout).toContain("from Temporal's record; live figures need a worker");
    expect(status.stdout).toMatch(/phase\s+inspecting/);

    began = Date.now();
    const throttle = await ferry(['throttle', handle.workflowId, '--rows-per-second', '77', '--by', 'tester'], worker.temporal);
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(throttle.code).toBe(ExitCode.unreachable);
    expect(throttle.stderr).toContain('nothing was sent');

    began = Date.now();
    const list = await ferry(['list', '--plan', 'truth-idle'], worker.temporal);
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(list.code).toBe(ExitCode.ok);
    expect(list.stdout.split('\n')[0]).toMatch(/^MIGRATION\s+PLAN\s+TARGET\s+PHASE\s+PROGRESS\s+AGE$/);
    expect(list.stdout).toMatch(new RegExp(`${handle.workflowId}\\s+truth-idle\\s+public\\.truth_idle\\s+inspecting\\s+\\? \\(no worker\\)`));

    const resume = await ferry(['resume', handle.workflowId, '--by', 'tester'], worker.temporal);
    expect(resume.code).toBe(ExitCode.ok);
    expect(resume.stdout).toContain('whether it was paused is not known');

    // A worker comes: the refused throttle was never sent, so it never applies.
    const late = await createFerryWorker({
      temporal: temporalSettings({}, { address: inject('temporalAddress'), taskQueue: idleQueue }),
      env: env(),
      workflowBundle: { codePath: inject('workflowBundlePath') },
      shutdownGraceSeconds: 1,
    });
    const running = late.worker.run();
    try {
      const done = await handle.result();
      expect(done.phase).toBe('completed');
      expect(done.throttle.rowsPerSecond).toBe(10_000);
      expect(done.events.filter((e) => e.kind === 'throttle')).toEqual([]);
    } finally {
      late.shutdown();
      await running;
    }
  });

  it('with a worker that polled and then froze: says it may have stopped or be too busy, sends nothing, and the refused throttle never applies', async () => {
    const queue = uniqueName('frozen');
    const frozen = await startWorkerProcess({ ...worker.temporal, taskQueue: queue }, env());
    try {
      // Slow enough that the copy still runs when the worker is frozen (about 5 s for every row).
      const handle = await start('truth_frozen', 4000, queue);
      await eventually(async () => (await rowsWritten(handle)) > 0, 30_000, 'rows copied');
      // Polled a moment ago, alive, and unable to answer: as a machine out of CPU looks from the CLI.
      frozen.process.kill('SIGSTOP');
      const status = await ferry(['status', handle.workflowId], worker.temporal);
      expect(status.code).toBe(ExitCode.unreachable);
      expect(status.stderr).toMatch(
        new RegExp(`no Ferry worker answered for ${handle.workflowId} within 5 s \\(a worker polled task queue "${queue}" \\d+ s ago, but none answered: it may have stopped, or be too busy to answer\\); nothing was sent\\. If none runs, start one`),
      );
      const throttle = await ferry(['throttle', handle.workflowId, '--rows-per-second', '77', '--by', 'tester'], worker.temporal);
      expect(throttle.code).toBe(ExitCode.unreachable);
      expect(throttle.stderr).toContain('nothing was sent');

      frozen.process.kill('SIGCONT');
      const done = await handle.result();
      expect(done.phase).toBe('completed');
      expect(done.throttle.rowsPerSecond).toBe(4000);
      expect(done.events.filter((e) => e.kind === 'throttle')).toEqual([]);
      expect(await sqlRow(targetUrl, 'SELECT count(*)::int AS n FROM truth_frozen')).toEqual({ n: ROWS });
    } finally {
      frozen.process.kill('SIGCONT');
      await frozen.stop();
    }
  });

  it('resume refuses a migration that is not paused; an aborted one is aborted in status, exit code and report', async () => {
    const handle = await start('truth_abort', 1500);
    await eventually(async () => (await rowsWritten(handle)) > 2000, 30_000, 'rows copied');

    const resume = await ferry(['resume', handle.workflowId, '--by', 'tester'], worker.temporal);
    expect(resume.code).toBe(ExitCode.badInput);
    expect(resume.stderr).toContain('is not paused');
    expect(resume.stderr).toContain('nothing was sent');

    // Paused: labelled PAUSED with who and why, no rate or ETA, and the decision says its reason once.
    expect((await ferry(['pause', handle.workflowId, '--by', 'tester', '--reason', 'checking replica'], worker.temporal)).code).toBe(ExitCode.ok);
    const paused = await eventually(async () => {
      const result = await ferry(['status', handle.workflowId], worker.temporal);
      return result.stdout.includes('PAUSED for') ? result.stdout : undefined;
    }, 30_000, 'the pause');
    expect(paused).toMatch(/phase {5}backfilling \(PAUSED for \S+ by tester(?: \(as \S+\))?: checking replica/);
    expect(paused).not.toContain('ETA');
    expect(paused).toMatch(/pause by tester(?: \(as \S+\))?: checking replica\n/);
    expect(paused).not.toContain('checking replica (checking replica)');
    const resumed = await ferry(['resume', handle.workflowId, '--by', 'tester'], worker.temporal);
    expect(resumed.code).toBe(ExitCode.ok);
    expect(resumed.stdout).toContain('which was paused');

    const aborted = await ferry(['abort', handle.workflowId, '--by', 'tester', '--reason', 'checking replica'], worker.temporal);
    expect(aborted.code).toBe(ExitCode.ok);

    const status = await ferry(['status', handle.workflowId], worker.temporal);
    expect(status.code).toBe(ExitCode.aborted);
    expect(status.stdout.split('\n')[0]).toBe(`migration ${handle.workflowId}: aborted`);
    expect(status.stdout).not.toContain(': completed');
    const { rows } = await sqlRow(targetUrl, 'SELECT count(*)::int AS rows FROM truth_abort');
    const claimed = Number(/at least ([\d,]+) rows copied/.exec(status.stdout)![1]!.replace(/,/g, ''));
    expect(claimed).toBeGreaterThan(0);
    expect(claimed).toBeLessThanOrEqual(rows);

    const report = await ferry(['report', handle.workflowId], worker.temporal);
    expect(report.code).toBe(ExitCode.ok);
    expect(report.stdout).toContain('outcome: **aborted**');
    expect(report.stdout).toMatch(/at least [\d,]+ rows copied by this run .* remain in public\.truth_abort/);
    expect(report.stdout).toContain('TRUNCATE public.truth_abort');
    expect(report.stdout).not.toContain('The ETA at 10%');
  });

  it('with the worker stopped: status exits 4 within seconds, naming the task queue', async () => {
    const second = await startWorker(env());
    const handle = await start('truth_stopped', 500, second.temporal.taskQueue);
    await eventually(async () => (await rowsWritten(handle)) > 0, 30_000, 'rows copied');
    await second.stop();
    // Temporal still lists the stopped worker as a poller for a while: the status query finds it gone.
    const began = Date.now();
    const status = await ferry(['status', handle.workflowId], worker.temporal);
    expect(Date.now() - began).toBeLessThan(15_000);
    expect(`${status.code} ${status.stderr}`).toMatch(/^4 /);
    expect(status.stderr).toContain(`task queue "${second.temporal.taskQueue}"`);
    const pause = await ferry(['approve', handle.workflowId, '--gate', 'cutover-reads', '--by', 'tester'], worker.temporal);
    expect(pause.code).toBe(ExitCode.unreachable);
    expect(pause.stderr).toContain('nothing was sent');
    await handle.terminate('test over');
  });

  it('an unreachable address exits 4 with the root cause in one line, for list too', async () => {
    const result = await ferry(['list', '--address', '127.0.0.1:1'], worker.temporal);
    expect(result.code).toBe(ExitCode.unreachable);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('cannot reach Temporal at 127.0.0.1:1');

    const namespace = await ferry(['list', '--namespace', 'no-such-namespace'], worker.temporal);
    expect(namespace.code).toBe(ExitCode.badInput);
    expect(namespace.stderr.trim().split('\n')).toHaveLength(1);
    expect(namespace.stderr).toMatch(/^ferry: no Temporal namespace "no-such-namespace"; pass --namespace/);
  });
});
