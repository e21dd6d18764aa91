/**
 * The worker's log: JSON lines with a level, a time, and the migration and shard they are about
 * (into a pipe, or with FERRY_LOG_FORMAT=json), readable lines with FERRY_LOG_FORMAT=pretty, and
 * a clear refusal of a setting it does not know.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, uniqueName } from '../support/harness';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const ferryBin = path.join(__dirname, '..', '..', 'bin', 'ferry.js');

describe('the worker log', () => {
  let url: string;
  let worker: WorkerProcess;
  const temporal = () => ({ address: inject('temporalAddress'), namespace: 'default', taskQueue });
  const taskQueue = uniqueName('logs');

  beforeAll(async () => {
    url = await createTestDatabase('logs');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, secret_label text NOT NULL);
      INSERT INTO items SELECT i, 'hunter2-' || i FROM generate_series(1, 300) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, secret_label text NOT NULL);`);
    worker = await startWorkerProcess(temporal(), { LOGS_DB: url, FERRY_LOG_LEVEL: 'debug' });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('is JSON lines with level, time, migration and shard, and no row values', async () => {
    const plan = path.join(mkdtempSync(path.join(os.tmpdir(), 'ferry-logs-')), 'plan.yaml');
    writeFileSync(plan, 'name: logs\nsource: { connection: LOGS_DB, table: items, key: id }\ntarget: { connection: LOGS_DB, table: items_v2 }\ntransform: { sql: { id: id, secret_label: secret_label } }\nshards: { count: 2 }\n');
    const run = await ferry(['start', plan, '--execute', '--wait', '--id', 'ferry/logs/run-1'], temporal());
    expect(run.code).toBe(ExitCode.ok);
    await worker.stop();
    const lines = worker.output().split('\n').filter((line) => line.trim() !== '');
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const entry of entries) {
      expect(['trace', 'debug', 'info', 'warn', 'error']).toContain(entry.level);
      expect(entry.time).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(typeof entry.msg).toBe('string');
    }
    const about = entries.filter((e) => e.migration === 'ferry/logs/run-1');
    expect(about.length).toBeGreaterThan(0);
    expect(new Set(about.filter((e) => e.shard !== undefined).map((e) => e.shard))).toEqual(new Set([0, 1]));
    expect(worker.output()).not.toContain('hunter2');
  });

  it('is readable lines with FERRY_LOG_FORMAT=pretty, and refuses a level it does not know', async () => {
    const pretty = await startWorkerProcess({ ...temporal(), taskQueue: uniqueName('pretty') }, { FERRY_LOG_FORMAT: 'pretty' });
    await pretty.stop();
    const first = pretty.output().split('\n').find((line) => line.includes('Worker state changed'))!;
    expect(first).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Worker state changed/);
    const refused = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [ferryBin, 'worker'], { env: { ...process.env, FERRY_LOG_LEVEL: 'loud', TEMPORAL_ADDRESS: inject('temporalAddress') } }, (error, _stdout, stderr) =>
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stderr }),
      ),
    );
    expect(refused.code).toBe(ExitCode.badInput);
    expect(refused.stderr).toContain('FERRY_LOG_LEVEL must be one of TRACE, DEBUG, INFO, WARN, ERROR, not "loud"');
  });
});
