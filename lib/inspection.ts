/** What the inspector found out about a migration before any row moves. */

export interface ColumnInfo {
  name: string;
  type: string;
  notNull: boolean;
  hasDefault: boolean;
}

export interface TableInspection {
  /** As a person would write it: schema.table */
  name: string;
  exists: boolean;
  columns: ColumnInfo[];
  /**
   * Estimated from the planner's statistics, or counted when there are none. Null if unknown.
   * For a source with a subset (`subset`), the rows the subset selects.
   */
  estimatedRows: number | null;
  /** The source's estimate counts the plan's subset only. Absent: the whole table. */
  subset?: boolean;
  keyType: string | null;
  keyIsUnique: boolean;
}

export interface TransformSample {
  columns: string[];
  /** One row per sampled source row: the source key, then each target column's value. */
  rows: (string | null)[][];
  /** When true, values are replaced by their shape (NULL, empty, length) so no data leaves the database. */
  redacted: boolean;
}

export interface Inspection {
  source: TableInspection;
  target: TableInspection;
  /** Source and target live in one database, so the copy runs as one statement per batch. */
  sameDatabase: boolean;
  sample: TransformSample | null;
  /** Anything that makes the migration impossible as planned. */
  problems: string[];
  /** Things a person should know before executing. */
  warnings: string[];
}
