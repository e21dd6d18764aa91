/**
 * Migration 004: the change apply's turns. Under capture, each verification look at the change
 * log holds the migration's apply lock, and leaves the apply the lock to itself for a while
 * after; the time is kept here, read and written only holding that lock, so that a look from any
 * worker process waits it out, not only one from the process that looked last; and who looked
 * last, and whether another's look waited meanwhile, so that the last one gives way to it.
 */
import type { FerrySchemaMigration } from './migration';

export const applyTurns: FerrySchemaMigration = {
  version: 4,
  name: 'apply turns',
  sql: `
  CREATE TABLE ferry.apply_turns (
    migration_id text PRIMARY KEY,
    apply_until timestamptz NOT NULL,
    looked_by text NOT NULL,
    others_waiting boolean NOT NULL DEFAULT false
  );
  COMMENT ON TABLE ferry.apply_turns IS
    'Until when the change apply has the apply lock to itself after a verification look, who looked, and whether another look waited since; read and written only holding the migration''s apply lock.';
  `,
};
