/**
 * `ferry status --watch` and `ferry start --wait` against real migrations, run as an operator's
 * script would (stdout is a pipe): JSON lines, plain lines, and the exit code at the end.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 12_000;
/** About 6 s a run: several refreshes, a second apart. */
const ROWS_PER_SECOND = 2000;

const planInput = (name: string, table: string) => ({
  name,
  source: { connection: 'SOURCE_URL', table: 'events', key: 'id' },
  target: { connection: 'TARGET_URL', table },
  transform: { sql: { id: 'id', kind: 'kind' } },
  throttle: { batchSize: 250, rowsPerSecond: ROWS_PER_SECOND, concurrency: 2, checkpointSeconds: 1 },
  shards: { count: 2 },
});

describe('watching a migration', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('watch_src'), createTestDatabase('watch_dst')]);
    await sql(sourceUrl, `
      CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL);
      INSERT INTO events SELECT i, 'kind ' || (i % 7) FROM generate_series(1, ${ROWS}) AS i;
      ANALYZE events;`);
    worker = await startWorker({ SOURCE_URL: sourceUrl, TARGET_URL: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  const start = async (name: string) => {
    await sql(targetUrl, `CREATE TABLE ${name} (id bigint PRIMARY KEY, kind text NOT NULL)`);
    return startMigration(worker.client, worker.temporal, validatePlan(planInput(name.replace(/_/g, '-'), name)), { execute: true });
  };

  it('--watch --json prints a line a second with rising rows and a finite ETA, and exits 0 at the end', async () => {
    const handle = await start('watch_json');
    const result = await ferry(['status', handle.workflowId, '--watch', '--json'], worker.temporal);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    const objects = lines.map((line) => JSON.parse(line) as { runState: string; status: { rowsRead: number } | null; rowsPerSecond: number | null; etaSeconds: number | null });
    expect(objects.length).toBeGreaterThanOrEqual(3);
    const reads = objects.map((o) => o.status!.rowsRead);
    expect(reads.at(-1)).toBe(ROWS);
    expect(new Set(reads).size).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < reads.length; i++) expect(reads[i]).toBeGreaterThanOrEqual(reads[i - 1]!);
    const running = objects.filter((o) => o.runState === 'running');
    expect(running.some((o) => Number.isFinite(o.etaSeconds) && o.etaSeconds! > 0)).toBe(true);
    // The smoothed rate stays near the throttle (it lags behind the start, so allow a wide margin).
    const rates = running.map((o) => o.rowsPerSecond).filter((r): r is number => r !== null);
    // A loaded machine slows the run; only the ceiling is the throttle's.
    expect(Math.max(...rates)).toBeGreaterThan(0);
    expect(Math.max(...rates)).toBeLessThan(ROWS_PER_SECOND * 3);
    expect(objects.at(-1)).toMatchObject({ runState: 'completed', status: { phase: 'completed', rowsRead: ROWS, rowsWritten: ROWS }, etaSeconds: 0 });
  });

  it('--watch off a terminal prints plain lines without escape codes, then the final status', async () => {
    const handle = await start('watch_plain');
    const result = await ferry(['status', handle.workflowId, '--watch'], worker.temporal);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('\x1b');
    const progress = result.stdout.split('\n').filter((line) => /^\d\d:\d\d:\d\d (inspecting|backfilling|completed)/.test(line));
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.some((line) => /backfilling: [\d,]+ of ~[\d,]+ rows read \([\d.]+%\), [\d,]+ written, [\d,]+ rows\/s, ETA \d/.test(line))).toBe(true);
    expect(result.stdout).toContain(`migration ${handle.workflowId}: completed`);
  });

  it('--watch exits 1 when the migration is terminated', async () => {
    const handle = await start('watch_terminated');
    const watching = ferry(['status', handle.workflowId, '--watch', '--json'], worker.temporal);
    await eventually(async () => ((await handle.query('status')) as { rowsRead: number }).rowsRead > 0 || undefined, 30_000, 'rows read');
    await handle.terminate('test: stop watching');
    const result = await watching;
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toMatchObject({ runState: 'terminated' });
  });

  it('start --execute --wait follows progress in plain lines off a terminal', async () => {
    await sql(targetUrl, `CREATE TABLE watch_start (id bigint PRIMARY KEY, kind text NOT NULL)`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-watch-'));
    const planFile = path.join(dir, 'plan.json');
    // JSON is YAML: the plan file as an operator would write it.
    writeFileSync(planFile, JSON.stringify(planInput('watch-start', 'watch_start')));
    const result = await ferry(['start', planFile, '--execute', '--wait'], worker.temporal);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('\x1b');
    expect(result.stdout).toMatch(/^started migration ferry\/watch-start\//);
    expect(result.stdout.split('\n').filter((line) => /^\d\d:\d\d:\d\d \w+: /.test(line)).length).toBeGreaterThanOrEqual(2);
    expect(result.stdout).toMatch(/rows {6}12,000 read, 12,000 written/);
  });
});
