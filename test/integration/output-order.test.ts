/**
 * What operators read comes whole and in order: a status of several hundred shards through a
 * slow pipe into jq arrives whole, and keys kept as text sort as people read them (9 before 10).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyOrderSql } from '../../activities/verify/verify-statements';
import { ensureDebianPackage } from '../../scripts/services/debian-package';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ferryBin = path.join(__dirname, '..', '..', 'bin', 'ferry.js');
const execFileAsync = promisify(execFile);

describe('output operators read', () => {
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    ensureDebianPackage('jq', 'jq', () => {
      try {
        execFileSync('jq', ['--version'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    });
    url = await createTestDatabase('output');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 900) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text NOT NULL);`);
    worker = await startWorker({ OUT_DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('pipes the status of 300 shards through a slow reader whole, and jq reads it', async () => {
    const plan = path.join(mkdtempSync(path.join(os.tmpdir(), 'ferry-output-')), 'plan.yaml');
    writeFileSync(plan, 'name: many-shards\nsource: { connection: OUT_DB, table: items, key: id }\ntarget: { connection: OUT_DB, table: items_v2 }\ntransform: { sql: { id: id, label: label } }\nshards: { count: 300 }\nthrottle: { rowsPerSecond: 10, concurrency: 1 }\n');
    const id = 'ferry/many-shards/output-test';
    const started = await ferry(['start', plan, '--execute', '--id', id], worker.temporal);
    expect(started.code).toBe(0);
    await eventually(async () => ((await ferry(['status', id, '--json'], worker.temporal)).stdout.match(/"index":/g)?.length ?? 0) >= 300, 60_000, 'the shards to be planned');
    const env = { ...process.env, TEMPORAL_ADDRESS: worker.temporal.address, FERRY_TASK_QUEUE: worker.temporal.taskQueue };
    // Through a pipe whose reader starts a second late, into a file jq then reads. On a loaded
    // machine a status query may miss its deadline and print what Temporal alone knows: ask again.
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'ferry-piped-')), 'status.json');
    const [shards, bytes] = await eventually(async () => {
      // Not execFileSync: the worker runs in this process and must go on answering meanwhile.
      await execFileAsync('sh', ['-c', `node ${ferryBin} status '${id}' --json | (sleep 1; cat) > ${out}`], { env });
      const { stdout } = await execFileAsync('jq', ['-c', '[(.status.shards // [] | length)]', out], { encoding: 'utf8' });
      const [count] = JSON.parse(stdout) as [number];
      return count > 0 ? ([count, statSync(out).size] as const) : undefined;
    }, 60_000, 'a live status through the pipe');
    expect(shards).toBe(300);
    expect(bytes).toBeGreaterThan(65_536);
    await ferry(['abort', id, '--reason', 'output checked'], worker.temporal);
  });

  it('orders keys kept as text the way people read them', async () => {
    const rows = await sql<{ key: string }>(url, `SELECT key FROM (VALUES ('10'), ('abc'), ('9'), ('-3'), ('100'), ('B'), ('2')) v(key) ORDER BY ${keyOrderSql('key')}`);
    expect(rows.map((r) => r.key)).toEqual(['-3', '2', '9', '10', '100', 'B', 'abc']);
  });
});
