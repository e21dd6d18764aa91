/**
 * Migration 004: the change apply's turns. Under capture, each verification look at the change
 * log holds the migration's apply lock, and leaves the apply the lock to itself for a while
 * after; the time is kept here, read and written only holding that lock, so that a look from any
 * worker process waits it out, not only one from the process that looked last.
 */
import type { FerrySchemaMigration } from './migration';

export const applyTurns: FerrySchemaMigration = {
  version: 4,
  name: 'apply turns',
  sql: `
  CREATE TABLE ferry.apply_turns (
    migration_id text PRIMARY KEY,
    apply_until timestamptz NOT NULL
  );
  COMMENT ON TABLE ferry.apply_turns IS
    'Until when the change apply has the apply lock to itself after a verification look; read and written only holding the migration''s apply lock.';
  `,
};
