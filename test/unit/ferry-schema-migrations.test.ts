/** The list of Ferry's schema migrations (applying them: test/integration/ferry-schema-version.test.ts). */
import { describe, expect, it } from 'vitest';
import { FERRY_SCHEMA_MIGRATIONS, FERRY_SCHEMA_VERSION, migrationListProblem } from '../../activities/state/schema-migrations';

describe("Ferry's schema migrations", () => {
  it('are numbered 1, 2, 3, ... with the newest as the version this build knows', () => {
    expect(migrationListProblem(FERRY_SCHEMA_MIGRATIONS)).toBeNull();
    expect(FERRY_SCHEMA_VERSION).toBe(FERRY_SCHEMA_MIGRATIONS.length);
  });

  it('refuse a gap or a repeat in the numbers', () => {
    const [first] = FERRY_SCHEMA_MIGRATIONS;
    expect(migrationListProblem([first!, { version: 3, name: 'gap', sql: 'SELECT 1' }])).toBe(
      'migration "gap" is number 3 at position 2: versions must run 1, 2, 3, ... in order',
    );
    expect(migrationListProblem([first!, first!])).toMatch(/"layout" is number 1 at position 2/);
  });

  it('keep migration 001 runnable over any install from before versions', () => {
    // Every statement of 001 must fit over tables an older script made: nothing that fails when it exists.
    const statements = FERRY_SCHEMA_MIGRATIONS[0]!.sql.match(/^\s*(CREATE|ALTER|DROP)\b[^\n]*/gm) ?? [];
    expect(statements.length).toBeGreaterThan(10);
    for (const statement of statements) {
      expect(statement).toMatch(/IF NOT EXISTS|IF EXISTS|OR REPLACE|CREATE TRIGGER/);
    }
  });
});
