import { describe, expect, it } from 'vitest';
import { validatePlan } from '../../lib/plan';
import {
  copyOutSql,
  copyIntoTargetSql,
  copySpecOf,
  targetRangeIsClearSql,
  copyWithinDatabaseSql,
  fullBatchEndSql,
  insertIntoClearRangeSql,
  createStagingSql,
  insertFromStagingSql,
  nextBatchBoundSql,
  stagingTableName,
  type CopySpec,
} from '../../activities/copy/copy-statements';

const spec: CopySpec = {
  source: { schema: 'public', table: 'users', key: 'id' },
  target: { schema: 'app', table: 'users_v2', key: 'id' },
  columns: { id: 'id', first_name: "split_part(full_name, ' ', 1)" },
};

const hostile: CopySpec = {
  source: { schema: 'public', table: 'we"ird; DROP TABLE users; --', key: 'the "key"' },
  target: { schema: 'x"y', table: 'target table', key: 'the "key"' },
  columns: { 'the "key"': '"the ""key"""', 'first"name': 'name' },
};

describe('copy statements', () => {
  it('bounds the next batch by walking the key only, with bind parameters', () => {
    expect(nextBatchBoundSql(spec, { after: '41', upTo: '100' }, 500)).toEqual({
      text:
        'SELECT batch.last_key, batch.rows FROM (SELECT s."id"::text AS last_key, row_number() OVER (ORDER BY s."id") AS rows ' +
        'FROM "public"."users" AS s WHERE s."id" > $1 AND s."id" <= $2 ORDER BY s."id" LIMIT $3) AS batch ORDER BY batch.rows DESC LIMIT 1',
      values: ['41', '100', 500],
    });
    expect(nextBatchBoundSql(spec, { after: null, upTo: null }, 10).text).toContain('WHERE true ORDER BY');
  });

  it("finds a full batch's end in one index walk, nothing computed per key", () => {
    expect(fullBatchEndSql(spec, { after: '41', upTo: '100' }, 500)).toEqual({
      text: 'SELECT s."id"::text AS last_key FROM "public"."users" AS s WHERE s."id" > $1 AND s."id" <= $2 ORDER BY s."id" OFFSET 499 LIMIT 1',
      values: ['41', '100'],
    });
  });

  it('copies within one database in one idempotent statement', () => {
    expect(copyWithinDatabaseSql(spec, { after: null, upTo: '1000' })).toEqual({
      text:
        'INSERT INTO "app"."users_v2" AS t ("id", "first_name") ' +
        `SELECT (id) AS "id", (split_part(full_name, ' ', 1)) AS "first_name" FROM "public"."users" AS s ` +
        'WHERE s."id" <= $1 ON CONFLICT ("id") DO NOTHING',
      values: ['1000'],
    });
  });

  it('inserts into a clear range with a plain INSERT ... SELECT: no conflict clause, no tombstone probe', () => {
    expect(insertIntoClearRangeSql({ ...spec, honourTombstones: true }, { after: '10', upTo: '1000' })).toEqual({
      text:
        'INSERT INTO "app"."users_v2" ("id", "first_name") ' +
        `SELECT (id) AS "id", (split_part(full_name, ' ', 1)) AS "first_name" FROM "public"."users" AS s ` +
        'WHERE s."id" > $1 AND s."id" <= $2',
      values: ['10', '1000'],
    });
  });

  it('puts key values into COPY as quoted literals', () => {
    expect(copyOutSql(spec, { after: "it's", upTo: 'z\\' })).toBe(
      `COPY (SELECT (id) AS "id", (split_part(full_name, ' ', 1)) AS "first_name" FROM "public"."users" AS s ` +
        `WHERE s."id" > 'it''s' AND s."id" <=  E'z\\\\') TO STDOUT`,
    );
  });

  it('stages cross-database rows in a temp table that empties on commit', () => {
    const stage = stagingTableName(spec);
    expect(stage).toMatch(/^ferry_stage_[0-9a-f]{16}$/);
    expect(createStagingSql(spec)).toBe(
      `CREATE TEMP TABLE IF NOT EXISTS "${stage}" ON COMMIT DELETE ROWS AS SELECT "id", "first_name" FROM "app"."users_v2" WITH NO DATA`,
    );
    expect(insertFromStagingSql(spec)).toBe(
      `INSERT INTO "app"."users_v2" AS t ("id", "first_name") SELECT st."id", st."first_name" FROM "${stage}" AS st ON CONFLICT ("id") DO NOTHING`,
    );
  });

  it('checks that a range is clear on the target before copying straight into it', () => {
    expect(targetRangeIsClearSql({ ...spec, honourTombstones: true }, { after: '10', upTo: '20' })).toEqual({
      text:
        'SELECT (SELECT t."id" FROM "app"."users_v2" AS t WHERE t."id" > $1 AND t."id" <= $2 ORDER BY t."id" LIMIT 1) IS NULL ' +
        'AND NOT EXISTS (SELECT 1 FROM ferry.tombstones WHERE target_table = $3) AS clear',
      values: ['10', '20', 'app.users_v2'],
    });
    expect(copyIntoTargetSql(spec)).toBe('COPY "app"."users_v2" ("id", "first_name") FROM STDIN');
  });

  it('quotes hostile identifiers so they name objects and never run', () => {
    const { text } = copyWithinDatabaseSql(hostile, { after: '1', upTo: '2' });
    expect(text).toContain('INSERT INTO "x""y"."target table" AS t ("the ""key""", "first""name")');
    expect(text).toContain('FROM "public"."we""ird; DROP TABLE users; --" AS s');
    expect(text).toContain('WHERE s."the ""key""" > $1');
    expect(nextBatchBoundSql(hostile, { after: null, upTo: null }, 1).text).toContain('"we""ird; DROP TABLE users; --"');
  });
});

