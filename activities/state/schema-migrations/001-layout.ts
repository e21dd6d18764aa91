/**
 * Migration 001: Ferry's tables as they were when the schema got versions. Tombstones that
 * applications write on hard deletes, the records a migration could not copy, the mismatches
 * verification found, verification runs, flags, the registry of migrations, the audit, and the
 * delete protocol's function.
 *
 * Contract: this one stays idempotent (IF NOT EXISTS, ADD COLUMN IF NOT EXISTS, OR REPLACE),
 * because it is also what brings an install made before versions, by any older script, to
 * this layout before it is recorded as version 1. Later migrations run exactly once and need not be.
 */
import type { FerrySchemaMigration } from './migration';

/** First key of the advisory locks that order copy batches against application deletes. */
export const COPY_LOCK_CLASS = 0x46455259; // "FERY"

export const layout: FerrySchemaMigration = {
  version: 1,
  name: 'layout',
  sql: `
  CREATE SCHEMA IF NOT EXISTS ferry;
  CREATE TABLE IF NOT EXISTS ferry.tombstones (
    target_table text NOT NULL,
    key text NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_table, key)
  );
  COMMENT ON TABLE ferry.tombstones IS
    'Keys deleted by the application while a migration runs; the copier never brings them back.';
  CREATE TABLE IF NOT EXISTS ferry.failed_records (
    migration_id text NOT NULL,
    key text NOT NULL,
    error_code text,
    error text NOT NULL,
    attempts int NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (migration_id, key)
  );
  COMMENT ON TABLE ferry.failed_records IS
    'Source rows a migration could not transform or write, with the reason; ferry retry re-drives them.';
  CREATE TABLE IF NOT EXISTS ferry.mismatches (
    migration_id text NOT NULL,
    pass int NOT NULL,
    key text NOT NULL,
    category text NOT NULL CHECK (category IN ('missing', 'extra', 'value')),
    columns text[] NOT NULL DEFAULT '{}',
    detected_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    PRIMARY KEY (migration_id, pass, key)
  );
  -- With a lineage column (target.sourceKey): the source keys whose groups of target rows differ
  -- at this key (two, when a row moved from one source key to another).
  ALTER TABLE ferry.mismatches ADD COLUMN IF NOT EXISTS source_keys text[];
  COMMENT ON TABLE ferry.mismatches IS
    'Keys a verification pass found different between source and target; a repair, or a later pass that finds them equal, resolves them.';
  -- The differing values as a pass found them, before any repair: what ferry mismatches
  -- --show-values shows. They stay in this database; only that command carries them further.
  ALTER TABLE ferry.mismatches ADD COLUMN IF NOT EXISTS found_values jsonb;

  -- Every verification of a migration, during its lifecycle or after it ended: who asked, when,
  -- a sample or every row, whether it repaired, and what it found. Passes of a run are numbered
  -- 1..passes; in ferry.mismatches they are recorded as first_pass .. first_pass + passes - 1.
  CREATE TABLE IF NOT EXISTS ferry.verification_runs (
    migration_id text NOT NULL,
    run int NOT NULL,
    request_id text NOT NULL UNIQUE,
    kind text NOT NULL,
    requested_by text,
    sample_percent numeric,
    repair boolean NOT NULL,
    first_pass int NOT NULL,
    max_passes int NOT NULL,
    passes int NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    rows_checked bigint,
    missing bigint,
    extra bigint,
    value bigint,
    repaired bigint,
    clean boolean,
    problem text,
    PRIMARY KEY (migration_id, run)
  );

  -- Flags: the dynamic configuration a migration sets and applications read (through Ferry's
  -- client library), one row per migration, named by its plan name. Every change bumps the
  -- version and notifies listeners on channel ferry_flags with the migration's name.
  CREATE TABLE IF NOT EXISTS ferry.flags (
    migration text PRIMARY KEY,
    write_old boolean NOT NULL DEFAULT true,
    write_new boolean NOT NULL DEFAULT false,
    read_from text NOT NULL DEFAULT 'old' CHECK (read_from IN ('old', 'new')),
    compare_percent int NOT NULL DEFAULT 0 CHECK (compare_percent BETWEEN 0 AND 100),
    version bigint NOT NULL DEFAULT 1,
    set_by text,
    updated_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE OR REPLACE FUNCTION ferry.notify_flags() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('ferry_flags', NEW.migration); RETURN NEW; END $$;
  DROP TRIGGER IF EXISTS notify_flags ON ferry.flags;
  CREATE TRIGGER notify_flags AFTER INSERT OR UPDATE ON ferry.flags FOR EACH ROW EXECUTE FUNCTION ferry.notify_flags();
  -- Each application process records the flag version it has applied, so a migration can wait
  -- until every live process follows a change before it goes on.
  CREATE TABLE IF NOT EXISTS ferry.flag_acks (
    migration text NOT NULL,
    client_id text NOT NULL,
    version bigint NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, client_id)
  );

  -- Dual-read comparisons, per application process, as the client library counts them: what
  -- a person approving a gate should look at.
  CREATE TABLE IF NOT EXISTS ferry.read_comparisons (
    migration text NOT NULL,
    client_id text NOT NULL,
    compared bigint NOT NULL,
    mismatched bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (migration, client_id)
  );

  -- One migration at a time per target table: the running one holds the row.
  CREATE TABLE IF NOT EXISTS ferry.migrations (
    target_table text PRIMARY KEY,
    migration_id text NOT NULL,
    plan_name text NOT NULL,
    state text NOT NULL CHECK (state IN ('running', 'completed', 'aborted', 'failed')),
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
  );

  -- Every decision of a migration (approve, reject, abort, pause, resume, throttle, ...), its
  -- start and its end, written by the migration as it records them: the record outlives the
  -- workflow history's retention, and \`ferry report --from-audit\` rebuilds a report from it.
  -- entry names the row within its migration ('start', 'event 12', 'end'), so a retried write
  -- adds nothing.
  CREATE TABLE IF NOT EXISTS ferry.audit (
    migration_id text NOT NULL,
    entry text NOT NULL,
    plan_name text NOT NULL,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    by text,
    detail text NOT NULL,
    PRIMARY KEY (migration_id, entry)
  );
  COMMENT ON TABLE ferry.audit IS
    'Decisions of each migration (who, when, what), its start and its end; kept after Temporal forgets the run.';

  -- The delete protocol. An application that hard-deletes a row while a migration copies into
  -- target_table calls this first, in the transaction that deletes from the target. It waits for
  -- the copy batch in flight (which holds the same lock shared) and leaves a tombstone that every
  -- later batch sees, so the copier can never bring the row back.
  CREATE OR REPLACE FUNCTION ferry.record_delete(target_table text, key text) RETURNS void
  LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(${COPY_LOCK_CLASS}, hashtext(target_table));
    INSERT INTO ferry.tombstones (target_table, key) VALUES (target_table, key)
      ON CONFLICT (target_table, key) DO UPDATE SET deleted_at = now();
  $$;

  -- The version of this layout: one row per numbered migration applied (see ../schema-version.ts).
  CREATE TABLE IF NOT EXISTS ferry.schema_version (
    version int PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    note text
  );
  COMMENT ON TABLE ferry.schema_version IS
    'Numbered migrations of Ferry''s own tables applied here; a worker refuses a version above the ones it knows.';
`,
};
