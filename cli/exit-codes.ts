/** Exit codes of the ferry CLI, stable so that scripts can branch on them. */
export const ExitCode = {
  ok: 0,
  /** The migration failed, or the dry run found problems. */
  failed: 1,
  /** Bad input: usage, a malformed plan, a refused value. Nothing was changed. */
  badInput: 2,
  /** No migration with that id. */
  unknownMigration: 3,
  /** Temporal could not be reached, or no worker serves the migration: nothing was sent. */
  unreachable: 4,
  /** The migration was aborted (by a person, a rejected gate, or an expired one). */
  aborted: 5,
  /** A change was sent, but no worker has applied it yet: Temporal keeps it until one does. */
  notApplied: 6,
} as const;