describe('copy statements under a plan', () => {
  const plan = validatePlan({
    name: 'p',
    source: { connection: 'S', table: 'users', key: 'id' },
    target: { connection: 'T', schema: 'app', table: 'users_v2' },
    transform: { sql: { id: 'id', name: 'upper(name)', updated_at: 'updated_at' } },
    conflict: { policy: 'newer-wins', newerBy: 'updated_at' },
    shards: { partitionColumn: 'tenant' },
    subset: { where: "status <> 'gone'", keyRange: { from: '10', to: "99'" }, samplePercent: 12.5 },
  });

  it('never copies a key with a tombstone, checked in the inserting statement', () => {
    const { text } = copyWithinDatabaseSql(copySpecOf(plan), { after: '1', upTo: '2' });
    expect(text).toContain(
      `NOT EXISTS (SELECT 1 FROM ferry.tombstones AS tomb WHERE tomb.target_table = 'app.users_v2' AND tomb.key = (id)::text)`,
    );
    expect(insertFromStagingSql(copySpecOf(plan))).toContain(`tomb.key = (st."id")::text)`);
  });

  it("lets the newer row win by the plan's version column", () => {
    const { text } = copyWithinDatabaseSql(copySpecOf(plan), { after: null, upTo: null });
    expect(text).toMatch(
      /ON CONFLICT \("id"\) DO UPDATE SET "name" = EXCLUDED."name", "updated_at" = EXCLUDED."updated_at" WHERE t."updated_at" IS NULL OR t."updated_at" < EXCLUDED."updated_at"$/,
    );
  });

  it("limits every statement to the subset and the shard's partition", () => {
    const spec = copySpecOf(plan, "acme's");
    expect(spec.filter).toBe(
      `(status <> 'gone') AND s."id" >= '10' AND s."id" <= '99''' AND abs(hashtext(s."id"::text)::bigint) % 10000 < 1250 AND s."tenant" = 'acme''s'`,
    );
    expect(nextBatchBoundSql(spec, { after: '5', upTo: null }, 10).text).toContain(`WHERE s."id" > $1 AND ((status <> 'gone') AND`);
    expect(copyOutSql(spec, { after: null, upTo: '7' })).toContain(`WHERE s."id" <= '7' AND ((status <> 'gone') AND`);
  });
});
