/**
 * A target whose key is not unique (its unique index dropped after the migration) can hold a row
 * twice: the chunk's count differs, and the row-by-row comparison must say so (an extra row of
 * that key) rather than match both copies to the one source row and call the chunk equal.
 * Proved by the test's own md5 of each key's rows on both sides.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema, type Mismatch } from '../../activities/state/ferry-schema';
import { createVerifier, type VerifyShardResult } from '../../activities/verify/verifier';
import { wholeKeySpace } from '../../lib/key-range';
import { validatePlan, type Plan, type PlanInput } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase, sql } from '../support/harness';

/** Each key's rows, as one md5 of their texts in order: a row held twice changes it. */
const KEY_ROWS = `SELECT id::text AS id, md5(string_agg(ROW(id, name)::text, '|' ORDER BY ROW(id, name)::text)) AS hash FROM items GROUP BY id`;

async function differingKeys(sourceUrl: string, targetUrl: string): Promise<string[]> {
  const [s, t] = await Promise.all([sourceUrl, targetUrl].map(async (url) => new Map((await sql<{ id: string; hash: string }>(url, KEY_ROWS)).map((r) => [r.id, r.hash]))));
  return [...new Set([...s!.keys(), ...t!.keys()])].filter((k) => s!.get(k) !== t!.get(k)).sort((a, b) => Number(a) - Number(b));
}

describe('a key the target holds twice', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let databases: Databases;
  let dir: string;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('repeated_src'), createTestDatabase('repeated_tgt')]);
    const rows = `INSERT INTO items SELECT g, 'name ' || g FROM generate_series(1, 30) AS g`;
    await sql(sourceUrl, `CREATE TABLE items (id int8 PRIMARY KEY, name text); ${rows}`);
    await sql(targetUrl, `CREATE TABLE items (id int8 PRIMARY KEY, name text); ${rows}; ALTER TABLE items DROP CONSTRAINT items_pkey; CREATE INDEX ON items (id);`);
    databases = createDatabases({ env: { SOURCE_URL: sourceUrl, TARGET_URL: targetUrl } });
    await installFerrySchema(databases.pool('TARGET_URL'));
    dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-repeated-'));
    writeFileSync(path.join(dir, 'transform.ts'), `export default (row: Record<string, unknown>) => row;`);
  });
  afterAll(async () => {
    await databases?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const plan = (name: string, transform: PlanInput['transform']): Plan =>
    validatePlan({ name, source: { connection: 'SOURCE_URL', table: 'items', key: 'id' }, target: { connection: 'TARGET_URL', table: 'items' }, transform });

  async function verify(p: Plan, migrationId: string): Promise<Mismatch[]> {
    const verifier = createVerifier(databases);
    const result: VerifyShardResult = await runActivity(verifier.verifyShard, {
      migrationId,
      plan: p,
      pass: 1,
      chunkSize: 10,
      inFlightDelayMs: 10,
      shard: { range: wholeKeySpace, partitionValue: null },
      cursor: null,
      maxSeconds: 60,
    });
    expect(result.done).toBe(true);
    return result.examples;
  }

  it('is an extra row, through a SQL and a module transform, whether the copies are equal or not', async () => {
    // Key 12 twice, equal; key 25 twice, once changed; key 40 twice, not in the source at all.
    await sql(targetUrl, `INSERT INTO items VALUES (12, 'name 12'), (25, 'changed'), (40, 'stray'), (40, 'stray')`);
    expect(await differingKeys(sourceUrl, targetUrl)).toEqual(['12', '25', '40']);
    const expected: Mismatch[] = [
      { key: '12', category: 'extra', columns: [] },
      { key: '25', category: 'extra', columns: [] },
      { key: '40', category: 'extra', columns: [] },
    ];
    expect(await verify(plan('repeated-sql', { sql: { id: 'id', name: 'name' } }), 'repeated-sql')).toEqual(expected);
    expect(await verify(plan('repeated-module', { module: path.join(dir, 'transform.ts'), columns: ['id', 'name'] }), 'repeated-module')).toEqual(expected);
  });
});
