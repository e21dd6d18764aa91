import { describe, expect, it } from 'vitest';
import { reachedBySql, scopeCountSql, unreachedKeysSql } from '../../activities/verify/coverage-statements';
import { coverageOf, splitAtBounds, type ShardSpec } from '../../lib/key-range';

const table = { schema: 'app', table: 'we"ird', key: 'the "key"' };

describe('coverage of shards', () => {
  it('joins chained key ranges into the whole key space', () => {
    const shards: ShardSpec[] = splitAtBounds(['10', '20']).map((range) => ({ range, partitionValue: null }));
    expect(coverageOf(shards)).toEqual([{ partitionValue: null, ranges: [{ after: null, upTo: null }] }]);
  });

  it('keeps gaps, and partitions apart', () => {
    expect(
      coverageOf([
        { range: { after: null, upTo: '10' }, partitionValue: null },
        { range: { after: '20', upTo: null }, partitionValue: null },
        { range: { after: null, upTo: null }, partitionValue: 'a' },
      ]),
    ).toEqual([
      { partitionValue: null, ranges: [{ after: null, upTo: '10' }, { after: '20', upTo: null }] },
      { partitionValue: 'a', ranges: [{ after: null, upTo: null }] },
    ]);
  });

  it('builds a reach condition with quoted values, NULL keys reached by none', () => {
    const reached = reachedBySql(
      [
        { range: { after: null, upTo: null }, partitionValue: "o'hara" },
        { range: { after: null, upTo: null }, partitionValue: 'b' },
      ],
      's."the ""key"""',
      's.tenant',
    );
    expect(reached).toBe(`((s.tenant) IN ('o''hara', 'b') AND s."the ""key""" IS NOT NULL)`);
    const part = reachedBySql([{ range: { after: null, upTo: '5' }, partitionValue: 'a' }], 's.k', 's.tenant');
    expect(part).toBe(`((s.tenant) = 'a' AND ((s.k IS NOT NULL AND s.k <= '5')))`);
    expect(reachedBySql([], 's.k', null)).toBe('false');
    expect(reachedBySql([{ range: { after: '1', upTo: '9' }, partitionValue: null }], 's.k', null)).toBe(`((s.k IS NOT NULL AND s.k > '1' AND s.k <= '9'))`);
  });

  it('counts the scope and what is reached in one statement, and pages the rest by key', () => {
    expect(scopeCountSql(table, 's.x > 1', 'R')).toBe(
      `SELECT count(*)::text AS scope, (count(*) FILTER (WHERE R))::text AS reached, (count(*) FILTER (WHERE s."the ""key""" IS NULL))::text AS null_keys ` +
        `FROM "app"."we""ird" AS s WHERE s.x > 1`,
    );
    expect(unreachedKeysSql(table, null, 'R', '5', 100)).toEqual({
      text: `SELECT s."the ""key"""::text AS key FROM "app"."we""ird" AS s WHERE s."the ""key""" IS NOT NULL AND NOT (R) AND s."the ""key""" > $1 ORDER BY s."the ""key""" LIMIT $2`,
      values: ['5', 100],
    });
  });
});
