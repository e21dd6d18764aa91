/**
 * `npx tsx scripts/bench/verify-chunks.ts [--rows N] [--rounds N] [--chunks default,5000,10000] [--quiet-only]`:
 * Ferry's verification at several chunk sizes against the bench's checksum limit, interleaved in
 * one run, on equal data, on data with sparse differences, and under dual writes, so a default
 * chunk size is chosen from ratios of the same run. Only Postgres is started (no Temporal).
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { startPostgres } from '../services/postgres';
import { createSource, createTarget, TARGET_TABLE } from './dataset';
import { basePlan, SOURCE_ENV, TARGET_ENV } from './ferry-run';
import { psqlCopyLimit } from './limits';
import { ensurePgTool } from './pg-tools';
import { formatSpread, spreadOf } from './stats';
import { DUAL_WRITE_LAG_MS, DUAL_WRITES_PER_SECOND, startDualWriteLoad } from './update-load';
import { checksumLimit, ferryVerify, LIMIT_CHUNK, settleTarget } from './verify';

/** One target row in this many differs, for the sparse-differences pass. */
const SPARSE_EVERY = 3001;

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Runs a statement on the target; the rows it changed. */
async function onTarget(url: string, statement: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const result = await client.query(statement).finally(() => client.end());
  return result.rowCount ?? 0;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' }, chunks: { type: 'string', default: 'default,5000,10000' }, 'quiet-only': { type: 'boolean', default: false } } });
  const rows = Number(values.rows);
  const rounds = Number(values.rounds);
  const defaultChunk = validatePlan(basePlan('bench-verify', TARGET_ENV)).verify.chunkSize;
  const chunks = values.chunks!.split(',').map((c) => (c === 'default' ? defaultChunk : Number(c)));
  const psql = ensurePgTool('psql');
  const postgres = await startPostgres({ fsync: true, local: true });
  try {
    const sourceUrl = await postgres.createDatabase('bench_source');
    const targetUrl = await postgres.createDatabase('bench_target');
    await createSource(sourceUrl, rows);
    await createTarget(targetUrl);
    await psqlCopyLimit(psql, sourceUrl, targetUrl, rows, 2);
    await settleTarget(targetUrl);
    const env = { [SOURCE_ENV]: sourceUrl, [TARGET_ENV]: targetUrl };
    const planOf = (chunkSize: number) => validatePlan({ ...basePlan('bench-verify', TARGET_ENV), verify: { enabled: true, chunkSize } } satisfies PlanInput);
    console.log(`${fmt(rows)} rows, ${rounds} rounds; the limit in chunks of ${fmt(LIMIT_CHUNK)} keys; plan default chunk ${fmt(defaultChunk)}`);

    const quiet = new Map<number, number[]>(chunks.map((c) => [c, []]));
    const sparse = new Map<number, number[]>(chunks.map((c) => [c, []]));
    const writes = new Map<number, number[]>(chunks.map((c) => [c, []]));
    const quietMs = new Map<number, number>();
    for (let round = 1; round <= rounds; round += 1) {
      // Each round starts with a different chunk size, so none always runs first.
      const order = chunks.map((_, i) => chunks[(i + round - 1) % chunks.length]!);
      console.log(`round ${round}:`);
      for (const chunk of order) {
        // The limit right before each pass: a shared machine's speed moves within a round.
        const limit = await checksumLimit(sourceUrl, targetUrl, rows);
        if (limit.problems.length) throw new Error(`the limit's checksums differ: ${limit.problems.join('; ')}`);
        const run = await ferryVerify(planOf(chunk), env, rows);
        quiet.get(chunk)!.push(run.rowsPerSec / limit.rowsPerSec);
        quietMs.set(chunk, run.ms);
        console.log(`  quiet     chunk ${fmt(chunk).padStart(6)}: ${fmt(run.rowsPerSec).padStart(9)} rows/s, limit ${fmt(limit.rowsPerSec).padStart(9)} rows/s, ${fmt(run.rowsPerSec / limit.rowsPerSec, 3)} of it${run.problems.length ? `; ${run.problems.join('; ')}` : ''}`);
      }
      if (values['quiet-only']) continue;
      const changed = await onTarget(targetUrl, `UPDATE ${TARGET_TABLE} SET amount_cents = amount_cents + 1 WHERE id % ${SPARSE_EVERY} = 0`);
      for (const chunk of order) {
        const run = await ferryVerify(planOf(chunk), env, rows);
        sparse.get(chunk)!.push(run.ms / quietMs.get(chunk)!);
        // Timed only if it found what the bench's own UPDATE changed, and nothing else.
        const { missing, extra, value } = run.mismatches;
        const found = missing === 0 && extra === 0 && value === changed ? '' : `; CHECK FAILED: ${value} value, ${missing} missing, ${extra} extra mismatches where ${changed} rows were changed`;
        if (found) process.exitCode = 1;
        console.log(`  sparse    chunk ${fmt(chunk).padStart(6)}: ${fmt(run.ms / 1000, 1)} s, ${fmt(run.ms / quietMs.get(chunk)!, 2)}x its quiet pass (1 row in ${SPARSE_EVERY} differs)${found}`);
      }
      await onTarget(targetUrl, `UPDATE ${TARGET_TABLE} SET amount_cents = amount_cents - 1 WHERE id % ${SPARSE_EVERY} = 0`);
      await settleTarget(targetUrl);
      for (const chunk of order) {
        const load = startDualWriteLoad(sourceUrl, targetUrl, rows, DUAL_WRITES_PER_SECOND, DUAL_WRITE_LAG_MS);
        const run = await ferryVerify(planOf(chunk), env, rows).finally(() => load.stop());
        writes.get(chunk)!.push(run.ms / quietMs.get(chunk)!);
        console.log(
          `  writes    chunk ${fmt(chunk).padStart(6)}: ${fmt(run.ms / 1000, 1)} s, ${fmt(run.ms / quietMs.get(chunk)!, 2)}x its quiet pass, ${run.inFlight} in flight` +
            `${run.problems.length ? `; ${run.problems.join('; ')}` : ''}`,
        );
      }
    }
    console.log('median (min..max):');
    for (const chunk of chunks) {
      console.log(
        `  chunk ${fmt(chunk).padStart(6)}: quiet ${formatSpread(spreadOf(quiet.get(chunk)!), 3)} of the limit; ` +
          `sparse differences ${formatSpread(spreadOf(sparse.get(chunk)!), 2)}x and dual writes ${formatSpread(spreadOf(writes.get(chunk)!), 2)}x its quiet pass`,
      );
    }
  } finally {
    await postgres.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
