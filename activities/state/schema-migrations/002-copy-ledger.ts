/**
 * Migration 002: the copy ledger. A copy call adds each batch's written rows to its shard's row
 * in the batch's own transaction, so that an attempt retried after a worker died knows what the
 * lost attempt wrote after its last heartbeat that reached the server, and does not report those
 * rows as found already present.
 */
import type { FerrySchemaMigration } from './migration';

export const copyLedger: FerrySchemaMigration = {
  version: 2,
  name: 'copy ledger',
  sql: `
  CREATE TABLE ferry.copy_ledger (
    shard_workflow_id text PRIMARY KEY,
    copy_call text NOT NULL,
    rows_written bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
  );
  COMMENT ON TABLE ferry.copy_ledger IS
    'Rows each shard''s current copy call has written, committed with the rows themselves; read by a retried attempt of that call.';
  `,
};
