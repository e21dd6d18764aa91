/** Bad input, one row each: a clear message naming the problem, a script-friendly exit code, no side effect. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bad-'));
const planFile = (name: string, text: string) => {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, text);
  return file;
};
const plan = (overrides: Record<string, string> = {}) => {
  const fields = {
    name: 'bad-input',
    source: '{ connection: DB, table: items, key: id }',
    target: '{ connection: DB, table: items_v2 }',
    transform: '{ sql: { id: id, label: label } }',
    ...overrides,
  };
  return Object.entries(fields).map(([k, v]) => `${k}: ${v}`).join('\n');
};

describe('bad input', () => {
  let url: string;
  let worker: TestWorker;
  const fingerprint = () =>
    sqlRow(url, `SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)::int AS relations,
                        (SELECT count(*) FROM items_v2)::int AS target_rows,
                        (SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry')::int AS ferry_schema`);

  beforeAll(async () => {
    url = await createTestDatabase('bad_input');
    await sql(url, `
      CREATE TABLE items (id int PRIMARY KEY, label text, not_unique int);
      INSERT INTO items SELECT i, 'item ' || i, i % 3 FROM generate_series(1, 100) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, label text);`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it.each([
    ['malformed YAML', 'name: [oops\nsource: {', ExitCode.badInput, 'YAML:'],
    ['an unknown key', `${plan()}\nspeed: 11`, ExitCode.badInput, 'speed: is not a known setting'],
    ['a connection string in the plan', plan({ source: "{ connection: 'postgresql://u:pw@h/db', table: items, key: id }" }), ExitCode.badInput, 'source.connection: looks like a connection string'],
    ['source and target the same table', plan({ target: '{ connection: DB, table: items }' }), ExitCode.badInput, 'target.table: is the source table itself'],
    ['a throttle out of bounds', `${plan()}\nthrottle: { batchSize: 0, concurrency: 100 }`, ExitCode.badInput, 'throttle.batchSize'],
    ['a key that is not a column', plan({ source: '{ connection: DB, table: items, key: nope }', target: '{ connection: DB, table: items_v2, key: id }' }), ExitCode.failed, 'source key column "nope" is not a column of public.items'],
    ['a key that is not unique', plan({ source: '{ connection: DB, table: items, key: not_unique }', transform: '{ sql: { id: not_unique, label: label } }', target: '{ connection: DB, table: items_v2, key: id }' }), ExitCode.failed, 'has no unique index on it alone'],
    ['a transform that does not parse', plan({ transform: "{ sql: { id: id, label: 'upper(label) label label' } }" }), ExitCode.failed, 'transform does not run on public.items: syntax error'],
    ['a transform that could end the statement', plan({ transform: "{ sql: { id: id, label: 'upper(label' } }" }), ExitCode.badInput, 'transform.sql.label: opens a parenthesis it never closes'],
    ['stacked statements in subset.where', `${plan()}\nsubset: { where: 'true; DELETE FROM items' }`, ExitCode.badInput, 'subset.where: must be one SQL expression'],
    ['a transform column the target lacks', plan({ transform: '{ sql: { id: id, colour: label } }' }), ExitCode.failed, 'transform column "colour" is not a column of public.items_v2'],
    ['a missing target table', plan({ target: '{ connection: DB, table: nowhere }' }), ExitCode.failed, 'target table public.nowhere does not exist'],
    ['a table name with SQL in it', plan({ source: `{ connection: DB, table: 'items; DROP TABLE items_v2; --', key: id }` }), ExitCode.failed, 'source table public.items; DROP TABLE items_v2; -- does not exist'],
  ])('%s', async (_, text, code, message) => {
    const before = await fingerprint();
    const result = await ferry(['start', planFile(_.replace(/\W+/g, '-'), text), '--execute', '--wait'], worker.temporal);
    expect(result.code, result.stdout + result.stderr).toBe(code);
    expect(result.stdout + result.stderr).toContain(message);
    expect(await fingerprint()).toEqual(before);
  });

  it.each([
    ['status'], ['failures'], ['report'], ['pause'], ['resume'], ['retry'],
    ['throttle', '--rows-per-second', '10'], ['approve', '--gate', 'cleanup', '--by', 'x'], ['abort', '--reason', 'x'], ['reject', '--gate', 'cleanup', '--by', 'x', '--reason', 'x'],
  ])('names an unknown migration id: ferry %s', async (command, ...flags) => {
    const result = await ferry([command, 'ferry/no-such/1', ...flags], worker.temporal);
    expect(result.code).toBe(ExitCode.unknownMigration);
    expect(result.stderr).toContain('no migration with id "ferry/no-such/1"');
  });

  it('names a connection variable the worker does not have', async () => {
    const result = await ferry(['start', planFile('no-env', plan({ target: '{ connection: NOT_SET_ANYWHERE, table: items_v2 }' })), '--execute', '--wait'], worker.temporal);
    expect(result.code).toBe(ExitCode.failed);
    expect(result.stdout).toContain('environment variable NOT_SET_ANYWHERE is not set on this worker');
  });
});
