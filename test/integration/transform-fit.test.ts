/**
 * The dry run proves the transform fits: sampled output that the target's column types or NOT
 * NULL constraints refuse fails the dry run, naming the column, the expression and the source
 * key, with the value redacted unless --show-values; a SQL error names its column. The test's
 * own SQL proves the target unchanged and Ferry's schema never created.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-fit-'));

describe('the dry run proves the transform fits', () => {
  let sourceUrl: string;
  let otherUrl: string;
  let worker: TestWorker;

  const targetState = (url: string) =>
    sqlRow<{ rows: string; digest: string | null; ferry: boolean }>(
      url,
      `SELECT (SELECT count(*)::text FROM orders_v2) AS rows,
              (SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders_v2 o) AS digest,
              to_regnamespace('ferry') IS NOT NULL AS ferry`,
    );

  const dryRun = async (name: string, target: string, transform: string, flags: string[] = []) => {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      [`name: ${name}`, 'source: { connection: SRC, table: orders, key: id }', `target: { connection: ${target}, table: orders_v2 }`, `transform: ${transform}`].join('\n'),
    );
    const result = await ferry(['start', file, ...flags], worker.temporal);
    return { ...result, output: result.stdout + result.stderr };
  };

  beforeAll(async () => {
    const schema = `
      CREATE TABLE orders_v2 (id int PRIMARY KEY, city_code int, city text NOT NULL, short varchar(3));
      INSERT INTO orders_v2 VALUES (900, 7, 'kept');`;
    sourceUrl = await createTestDatabase('fit_src');
    otherUrl = await createTestDatabase('fit_dst');
    await sql(sourceUrl, `
      CREATE TABLE orders (id int PRIMARY KEY, payload jsonb NOT NULL);
      INSERT INTO orders SELECT i, jsonb_build_object('shipping', jsonb_build_object('city', 'Berlin', 'code', i)) FROM generate_series(1, 20) i;
      ${schema}`);
    await sql(otherUrl, schema);
    worker = await startWorker({ SRC: sourceUrl, DST: otherUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('passes a transform that fits, within one database and across two', async () => {
    for (const target of ['SRC', 'DST']) {
      const result = await dryRun(`fits-${target.toLowerCase()}`, target, "{ sql: { id: id, city_code: \"(payload->'shipping'->>'code')::int\", city: \"payload->'shipping'->>'city'\" } }");
      expect(result.output).toContain('--execute');
      expect(result.code, result.output).toBe(0);
    }
  });

  it('refuses text that is no integer across databases, naming column, expression and key, the value redacted', async () => {
    const before = await targetState(otherUrl);
    const transform = "{ sql: { id: id, city_code: \"payload->'shipping'->>'city'\", city: \"payload->'shipping'->>'city'\" } }";
    const result = await dryRun('no-int', 'DST', transform);
    expect(result.code, result.output).toBe(ExitCode.failed);
    expect(result.output).toContain('target column "city_code" (integer)');
    expect(result.output).toContain("transform.sql.city_code = payload->'shipping'->>'city'");
    expect(result.output).toContain('source key 1');
    expect(result.output).toContain('invalid input syntax for type integer');
    expect(result.output).not.toContain('Berlin');
    expect(result.output).not.toContain('to copy for real');

    const shown = await dryRun('no-int-shown', 'DST', transform, ['--show-values']);
    expect(shown.code, shown.output).toBe(ExitCode.failed);
    expect(shown.output).toContain('invalid input syntax for type integer: "Berlin"');

    expect(await targetState(otherUrl)).toEqual(before);
    expect(before.ferry).toBe(false);
  });

  it('refuses text into an integer column within one database, naming column and expression', async () => {
    const before = await targetState(sourceUrl);
    const result = await dryRun('no-int-same', 'SRC', "{ sql: { id: id, city_code: \"payload->'shipping'->>'city'\", city: \"payload->'shipping'->>'city'\" } }");
    expect(result.code, result.output).toBe(ExitCode.failed);
    expect(result.output).toContain("transform.sql.city_code = payload->'shipping'->>'city' does not fit target column \"city_code\"");
    expect(result.output).toContain('is of type integer but expression is of type text');
    expect(result.output).not.toContain('to copy for real');
    expect(await targetState(sourceUrl)).toEqual(before);
    expect(before.ferry).toBe(false);
  });

  it('refuses a NULL into a NOT NULL column', async () => {
    const before = await targetState(otherUrl);
    const result = await dryRun('null-city', 'DST', "{ sql: { id: id, city: \"payload->'billing'->>'city'\" } }");
    expect(result.code, result.output).toBe(ExitCode.failed);
    expect(result.output).toContain('target column "city" (text)');
    expect(result.output).toContain('source key 1');
    expect(result.output).toContain('NOT NULL');
    expect(await targetState(otherUrl)).toEqual(before);
  });

  it('refuses a string longer than a varchar column takes, where an explicit cast would cut it', async () => {
    const result = await dryRun('too-long', 'DST', "{ sql: { id: id, city: \"payload->'shipping'->>'city'\", short: \"payload->'shipping'->>'city'\" } }");
    expect(result.code, result.output).toBe(ExitCode.failed);
    expect(result.output).toContain('target column "short" (character varying(3))');
    expect(result.output).toContain('value too long for type character varying(3)');
  });

  it('names the column whose expression has a syntax error', async () => {
    const result = await dryRun('syntax', 'DST', "{ sql: { id: id, city: \"payload->'shipping'->>'city'\", city_code: 'length(payload::text) payload payload' } }");
    expect(result.code, result.output).toBe(ExitCode.failed);
    expect(result.output).toContain('transform.sql.city_code = length(payload::text) payload payload does not run: syntax error');
    expect(result.output).not.toContain('transform.sql.city =');
  });

  it('checks a module transform\'s output the same way', async () => {
    writeFileSync(path.join(dir, 'fit-module.ts'), "export default (row: { id: number }) => ({ id: row.id, city_code: 'x' + row.id, city: 'c' });");
    const before = await targetState(otherUrl);
    const file = path.join(dir, 'module.yaml');
    writeFileSync(file, ['name: module-fit', 'source: { connection: SRC, table: orders, key: id }', 'target: { connection: DST, table: orders_v2 }', `transform: { module: ${path.join(dir, 'fit-module.ts')}, columns: [id, city_code, city] }`].join('\n'));
    const moduleWorker = await startWorker({ SRC: sourceUrl, DST: otherUrl }, { transformDir: dir });
    try {
      const result = await ferry(['start', file], moduleWorker.temporal);
      const output = result.stdout + result.stderr;
      expect(result.code, output).toBe(ExitCode.failed);
      expect(output).toContain('target column "city_code" (integer)');
      expect(output).toContain('source key 1');
    } finally {
      await moduleWorker.stop();
    }
    expect(await targetState(otherUrl)).toEqual(before);
  });
});
