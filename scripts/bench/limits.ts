/**
 * The raw limits Ferry's copy paths are quoted against, measured with the best tools there are:
 * one INSERT ... SELECT of the transform in the same database, and psql's binary COPY out of the
 * source piped (an OS pipe between two psql processes) into psql's binary COPY into the target.
 */
import { spawn } from 'node:child_process';
import pg from 'pg';
import { countRows, resetTarget, SOURCE_TABLE, TARGET_TABLE, targetColumnList, transformSelect } from './dataset';

export interface Limit {
  rowsPerSec: number;
  ms: number;
}

/** The same-database limit: the whole transform as one INSERT ... SELECT. */
export async function insertSelectLimit(url: string, rows: number): Promise<Limit> {
  await resetTarget(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = performance.now();
    const result = await client.query(`INSERT INTO ${TARGET_TABLE} (${targetColumnList()}) SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s`);
    const ms = performance.now() - started;
    if (result.rowCount !== rows) throw new Error(`INSERT ... SELECT wrote ${result.rowCount} rows, expected ${rows}`);
    return { rowsPerSec: rows / (ms / 1000), ms };
  } finally {
    await client.end();
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
export async function psqlCopyLimit(psql: string, sourceUrl: string, targetUrl: string, rows: number): Promise<Limit> {
  await resetTarget(targetUrl);
  const copyOut = `COPY (SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s) TO STDOUT (FORMAT binary)`;
  const copyIn = `COPY ${TARGET_TABLE} (${targetColumnList()}) FROM STDIN (FORMAT binary)`;
  const started = performance.now();
  await runPipeline(
    `"$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_FROM" -c "$BENCH_COPY_OUT" | "$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_TO" -c "$BENCH_COPY_IN"`,
    { BENCH_PSQL: psql, BENCH_FROM: sourceUrl, BENCH_TO: targetUrl, BENCH_COPY_OUT: copyOut, BENCH_COPY_IN: copyIn },
  );
  const ms = performance.now() - started;
  const copied = await countRows(targetUrl, TARGET_TABLE);
  if (copied !== rows) throw new Error(`the psql COPY pipe wrote ${copied} rows, expected ${rows}`);
  return { rowsPerSec: rows / (ms / 1000), ms };
}
