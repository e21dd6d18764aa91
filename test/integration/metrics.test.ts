/**
 * A worker's /metrics during and after a real migration: the counters move while it runs, end
 * equal to what the migration reports, and the exposition passes `promtool check metrics`.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ensurePromtool } from '../../scripts/install-promtool';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 20_000;
const PRESENT = 250;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition; enough of the format for what prom-client writes. */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unexpected exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

const total = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);

async function scrape(url: string): Promise<{ text: string; samples: Sample[]; contentType: string | null }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  const text = await response.text();
  return { text, samples: parseExposition(text), contentType: response.headers.get('content-type') };
}

function promtoolCheck(text: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

describe('worker metrics', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;

  beforeAll(async () => {
    // Fails (does not skip) with what to do when promtool can be neither found nor installed.
    ensurePromtool();
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('metrics_src'), createTestDatabase('metrics_dst')]);
    await sql(sourceUrl, `
      CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, ${ROWS}) AS i;
      ANALYZE items;`);
    await sql(targetUrl, `
      CREATE TABLE items_v2 (id bigint PRIMARY KEY, name text NOT NULL, name_length int);
      INSERT INTO items_v2 SELECT i, 'written by the app', 0 FROM generate_series(1, ${PRESENT}) AS i;`);
    worker = await startWorker({ SOURCE_URL: sourceUrl, TARGET_URL: targetUrl }, { metrics: true });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('serves counters that move during a run and equal its rows at the end, in a format promtool accepts', async () => {
    expect(worker.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const plan = validatePlan({
      name: 'metrics-items',
      source: { connection: 'SOURCE_URL', table: 'items', key: 'id' },
      target: { connection: 'TARGET_URL', table: 'items_v2' },
      transform: { sql: { id: 'id', name: 'name', name_length: 'length(name)' } },
      // Slow enough (about 7 s) to scrape it mid-run.
      throttle: { batchSize: 500, rowsPerSecond: 3000, concurrency: 2, checkpointSeconds: 1 },
      shards: { count: 2 },
    });
    const migration = { migration: plan.name };
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });

    // During the run: rows counted but not all yet, a copy running with its gauges.
    const during = await eventually(
      async () => {
        const { samples } = await scrape(worker.metricsUrl!);
        const copied = total(samples, 'ferry_rows_copied_total', migration);
        return copied > 0 && copied < ROWS - PRESENT && total(samples, 'ferry_copies_running', migration) > 0 ? samples : undefined;
      },
      30_000,
      'metrics from a running copy',
    );
    expect(during.some((s) => s.name === 'ferry_batch_size_rows' && s.labels.migration === plan.name)).toBe(true);
    expect(during.filter((s) => s.name === 'ferry_throttled' && s.labels.migration === plan.name).map((s) => s.labels.reason)).toEqual(
      expect.arrayContaining(['rate', 'replica-lag', 'long-query', 'probe', 'paused']),
    );
    expect(total(during, 'ferry_rows_per_second_limit', migration)).toBeGreaterThan(0);
    expect(during.filter((s) => s.name === 'ferry_source_replica_lag_seconds' && s.labels.migration === plan.name)).toEqual([
      expect.objectContaining({ value: 0 }),
    ]);
    const later = await eventually(
      async () => {
        const { samples } = await scrape(worker.metricsUrl!);
        const copied = total(samples, 'ferry_rows_copied_total', migration);
        return copied > total(during, 'ferry_rows_copied_total', migration) ? samples : undefined;
      },
      30_000,
      'the copied counter to move on',
    );
    expect(total(later, 'ferry_batch_duration_seconds_count', migration)).toBeGreaterThan(total(during, 'ferry_batch_duration_seconds_count', migration));

    const status = await handle.result();
    expect(status).toMatchObject({ phase: 'completed', rowsRead: ROWS, rowsWritten: ROWS - PRESENT, rowsFailed: 0 });

    // After the run: counters equal the migration's own figures; running copies' gauges are gone.
    const after = await scrape(worker.metricsUrl!);
    expect(after.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(total(after.samples, 'ferry_rows_copied_total', migration)).toBe(status.rowsWritten);
    expect(total(after.samples, 'ferry_rows_skipped_total', migration)).toBe(PRESENT);
    expect(total(after.samples, 'ferry_rows_failed_total', migration)).toBe(0);
    expect(total(after.samples, 'ferry_rows_copied_total', { ...migration, shard: '0' })).toBeGreaterThan(0);
    expect(total(after.samples, 'ferry_rows_copied_total', { ...migration, shard: '1' })).toBeGreaterThan(0);
    const batches = total(after.samples, 'ferry_batch_duration_seconds_count', migration);
    expect(batches).toBeGreaterThanOrEqual(ROWS / 500);
    expect(total(after.samples, 'ferry_batch_duration_seconds_bucket', { ...migration, le: '+Inf' })).toBe(batches);
    expect(total(after.samples, 'ferry_batch_duration_seconds_sum', migration)).toBeGreaterThan(0);
    // The source's health is what a copy running here saw: it goes with the migration's last copy.
    expect(after.samples.filter((s) => s.name.startsWith('ferry_source_') && s.labels.migration === plan.name)).toEqual([]);
    expect(total(after.samples, 'ferry_copies_running', migration)).toBe(0);
    for (const gauge of ['ferry_batch_size_rows', 'ferry_throttled', 'ferry_rows_per_second_limit']) {
      expect(after.samples.filter((s) => s.name === gauge && s.labels.migration === plan.name)).toEqual([]);
    }
    expect(after.samples.some((s) => s.name === 'process_resident_memory_bytes')).toBe(true);

    // promtool checks the format and Prometheus's naming conventions (units, _total) strictly.
    expect(promtoolCheck(after.text)).toEqual({ status: 0, output: '' });
    // ... and does catch what it should, so an empty answer means something.
    expect(promtoolCheck('# TYPE rows_copied counter\nrows_copied 1\n').status).not.toBe(0);
  });

  it('answers 404 off /metrics', async () => {
    const response = await fetch(worker.metricsUrl!.replace(/\/metrics$/, '/other'));
    expect(response.status).toBe(404);
  });
});
