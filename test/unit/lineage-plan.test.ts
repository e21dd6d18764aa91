/** Plans whose target rows are not one per source key must say where each row came from. */
import { describe, expect, it } from 'vitest';
import { InvalidPlanError, lineageColumn, parsePlan } from '../../lib/plan';

const oneToMany = (target: string, extra = '', sourceKey = 'customer_key') => `
name: subscriptions
source: { connection: SOURCE_URL, table: customers, key: ${sourceKey} }
target: { connection: TARGET_URL, table: subscriptions, ${target} }
transform:
  module: ./subscriptions.ts
  columns: [id, customer_id, plan, status]
${extra}`;

function problemsOf(text: string) {
  try {
    parsePlan(text);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidPlanError);
    return (error as InvalidPlanError).problems;
  }
  throw new Error('plan was accepted');
}

describe('lineage in a plan', () => {
  it('accepts a module transform with another target key when target.sourceKey names the source key column', () => {
    const plan = parsePlan(oneToMany('key: id, sourceKey: customer_id'));
    expect(lineageColumn(plan)).toBe('customer_id');
  });

  it('refuses a module transform with another target key and no target.sourceKey, saying what to set', () => {
    expect(problemsOf(oneToMany('key: id'))).toEqual([
      {
        path: 'target.sourceKey',
        message: expect.stringMatching(/^is required with a module transform whose target key \("id"\) is not the source key \("customer_key"\).*set target.sourceKey/),
      },
    ]);
  });

  it('refuses a target.sourceKey the transform does not produce', () => {
    expect(problemsOf(oneToMany('key: id, sourceKey: owner'))).toEqual([
      { path: 'target.sourceKey', message: expect.stringContaining('must be a column the transform produces ("owner" is not)') },
    ]);
  });

  it('with SQL: the target key must be the source key column itself, or target.sourceKey must name it', () => {
    const sql = (key: string, extra: string) => `
name: renamed
source: { connection: SOURCE_URL, table: users, key: id }
target: { connection: TARGET_URL, table: users_v2, key: ${key} ${extra} }
transform: { sql: { user_id: id, code: "'u' || id", name: name } }`;
    expect(() => parsePlan(sql('user_id', ''))).not.toThrow();
    expect(problemsOf(sql('code', ''))).toEqual([{ path: 'target.sourceKey', message: expect.stringContaining('is not the source key "id" itself') }]);
    expect(lineageColumn(parsePlan(sql('code', ', sourceKey: user_id')))).toBe('user_id');
    expect(problemsOf(sql('user_id', ', sourceKey: code'))).toEqual([
      { path: 'transform.sql.code', message: expect.stringContaining('must be the source key column "id" itself') },
    ]);
  });

  it('does not ask for lineage when the plan is not verified', () => {
    expect(() => parsePlan(oneToMany('key: id', 'verify: { enabled: false }'))).not.toThrow();
    // The same key name on both sides is one row per source key, as before.
    expect(() => parsePlan(oneToMany('key: id', '', 'id'))).not.toThrow();
  });
});
