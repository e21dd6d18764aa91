/**
 * `--peers`: pgcopydb's table-data copy (from Debian) on the same data, as a share of the psql
 * pipe. pgroll's backfill is in ./pgroll.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { countRows, SOURCE_TABLE, sourceTableDdl } from './dataset';
import { runPipeline } from './limits';
import { toolVersion, tryPgTool } from './pg-tools';

export const PGCOPYDB_JOBS = 2;

/** The source table's shape with no rows, for pgcopydb to fill (it copies data, not schema, here). */
const PEER_DDL = `DROP TABLE IF EXISTS ${SOURCE_TABLE}; ${sourceTableDdl}`;
export type Pgcopydb = { binary: string; version: string } | { missing: string };

export function findPgcopydb(): Pgcopydb {
  const found = tryPgTool('pgcopydb');
  return 'path' in found ? { binary: found.path, version: toolVersion(found.path) } : found;
}

async function resetPeerTarget(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(PEER_DDL);
    await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
}

/**
 * Times `pgcopydb copy table-data` of the source table (untransformed: pgcopydb has no
 * transform) into an empty copy of it in `peerUrl`, with PGCOPYDB_JOBS table jobs.
 */
export async function pgcopydbCopy(binary: string, sourceUrl: string, peerUrl: string, rows: number): Promise<{ rowsPerSec: number; ms: number }> {
  await resetPeerTarget(peerUrl);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-pgcopydb-'));
  const filters = path.join(dir, 'filters.ini');
  writeFileSync(filters, `[include-only-table]\npublic.${SOURCE_TABLE}\n`);
  try {
    const started = performance.now();
    await runPipeline(
      `"$BENCH_PGCOPYDB" copy table-data --dir "$BENCH_DIR/work" --filters "$BENCH_DIR/filters.ini" --table-jobs ${PGCOPYDB_JOBS} --not-consistent`,
      { BENCH_PGCOPYDB: binary, BENCH_DIR: dir, PGCOPYDB_SOURCE_PGURI: sourceUrl, PGCOPYDB_TARGET_PGURI: peerUrl },
    );
    const ms = performance.now() - started;
    const copied = await countRows(peerUrl, SOURCE_TABLE);
    if (copied !== rows) throw new Error(`pgcopydb wrote ${copied} rows, expected ${rows}`);
    return { rowsPerSec: rows / (ms / 1000), ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
