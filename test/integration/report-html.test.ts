/**
 * The HTML report of a real migration (throttled, re-throttled, paused and resumed), opened in
 * headless Chromium: it renders, with its charts and the decisions marked on them.
 * FERRY_REPORT_HTML_DIR keeps the page and its screenshot in that folder, to look at.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { ensureChromium } from '../../scripts/install-chromium';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 12_000;

/** Runs Chromium headless on a fresh profile; resolves with its stdout. */
function chromium(binary: string, args: string[], profiles: string): Promise<string> {
  const profile = mkdtempSync(path.join(profiles, 'profile-'));
  const flags = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--window-size=1200,1600',
  ];
  return new Promise((resolve, reject) => {
    execFile(binary, [...flags, ...args], { timeout: 90_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      rmSync(profile, { recursive: true, force: true });
      if (error) reject(new Error(`chromium ${args.join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

describe('the HTML report in a browser', () => {
  let url: string;
  let worker: TestWorker;
  let dir: string;
  const keep = process.env.FERRY_REPORT_HTML_DIR;

  beforeAll(async () => {
    dir = keep ? (mkdirSync(keep, { recursive: true }), keep) : mkdtempSync(path.join(os.tmpdir(), 'ferry-report-html-'));
    url = await createTestDatabase('report_html');
    await sql(url, `
      CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, ${ROWS}) i;
      ANALYZE items;
      CREATE TABLE items_v2 (id bigint PRIMARY KEY, name text NOT NULL);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
    if (!keep && dir) rmSync(dir, { recursive: true, force: true });
  });

  it('renders a real run with its charts and decisions in headless Chromium', async () => {
    let binary: string;
    try {
      binary = ensureChromium();
    } catch (error) {
      throw new Error(`this test needs Chromium: ${(error as Error).message}`, { cause: error });
    }

    const plan = validatePlan({
      name: 'report-html',
      source: { connection: 'DB', table: 'items', key: 'id' },
      target: { connection: 'DB', table: 'items_v2' },
      transform: { sql: { id: 'id', name: 'name' } },
      throttle: { rowsPerSecond: 400, batchSize: 100, checkpointSeconds: 0.5 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const status = async () => (await migrationReport(worker.client, id)).status!;
    const samples = async (n: number) => ((await status()).samples.length >= n ? true : undefined);

    // Slow at first, then faster, then a pause, then no limit: the rows/s chart has shape.
    await eventually(() => samples(2), 30_000, 'two progress samples');
    const faster = await ferry(['throttle', id, '--rows-per-second', '900', '--by', 'alice', '--reason', 'quiet hours <script>alert(1)</script>'], worker.temporal);
    expect(faster.code, faster.stderr).toBe(ExitCode.ok);
    const before = (await status()).samples.length;
    await eventually(() => samples(before + 2), 30_000, 'samples at the new rate');
    expect((await ferry(['pause', id, '--by', 'bob', '--reason', 'deploy'], worker.temporal)).code).toBe(ExitCode.ok);
    await eventually(async () => ((await status()).shards.every((s) => s.state !== 'running' || s.throttleReason === 'paused') ? true : undefined), 20_000, 'the pause');
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect((await ferry(['resume', id, '--by', 'bob'], worker.temporal)).code).toBe(ExitCode.ok);
    const resumed = (await status()).samples.length;
    await eventually(() => samples(resumed + 1), 30_000, 'a sample after the resume');
    const unlimited = await ferry(['throttle', id, '--rows-per-second', 'unlimited', '--by', 'alice'], worker.temporal);
    expect(unlimited.code, unlimited.stderr).toBe(ExitCode.ok);
    const result = await handle.result();
    expect(result.phase).toBe('completed');
    expect(result.rowsWritten).toBe(ROWS);
    expect(result.samples.length).toBeGreaterThanOrEqual(4);

    const html = path.join(dir, 'report.html');
    const written = await ferry(['report', id, '--format', 'html', '--out', html], worker.temporal);
    expect(written.code, written.stderr).toBe(ExitCode.ok);
    expect(written.stdout).toContain(`wrote ${html}`);
    const page = readFileSync(html, 'utf8');
    expect(page).not.toMatch(/NaN|<script/);
    expect(page).toContain('quiet hours &lt;script&gt;alert(1)&lt;/script&gt;');

    const png = path.join(dir, 'report.png');
    await chromium(binary, [`--screenshot=${png}`, pathToFileURL(html).href], dir);
    const image = readFileSync(png);
    expect(image.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect([image.readUInt32BE(16), image.readUInt32BE(20)]).toEqual([1200, 1600]);
    // A blank page compresses to a few kilobytes; text, tables and charts do not.
    expect(statSync(png).size).toBeGreaterThan(40_000);

    const dom = await chromium(binary, ['--dump-dom', pathToFileURL(html).href], dir);
    expect(dom.match(/<svg /g)).toHaveLength(4);
    expect(dom).toMatch(/class="series rate" d="M[\d.]+,[\d.]+ L/);
    expect(dom).toMatch(/class="series rows" d="M[\d.]+,[\d.]+ L/);
    expect(dom).toMatch(/class="series batch" d="M[\d.]+,[\d.]+ L/);
    for (const label of ['1 throttle', '2 pause', '3 resume', '4 throttle']) {
      // Each marker is on the three line charts (the timeline draws the lines unlabelled).
      expect(dom.split(`>${label}</text>`).length - 1, label).toBe(3);
    }
    expect(dom).toContain('estimate 12,000');
    // One "Phases" title (the section's heading), and timestamps that do not wrap.
    expect(dom.split('>Phases<').length - 1).toBe(1);
    expect(dom).toMatch(/<time class="ts" datetime="[^"]+Z" title="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ<\/time>/);
    // The detail is text in the page, not an element.
    expect(dom).toContain('quiet hours &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(dom).not.toContain('<script');
  });
});
