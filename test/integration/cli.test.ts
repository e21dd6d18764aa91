/** The ferry CLI against real servers: dry runs, bad plans, status, exit codes. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const planDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-plans-'));

function writePlan(name: string, text: string): string {
  const file = path.join(planDir, `${name}.yaml`);
  writeFileSync(file, text);
  return file;
}

const goodPlan = `
name: split-names
source: { connection: APP_DB, table: people, key: id }
target: { connection: APP_DB, table: people_v2 }
transform:
  sql:
    id: id
    first_name: split_part(full_name, ' ', 1)
    last_name: split_part(full_name, ' ', 2)
`;

/** Everything that could change when something writes: tables, and rows in every user table. */
const databaseFingerprint = `
  SELECT (SELECT count(*) FROM pg_class WHERE relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))::int AS relations,
         (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables)::int AS row_changes,
         (SELECT count(*) FROM people_v2)::int AS target_rows`;

describe('ferry CLI', () => {
  let databaseUrl: string;
  let worker: TestWorker;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase('cli');
    await sql(databaseUrl, `
      CREATE TABLE people (id int PRIMARY KEY, full_name text NOT NULL);
      INSERT INTO people SELECT i, 'Person ' || i FROM generate_series(1, 500) i;
      CREATE TABLE people_v2 (id int PRIMARY KEY, first_name text NOT NULL, last_name text);
      CREATE TABLE not_unique (id int, full_name text);`);
    worker = await startWorker({ APP_DB: databaseUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('dry-runs a plan: inspects, shows the transform on a sample, writes nothing', async () => {
    const before = await sqlRow(databaseUrl, databaseFingerprint);
    const result = await ferry(['start', writePlan('good', goodPlan)], worker.temporal);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(ExitCode.ok);
    expect(result.stdout).toContain('nothing is written');
    expect(result.stdout).toMatch(/source\s+public\.people: 500 rows/);
    expect(result.stdout).toMatch(/first_name\s+last_name/);
    expect(result.stdout).toContain('<6 chars>'); // "Person", redacted by default
    expect(result.stdout).not.toContain('Person');
    expect(result.stdout).toContain('--execute');
    // pg_stat counters are flushed lazily; give them a moment before comparing.
    await sql(databaseUrl, 'SELECT pg_stat_force_next_flush()');
    expect(await sqlRow(databaseUrl, databaseFingerprint)).toEqual(before);
  });

  it('shows real sample values only when asked', async () => {
    const result = await ferry(['start', writePlan('good', goodPlan), '--show-values'], worker.temporal);
    expect(result.code).toBe(ExitCode.ok);
    expect(result.stdout).toMatch(/Person\s+1/);
  });

  it('refuses a malformed plan naming every problem, and starts nothing', async () => {
    const file = writePlan(
      'bad',
      `
name: Bad Plan
source: { connection: 'postgres://app:hunter2@db/prod', table: people, key: id, colour: red }
target: { connection: APP_DB }
transform: { sql: { first_name: full_name } }
`,
    );
    const result = await ferry(['start', file, '--execute'], worker.temporal);
    expect(result.code).toBe(ExitCode.badInput);
    expect(result.stdout).toBe('');
    for (const expected of [
      'name: must be lower-case',
      'source.connection: looks like a connection string',
      'source.colour: is not a known setting',
      'target.table: is required',
      'transform.sql: must produce the target key column "id"',
    ]) {
      expect(result.stderr).toContain(expected);
    }
    expect(result.stderr).not.toContain('hunter2');
    const started = [];
    for await (const run of worker.client.workflow.list({ query: `TaskQueue = '${worker.temporal.taskQueue}' AND WorkflowId STARTS_WITH 'ferry/bad'` })) {
      started.push(run);
    }
    expect(started).toEqual([]);
  });

  it('reports problems the database reveals, and refuses to execute', async () => {
    const file = writePlan('not-unique', goodPlan.replace('table: people,', 'table: not_unique,'));
    const dryRun = await ferry(['start', file], worker.temporal);
    expect(dryRun.code).toBe(ExitCode.failed);
    expect(dryRun.stdout).toContain('problem: source key column "id" has no unique index');

    const executed = await ferry(['start', file, '--execute', '--wait'], worker.temporal);
    expect(executed.code).toBe(ExitCode.failed);
    expect(executed.stdout).toContain('no unique index');
    const { target_rows } = await sqlRow(databaseUrl, 'SELECT count(*)::int AS target_rows FROM people_v2');
    expect(target_rows).toBe(0);
  });

  it('executes, then reports status by id', async () => {
    const started = await ferry(['start', writePlan('good', goodPlan), '--execute', '--id', 'ferry/split-names/cli-test', '--wait'], worker.temporal);
    expect(started.code).toBe(ExitCode.ok);
    expect(started.stdout).toContain('started migration ferry/split-names/cli-test');

    const status = await ferry(['status', 'ferry/split-names/cli-test'], worker.temporal);
    expect(status.code).toBe(ExitCode.ok);
    expect(status.stdout).toContain('phase     completed');
    expect(status.stdout).toContain('500 read, 500 written');

    const json = await ferry(['status', 'ferry/split-names/cli-test', '--json'], worker.temporal);
    expect(JSON.parse(json.stdout)).toMatchObject({ runState: 'completed', status: { phase: 'completed', rowsWritten: 500 } });
    const { target_rows } = await sqlRow(databaseUrl, 'SELECT count(*)::int AS target_rows FROM people_v2');
    expect(target_rows).toBe(500);
  });

  it('names an unknown migration id', async () => {
    const result = await ferry(['status', 'ferry/nope/1'], worker.temporal);
    expect(result.code).toBe(ExitCode.unknownMigration);
    expect(result.stderr).toContain('no migration with id "ferry/nope/1"');
  });

  it('explains usage errors and an unreadable plan file with exit code 2', async () => {
    expect((await ferry(['start'], worker.temporal)).code).toBe(ExitCode.badInput);
    const missing = await ferry(['start', path.join(planDir, 'missing.yaml')], worker.temporal);
    expect(missing.code).toBe(ExitCode.badInput);
    expect(missing.stderr).toContain('cannot read plan file');
    const help = await ferry(['start', '--help'], worker.temporal);
    expect(help.code).toBe(ExitCode.ok);
    expect(help.stdout).toContain('--execute');
  });

  it('says when Temporal cannot be reached', async () => {
    const result = await ferry(['status', 'x', '--address', '127.0.0.1:1'], worker.temporal);
    expect(result.code).toBe(ExitCode.unreachable);
    expect(result.stderr).toContain('cannot reach Temporal at 127.0.0.1:1');
  });
});
