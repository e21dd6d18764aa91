/** The shape of one numbered migration of Ferry's own schema. */

export interface FerrySchemaMigration {
  /** Its number: one more than the migration before it, never reused nor changed once released. */
  version: number;
  /** A few words for ferry.schema_version and messages (e.g. 'change log'). */
  name: string;
  /**
   * The DDL, one or more statements. It runs once per database, inside the applier's transaction
   * and under its lock, after every migration with a lower number: it may assume their layout.
   */
  sql: string;
}
