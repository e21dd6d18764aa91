/**
 * `ferry start --execute` says "started" only of a run that passed its inspection and claimed
 * its target; one that fails there gets its reason and exit 1, and `--detach` returns at once.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-start-'));

function plan(name: string, target: string): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, `name: ${name}\nsource: { connection: START_DB, table: items, key: id }\ntarget: { connection: START_DB, table: ${target} }\ntransform: { sql: { id: id, label: label } }\n`);
  return file;
}

describe('ferry start --execute', () => {
  let worker: TestWorker;

  beforeAll(async () => {
    const url = await createTestDatabase('start');
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
});
