/**
 * `--peers`: pgroll's backfill of the bench's reshape, on the same data, as a share of the
 * same-database limit. pgroll is a Go program with no package of its own in Debian or npm; the
 * bench builds the version pinned in scripts/bench/pgroll/go.mod with the machine's Go, from the
 * Go module proxy, into .tools/pgroll/, and says why when it cannot.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createSource, SOURCE_TABLE, targetColumns, transformSelect, withConnection } from './dataset';
import { runPipeline } from './limits';
import { spreadOf, type Spread } from './stats';

const MODULE_DIR = path.join(__dirname, 'pgroll');
const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
const BINARY = path.join(PROJECT_ROOT, '.tools', 'pgroll', 'pgroll');
const MIGRATION = 'bench_reshape';

export type Pgroll = { binary: string; version: string } | { missing: string };

/** The pinned version, read from the module that pins it (one place for it). */
function pinnedVersion(): string {
  const match = /github\.com\/xataio\/pgroll (v\S+)/.exec(readFileSync(path.join(MODULE_DIR, 'go.mod'), 'utf8'));
  return match?.[1] ?? 'unknown version';
}

/** Builds pgroll (Go's build cache makes a second build take seconds); says why when it cannot. */
export function findPgroll(): Pgroll {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) return { missing: 'Go is not on this machine (pgroll is built with go build from the Go module proxy)' };
  mkdirSync(path.dirname(BINARY), { recursive: true });
  const build = spawnSync('go', ['build', '-o', BINARY, 'github.com/xataio/pgroll'], { cwd: MODULE_DIR, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=readonly' } });
  if (build.status !== 0 || !existsSync(BINARY)) return { missing: `go build of pgroll ${pinnedVersion()} failed: ${(build.stderr || build.error?.message || '').trim().split('\n').slice(-2).join(' ')}` };
  return { binary: BINARY, version: `pgroll ${pinnedVersion()} (${go.stdout.trim()})` };
}

/**
 * The bench's transform as pgroll writes it: one add_column operation for each target column that
 * is not a source column as it stands, its value given by `up`. Nullable, the cheaper choice for
 * pgroll (a NOT NULL column adds a check that `pgroll complete` validates). A name the source
 * already has gets `_v2`.
 */
function migration(sourceColumns: ReadonlySet<string>): { operations: unknown[]; columns: string[] } {
  const columns: string[] = [];
  const operations = targetColumns.flatMap((column) => {
    if (column.sql === column.name) {
      columns.push(column.name);
      return [];
    }
    const name = sourceColumns.has(column.name) ? `${column.name}_v2` : column.name;
    columns.push(`${name} AS ${column.name}`);
    return [{ add_column: { table: SOURCE_TABLE, column: { name, type: column.type, nullable: true }, up: column.sql } }];
  });
  return { operations, columns };
}

export interface PgrollRun {
  rowsPerSec: number;
  ms: number;
  passes: number;
  tableMbBefore: number;
  tableMbAfter: number;
  problems: string[];
}

/** lib/pq (pgroll's driver) asks for TLS unless told not to; the bench's server speaks plain TCP. */
function plainUrl(url: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('sslmode', 'disable');
  return parsed.toString();
}

const tableMb = (url: string) =>
  withConnection(url, async (client) => Number((await client.query<{ b: string }>(`SELECT pg_total_relation_size('${SOURCE_TABLE}') AS b`)).rows[0]!.b) / 1024 / 1024);

/**
 * Times `pgroll start` of the reshape over a fresh copy of the bench's source in a database of
 * its own (`url`, dropped and made again by the caller), with pgroll's default batch size. Then
 * checks, with the bench's own SQL, that every row reads through pgroll's new version of the
 * table as the SQL transform of its source row (md5 of every row's text on both sides).
 */
export async function pgrollBackfill(binary: string, url: string, rows: number): Promise<PgrollRun> {
  await createSource(url, rows);
  await withConnection(url, (client) => client.query('CHECKPOINT'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-bench-pgroll-'));
  const sourceColumns = await withConnection(url, async (client) =>
    new Set((await client.query<{ name: string }>(`SELECT attname AS name FROM pg_attribute WHERE attrelid = '${SOURCE_TABLE}'::regclass AND attnum > 0 AND NOT attisdropped`)).rows.map((r) => r.name)),
  );
  const { operations, columns } = migration(sourceColumns);
  writeFileSync(path.join(dir, `${MIGRATION}.json`), JSON.stringify({ name: MIGRATION, operations }, null, 2));
  const env = { BENCH_PGROLL: binary, BENCH_DIR: dir, BENCH_URL: plainUrl(url) };
  try {
    await runPipeline('"$BENCH_PGROLL" init --postgres-url "$BENCH_URL" >/dev/null', env);
    const tableMbBefore = await tableMb(url);
    const started = performance.now();
    await runPipeline(`"$BENCH_PGROLL" start "$BENCH_DIR/${MIGRATION}.json" --postgres-url "$BENCH_URL" >/dev/null`, env);
    const ms = performance.now() - started;
    const tableMbAfter = await tableMb(url);
    const digests = await withConnection(url, (client) =>
      client.query<{ expected: string; actual: string; n: string }>(
        `SELECT (SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM (SELECT ${transformSelect()} FROM public.${SOURCE_TABLE}) AS t) AS expected,
                (SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM (SELECT ${columns.join(', ')} FROM public_${MIGRATION}.${SOURCE_TABLE}) AS t) AS actual,
                (SELECT count(*) FROM public_${MIGRATION}.${SOURCE_TABLE}) AS n`,
      ),
    );
    const { expected, actual, n } = digests.rows[0]!;
    const problems: string[] = [];
    if (Number(n) !== rows) problems.push(`pgroll's version of the table has ${n} rows, expected ${rows}`);
    if (expected !== actual) problems.push('rows read through pgroll differ from the SQL transform of the source (md5 of all rows)');
    return { rowsPerSec: rows / (ms / 1000), ms, passes: operations.length, tableMbBefore, tableMbAfter, problems };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Each round's pgroll figures, and the lines and JSON the bench prints of them. */
export class PgrollFigures {
  readonly rates: number[] = [];
  readonly shares: number[] = [];
  last: PgrollRun | null = null;

  add(run: PgrollRun, sameDbLimit: number): void {
    this.last = run;
    if (run.problems.length) return;
    this.rates.push(run.rowsPerSec);
    this.shares.push(run.rowsPerSec / sameDbLimit);
  }

  spreads(): { rate: Spread | null; share: Spread | null } {
    return { rate: spreadOf(this.rates), share: spreadOf(this.shares) };
  }

  /** How pgroll did it, for the summary: its passes and what they left in the table. */
  shape(): string {
    const run = this.last;
    if (!run) return 'no run';
    return `${run.passes} add_column operations (a backfill pass each), default batch; the table grew from ${Math.round(run.tableMbBefore)} MB to ${Math.round(run.tableMbAfter)} MB`;
  }
}
