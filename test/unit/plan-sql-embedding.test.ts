/** A plan's SQL enters Ferry's statements only through planSql: text that could end a statement is refused where it is embedded. */
import { describe, expect, it } from 'vitest';
import { copyOutSql, copyWithinDatabaseSql, sampleSql, type CopySpec } from '../../activities/copy/copy-statements';
import { chunkChecksumSql, type VerifyShape } from '../../activities/verify/verify-statements';

const hostile: CopySpec = {
  source: { schema: 'public', table: 'users', key: 'id' },
  target: { schema: 'app', table: 'users_v2', key: 'id' },
  columns: { id: 'id', name: "name) FROM users; DELETE FROM users; SELECT (1" },
};

describe("a plan's SQL in Ferry's statements", () => {
  it('is refused, naming the plan path, by every statement that would carry it', () => {
    const refusal = /the plan's SQL is refused: transform\.sql\.name must be one SQL expression/;
    expect(() => copyWithinDatabaseSql(hostile, { after: null, upTo: null })).toThrow(refusal);
    expect(() => copyOutSql(hostile, { after: null, upTo: null })).toThrow(refusal);
    expect(() => sampleSql(hostile, 5)).toThrow(refusal);
    const shape: VerifyShape = {
      source: hostile.source,
      target: hostile.target,
      columns: hostile.columns,
      types: [
        { name: 'id', type: 'integer', base: 'int4', category: 'N' },
        { name: 'name', type: 'text', base: 'text', category: 'S' },
      ],
      sourceFilter: null,
      targetFilter: null,
    };
    expect(() => chunkChecksumSql('source', shape, {})).toThrow(refusal);
    // The target side carries no plan SQL.
    expect(chunkChecksumSql('target', shape, {}).text).toContain('FROM "app"."users_v2" AS t');
  });
});
