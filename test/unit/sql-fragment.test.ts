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
    // Transaction-level locks end with the transaction; names in strings or not called are no calls.
    'pg_try_advisory_xact_lock(42)',
    "note = 'pg_advisory_lock(1)' AND $$dblink(x)$$ <> note",
    '"dblink" IS NOT NULL AND s.lo_export > 0',
    "nextval('seq') > 0",
    'a$1 > "$1" AND note <> \'$1\'',
    "set_config('timezone', 'UTC', true) IS NOT NULL",
    "pg_catalog.set_config('search_path', concat('a', ','), TRUE) <> ''",
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
    // Each acts outside the transaction, so a rolled-back READ ONLY one neither refuses nor undoes it.
    ["pg_create_physical_replication_slot('s') IS NOT NULL", /calls pg_create_physical_replication_slot\(\)/],
    ["pg_drop_replication_slot('ferry_capture') IS NULL", /calls pg_drop_replication_slot\(\)/],
    ['"pg_catalog".pg_advisory_lock(42) IS NOT NULL', /calls pg_advisory_lock\(\)/],
    ['pg_catalog."pg_try_advisory_lock_shared" (42)', /calls pg_try_advisory_lock_shared\(\)/],
    ['PG_TERMINATE_BACKEND (pg_backend_pid())', /calls pg_terminate_backend\(\)/],
    ["dblink_exec('dbname=x', 'DELETE FROM src') = 'x'", /calls dblink_exec\(\)/],
    ["pg_background_launch('DELETE FROM src') > 0", /calls pg_background_launch\(\)/],
    ["(xpath('/x', query_to_xml('SELECT 1', true, false, '')))[1] IS NOT NULL", /calls query_to_xml\(\)/],
    ["E'\\'' || ts_stat('SELECT 1') IS NULL", /calls ts_stat\(\)/],
    ["pg_logical_emit_message(false, 'x', 'y') IS NOT NULL", /calls pg_logical_emit_message\(\)/],
    ["lo_export(1, '/tmp/x') = 1", /calls lo_export\(\)/],
    ['pg_stat_reset() IS NULL', /calls pg_stat_reset\(\)/],
    ['U&"pg_advisory\\005flock"(42) IS NOT NULL', /Unicode-escaped identifiers/],
    ["note || coalesce($1::text, '')", /bind parameter/],
    ['id > $12', /bind parameter/],
    // A session setting outlives a committed copy on its pooled connection, under Ferry's own.
    ["set_config('extra_float_digits', '-15', false) IS NOT NULL", /calls set_config\(\) for the session/],
    ["set_config('datestyle', 'SQL, DMY', id > 0) IS NOT NULL", /calls set_config\(\) for the session/],
    ["set_config('timezone', 'UTC', true or false) IS NOT NULL", /calls set_config\(\) for the session/],
    ['"set_config"(note, note) IS NOT NULL', /calls set_config\(\) for the session/],
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
