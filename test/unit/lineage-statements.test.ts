/** With a lineage column, the target side is selected by the source key it holds, and each difference names its group. */
import { describe, expect, it } from 'vitest';
import { copySpecOf, targetRangeIsClearSql } from '../../activities/copy/copy-statements';
import { deleteTargetGroupsSql, diffRows, rowHashesOf, rowsSql, type ColumnType, type VerifyShape } from '../../activities/verify/verify-statements';
import { validatePlan } from '../../lib/plan';

const type = (name: string, base: string): ColumnType => ({ name, type: base, base, category: 'S' });

const shape: VerifyShape = {
  source: { schema: 'public', table: 'customers', key: 'id' },
  target: { schema: 'public', table: 'subscriptions', key: 'id' },
  columns: { id: 'id', customer_id: 'customer_id', plan: 'plan' },
  types: [type('id', 'uuid'), type('customer_id', 'int8'), type('plan', 'text')],
  sourceFilter: null,
  targetFilter: null,
  lineage: 'customer_id',
};

describe('lineage statements', () => {
  it('selects target rows by the lineage column, reads it beside the key, and reads groups whole', () => {
    const query = rowsSql('target', shape, { range: { after: '10', upTo: '20' } }, 'hash');
    expect(query.text).toContain('WHERE t."customer_id" > $1 AND t."customer_id" <= $2 OFFSET 0');
    expect(query.text).toMatch(/^SELECT r\."id"::text, r\."customer_id"::text, md5\(/);
    expect(query.values).toEqual(['10', '20']);
    expect(rowHashesOf([['k1', '12', 'h1', 'h2', null]], shape)).toEqual([{ key: 'k1', lineage: '12', columns: ['h1', 'h2', null] }]);
  });

  it('names the source key of every difference: the source row for missing and value, the target row for extra', () => {
    const names = ['id', 'customer_id', 'plan'];
    const source = [{ key: 'a', lineage: '1', columns: ['a', '1', 'x'] }, { key: 'b', lineage: '2', columns: ['b', '2', 'y'] }];
    const target = [{ key: 'b', lineage: '3', columns: ['b', '3', 'y'] }, { key: 'c', lineage: null, columns: ['c', null, 'z'] }];
    expect(diffRows(names, source, target)).toEqual([
      { key: 'a', category: 'missing', columns: [], sourceKey: '1' },
      { key: 'b', category: 'value', columns: ['customer_id'], sourceKey: '2' },
      { key: 'c', category: 'extra', columns: [], sourceKey: null },
    ]);
  });

  it('deletes only rows of the named groups that they no longer produce', () => {
    expect(deleteTargetGroupsSql(shape.target, 'customer_id', ['1', '2'], ['a'])).toEqual({
      text: `DELETE FROM "public"."subscriptions" AS t WHERE t."customer_id" = ANY($1) AND NOT (t."id"::text = ANY($2::text[])) RETURNING t."id"::text AS key`,
      values: [['1', '2'], ['a']],
    });
  });

  it('the copier looks for a clear range by the lineage column', () => {
    const plan = validatePlan({
      name: 'subs',
      source: { connection: 'S', table: 'customers', key: 'id' },
      target: { connection: 'T', table: 'subscriptions', key: 'id', sourceKey: 'customer_id' },
      transform: { module: './subs.ts', columns: ['id', 'customer_id', 'plan'] },
    });
    expect(targetRangeIsClearSql(copySpecOf(plan), { after: '10', upTo: null }).text).toContain('WHERE t."customer_id" > $1');
  });
});
