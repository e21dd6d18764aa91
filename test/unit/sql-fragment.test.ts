/** What a plan's SQL fragments may hold: one expression, nothing that could end Ferry's statement. */
import { describe, expect, it } from 'vitest';
import { InvalidPlanError, validatePlan } from '../../lib/plan';
import { sqlFragmentProblem } from '../../lib/sql-fragment';

const basePlan = {
  name: 'fragments',
  source: { connection: 'DB', table: 'src', key: 'id' },
  target: { connection: 'DB', table: 'dst' },
  transform: { sql: { id: 'id' } },
};

describe('SQL fragments from a plan', () => {
  it.each([
    "kind = 'new'",
    "note <> 'it''s'",
    'lower("Name") LIKE $$a(b$$',
    "E'\\\\' = '\\\\'",
    'coalesce((a + b) * 2, 0) > 3',
    'SELECT count(*) FROM pg_stat_activity',
    'a$b > 1',
  ])('takes %s', (text) => {
    expect(sqlFragmentProblem(text)).toBeNull();
  });

  it.each([
    ['SELECT 0; COMMIT; DELETE FROM src; SELECT 0', /a semicolon is not allowed/],
    ["true; ROLLBACK", /a semicolon is not allowed/],
    ["x = ';'", /a semicolon is not allowed/],
    ['true -- \nOR true', /comments/],
    ['true /* hidden */', /comments/],
    ['true) OR (true', /closes a parenthesis/],
    ['(true', /never closes/],
    ["'abc", /never closed/],
    ['"abc', /never closed/],
    ['$x$ abc', /never closed/],
    // Read with backslash escapes the string would end later, and the parenthesis with it.
    ["'\\') OR (true'", /parenthesis/],
    ['a\0b', /NUL/],
  ])('refuses %j', (text, message) => {
    expect(sqlFragmentProblem(text)).toMatch(message);
  });

  it('is part of the plan schema for every fragment, each with its path', () => {
    let error: InvalidPlanError | null = null;
    try {
      validatePlan({
        ...basePlan,
        transform: { sql: { id: 'id', label: 'label; DELETE FROM src' } },
        subset: { where: 'true /* x */' },
        backoff: { probe: { sql: 'SELECT 0; COMMIT', max: 1 } },
      });
    } catch (caught) {
      error = caught as InvalidPlanError;
    }
    expect(error).toBeInstanceOf(InvalidPlanError);
    expect(error!.problems.map((p) => p.path).sort()).toEqual(['backoff.probe.sql', 'subset.where', 'transform.sql.label']);
  });
});
