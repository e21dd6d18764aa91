/**
 * Migration 003: the repair ledger. A repair call adds each batch's repaired and deleted rows to
 * its pass's row in the transaction that resolves the batch's mismatches, so that an attempt
 * retried after a worker died, which starts over from the mismatches still open, counts what the
 * lost attempt repaired too.
 */
import type { FerrySchemaMigration } from './migration';

export const repairLedger: FerrySchemaMigration = {
  version: 3,
  name: 'repair ledger',
  sql: `
  CREATE TABLE ferry.repair_ledger (
    migration_id text NOT NULL,
    pass integer NOT NULL,
    repair_call text NOT NULL,
    rows_repaired bigint NOT NULL,
    rows_deleted bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration_id, pass)
  );
  COMMENT ON TABLE ferry.repair_ledger IS
    'Rows each verification pass''s current repair call has repaired and deleted, committed with the resolution of their mismatches; read by a retried attempt of that call.';
  `,
};
