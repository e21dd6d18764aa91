/**
 * The raw limits Ferry's copy paths are quoted against, measured with the best tools there are:
 * one INSERT ... SELECT of the transform in the same database, and psql's binary COPY out of the
 * source piped (an OS pipe between two psql processes) into psql's binary COPY into the target.
 * Each runs as one stream or as several over equal key ranges at once (Ferry copies in shards),
 * and the bench takes the faster: a limit Ferry could beat by running in parallel is no limit.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { countRows, resetTarget, SOURCE_TABLE, TARGET_TABLE, targetColumnList, transformSelect } from './dataset';

export interface Limit {
  rowsPerSec: number;
  ms: number;
  /** Statements or pipes at once, each over its own range of the dense key 1..rows. */
  streams: number;
}

/** `streams` equal ranges (after, upTo] of the dense key 1..rows. */
function keyRanges(rows: number, streams: number): [number, number][] {
  const per = Math.ceil(rows / streams);
  return Array.from({ length: streams }, (_, i) => [i * per, Math.min(rows, (i + 1) * per)] as [number, number]);
}

/** The same-database limit's statement: the transform of the source keys in ($1, $2] into the target. */
export const INSERT_SELECT_RANGE = `INSERT INTO ${TARGET_TABLE} (${targetColumnList()}) SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s WHERE s.id > $1 AND s.id <= $2`;

/** The same-database limit: the whole transform as one INSERT ... SELECT per stream. */
export async function insertSelectLimit(url: string, rows: number, streams = 1): Promise<Limit> {
  await resetTarget(url);
  const clients = Array.from({ length: streams }, () => new pg.Client({ connectionString: url }));
  await Promise.all(clients.map((c) => c.connect()));
  try {
    const started = performance.now();
    const results = await Promise.all(keyRanges(rows, streams).map((range, i) => clients[i]!.query(INSERT_SELECT_RANGE, range)));
    const ms = performance.now() - started;
    const written = results.reduce((sum, r) => sum + (r.rowCount ?? 0), 0);
    if (written !== rows) throw new Error(`INSERT ... SELECT wrote ${written} rows, expected ${rows}`);
    return { rowsPerSec: rows / (ms / 1000), ms, streams };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

/** Runs a shell pipeline (bash, pipefail) with `env` added; resolves with its stdout, rejects with its stderr. */
export function runPipeline(script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -o pipefail; ${script}`], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`exit ${code}: ${stderr.trim() || stdout.trim()}`))));
  });
}

/**
 * The cross-database limit: `psql -c "COPY (SELECT transform) TO STDOUT (FORMAT binary)" |
 * psql -c "COPY target FROM STDIN (FORMAT binary)"`. The URLs travel in the environment, never
 * on a command line.
 */
export async function psqlCopyLimit(psql: string, sourceUrl: string, targetUrl: string, rows: number, streams = 1): Promise<Limit> {
  await resetTarget(targetUrl);
  const copyIn = `COPY ${TARGET_TABLE} (${targetColumnList()}) FROM STDIN (FORMAT binary)`;
  const pipe = ([after, upTo]: [number, number]) =>
    runPipeline(
      `"$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_FROM" -c "$BENCH_COPY_OUT" | "$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_TO" -c "$BENCH_COPY_IN"`,
      {
        BENCH_PSQL: psql,
        BENCH_FROM: sourceUrl,
        BENCH_TO: targetUrl,
        BENCH_COPY_OUT: `COPY (SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s WHERE s.id > ${after} AND s.id <= ${upTo}) TO STDOUT (FORMAT binary)`,
        BENCH_COPY_IN: copyIn,
      },
    );
  const started = performance.now();
  await Promise.all(keyRanges(rows, streams).map(pipe));
  const ms = performance.now() - started;
  const copied = await countRows(targetUrl, TARGET_TABLE);
  if (copied !== rows) throw new Error(`the psql COPY pipe wrote ${copied} rows, expected ${rows}`);
  return { rowsPerSec: rows / (ms / 1000), ms, streams };
}

/** The faster of `measure` with one stream and with `streams`, in an order that alternates by round. */
export async function fasterOf(streams: number, round: number, measure: (streams: number) => Promise<Limit>): Promise<{ best: Limit; all: Limit[] }> {
  const order = round % 2 === 1 ? [1, streams] : [streams, 1];
  const all: Limit[] = [];
  for (const n of streams > 1 ? order : [1]) all.push(await measure(n));
  const best = all.reduce((a, b) => (b.rowsPerSec > a.rowsPerSec ? b : a));
  return { best, all: all.sort((a, b) => a.streams - b.streams) };
}
