/**
 * Every numbered migration of Ferry's own schema, in order. To change Ferry's tables, add a file
 * NNN-what-it-does.ts exporting one FerrySchemaMigration and append it to the list below; never
 * edit one that was released, since databases already at its version will not run it again.
 */
import { layout } from './001-layout';
import { copyLedger } from './002-copy-ledger';
import { repairLedger } from './003-repair-ledger';
import { applyTurns } from './004-apply-turns';
import type { FerrySchemaMigration } from './migration';

export type { FerrySchemaMigration } from './migration';
export { COPY_LOCK_CLASS } from './001-layout';

export const FERRY_SCHEMA_MIGRATIONS: readonly FerrySchemaMigration[] = [layout, copyLedger, repairLedger, applyTurns];

/** The schema version this build of Ferry installs and knows: its newest migration's number. */
export const FERRY_SCHEMA_VERSION = FERRY_SCHEMA_MIGRATIONS[FERRY_SCHEMA_MIGRATIONS.length - 1]!.version;

/** Versions must run 1, 2, 3, ... with no gap nor repeat; a slip here is a build error, caught by the unit test. */
export function migrationListProblem(migrations: readonly FerrySchemaMigration[]): string | null {
  for (const [index, migration] of migrations.entries()) {
    if (migration.version !== index + 1) {
      return `migration "${migration.name}" is number ${migration.version} at position ${index + 1}: versions must run 1, 2, 3, ... in order`;
    }
  }
  return null;
}
