/**
 * `npx tsx scripts/bench/copy-in-formats.ts [--rows N] [--rounds N]`: what Postgres spends
 * taking the bench's target rows in by COPY as text against binary. The rows are the bench's
 * transform of its source, written to files once by `psql`'s \copy in each format, then read into
 * the target (its primary key, logged) and into a bare unlogged copy of it, each load of `psql`
 * timed whole, the formats taking turns. It answers whether the module-transform path, which writes COPY
 * text, would gain from writing binary.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startPostgres } from '../services/postgres';
import { createSource, createTarget, SOURCE_TABLE, TARGET_TABLE, targetColumnList, transformSelect } from './dataset';
import { runPipeline } from './limits';
import { ensurePgTool } from './pg-tools';
import { formatSpread, spreadOf } from './stats';

const FORMATS = ['text', 'binary'] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
  const rows = Number(values.rows ?? 1_000_000);
  const rounds = Number(values.rounds ?? 3);
  const psql = ensurePgTool('psql');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-copy-in-'));
  const server = await startPostgres({ fsync: true, local: true });
  try {
    const url = await server.createDatabase('copy_in_formats');
    await createSource(url, rows);
    await createTarget(url);
    // The URL travels in the environment, never on a command line.
    const runPsql = (command: string) => runPipeline('"$BENCH_PSQL" -X -q -v ON_ERROR_STOP=1 -d "$BENCH_URL" -c "$BENCH_COMMAND"', { BENCH_PSQL: psql, BENCH_URL: url, BENCH_COMMAND: command });
    for (const format of FORMATS) await runPsql(`\\copy (SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s) TO '${path.join(dir, format)}' (FORMAT ${format})`);
    const into = new pg.Client({ connectionString: url });
    await into.connect();
    await into.query(`CREATE UNLOGGED TABLE bare (LIKE ${TARGET_TABLE})`);
    const micros: Record<string, number[]> = {};
    for (let round = 0; round < rounds; round += 1) {
      for (const table of [TARGET_TABLE, 'bare']) {
        for (const format of round % 2 === 0 ? FORMATS : [...FORMATS].reverse()) {
          await into.query(`TRUNCATE ${table}`);
          await into.query('CHECKPOINT');
          const started = performance.now();
          await runPsql(`\\copy ${table} (${targetColumnList()}) FROM '${path.join(dir, format)}' (FORMAT ${format})`);
          (micros[`${table} ${format}`] ??= []).push(((performance.now() - started) * 1000) / rows);
        }
      }
    }
    await into.end();
    console.log(`COPY into the bench's target, µs per row, median (min..max) of ${rounds} rounds, ${rows} rows:`);
    for (const [label, values] of Object.entries(micros)) console.log(`  ${label.padEnd(14)} ${formatSpread(spreadOf(values), 2)}`);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`copy-in-formats failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
