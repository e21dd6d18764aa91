/** Exit codes of the ferry CLI, stable so that scripts can branch on them. */
export const ExitCode = {
  ok: 0,
  /** The migration failed, or the dry run found problems. */
  failed: 1,
  /** Bad input: usage, a malformed plan, a refused value. Nothing was changed. */
  badInput: 2,
  /** No migration with that id. */
  unknownMigration: 3,
  /** Temporal could not be reached. */
  unreachable: 4,
} as const;
