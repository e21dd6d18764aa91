/**
 * `npx tsx scripts/bench/verify-damaged.ts`: what change capture adds to a verification pass over
 * a damaged target. A table is copied by hand, one row in every `--every` keys is then changed on
 * the target, and a pass (chunks of `--chunk` keys, so every chunk differs) runs without capture,
 * under trigger capture and under logical capture, each with its change apply and (logical) its
 * reader running, as after a backfill. Under capture every differing row is held against the
 * change log before it counts; this prints what that costs, as each mode's time over the pass
 * without capture of the same round (median and spread over interleaved rounds). Every pass must
 * find exactly the rows the script's own md5 comparison finds.
 *
 *   npx tsx scripts/bench/verify-damaged.ts [--rows N] [--every N] [--chunk N] [--rounds N]
 */
import { parseArgs } from 'node:util';
import { createLogicalCaptureSetup } from '../../activities/capture/logical-setup';
import { createCaptureTrigger } from '../../activities/capture/trigger';
import { createDatabases } from '../../activities/connections';
import { validatePlan, type Plan } from '../../lib/plan';
import { runActivity } from '../../test/support/activities';
import { captureVerification, LEDGER_DIFFERENCES_SQL, LEDGER_TABLES, LEDGER_TRANSFORM_SQL } from '../../test/support/capture-verification';
import { startPostgres } from '../services/postgres';
import { withConnection } from './dataset';
import { formatSpread, formatTimes, spreadOf } from './stats';

const MODES = ['none', 'trigger', 'logical'] as const;
type Mode = (typeof MODES)[number];

function options() {
  const { values } = parseArgs({ options: { rows: { type: 'string' }, every: { type: 'string' }, chunk: { type: 'string' }, rounds: { type: 'string' } }, strict: true });
  const whole = (name: string, value: string | undefined, fallback: number) => {
    const n = Number(value ?? fallback);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} takes a whole number of at least 1, not ${value}`);
    return n;
  };
  return { rows: whole('rows', values.rows, 200_000), every: whole('every', values.every, 1000), chunk: whole('chunk', values.chunk, 1000), rounds: whole('rounds', values.rounds, 3) };
}

function planOf(id: string, mode: Mode): Plan {
  return validatePlan({
    name: id,
    source: { connection: 'DB', table: 'ledger', key: 'id' },
    target: { connection: 'DB', table: 'ledger_v2' },
    transform: { sql: LEDGER_TRANSFORM_SQL },
    ...(mode === 'none' ? {} : { capture: { mode } }),
    verify: { inFlightDelaySeconds: 0.01 },
  });
}

async function main(): Promise<void> {
  const { rows, every, chunk, rounds } = options();
  const postgres = await startPostgres();
  const url = await postgres.createDatabase(`ferry_verify_damaged_${process.pid}`);
  const databases = createDatabases({ env: { DB: url } });
  try {
    // The script's own comparison (md5 of each row's text) says how many rows differ.
    const differing = await withConnection(url, async (client) => {
      await client.query(LEDGER_TABLES);
      await client.query(`
        INSERT INTO ledger SELECT i, i / 100.0, 'note ' || i FROM generate_series(1, ${rows}) AS i;
        INSERT INTO ledger_v2 SELECT id, (balance * 100)::bigint, note FROM ledger;
        UPDATE ledger_v2 SET note = 'damaged' WHERE id % ${every} = 0;`);
      await client.query('VACUUM ANALYZE ledger, ledger_v2');
      return (await client.query(LEDGER_DIFFERENCES_SQL)).rowCount ?? 0;
    });
    console.log(`verify-damaged: ${rows.toLocaleString('en-US')} rows, ${differing} differing (one in ${every} keys), chunks of ${chunk} keys, ${rounds} rounds`);
    const driver = captureVerification(databases);
    const trigger = createCaptureTrigger(databases);
    const logical = createLogicalCaptureSetup(databases);
    const times: Record<Mode, number[]> = { none: [], trigger: [], logical: [] };
    const ratios: Record<Mode, number[]> = { none: [], trigger: [], logical: [] };
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [...MODES] : [...MODES].reverse();
      const ms: Partial<Record<Mode, number>> = {};
      for (const mode of order) {
        const id = `verify-damaged-${mode}-${round}`;
        const plan = planOf(id, mode);
        if (mode === 'trigger') await runActivity(trigger.installCapture, { migrationId: id, plan });
        if (mode === 'logical') await runActivity(logical.installLogicalCapture, { migrationId: id, plan });
        const reader = mode === 'logical' ? driver.startReader(id, plan) : null;
        try {
          const started = Date.now();
          const { result } = mode === 'none' ? { result: await driver.verifyAll({ migrationId: id, plan }, chunk) } : await driver.verifyWhileApplying(id, plan, { chunkSize: chunk });
          ms[mode] = Date.now() - started;
          const found = result.mismatches.missing + result.mismatches.extra + result.mismatches.value;
          if (found !== differing) throw new Error(`${mode}: the pass found ${found} differing rows where the comparison finds ${differing}`);
        } finally {
          await reader?.stop();
          if (mode === 'trigger') await runActivity(trigger.removeCapture, { migrationId: id, plan });
          if (mode === 'logical') await runActivity(logical.removeLogicalCapture, { migrationId: id, plan });
        }
      }
      console.log(`  round ${round}: ${order.map((m) => `${m} ${ms[m]} ms`).join(', ')}`);
      for (const mode of MODES) {
        times[mode].push(ms[mode]!);
        ratios[mode].push(ms[mode]! / ms.none!);
      }
    }
    console.log('pass time, median (min..max); each mode over the pass without capture of its own round:');
    for (const mode of MODES) console.log(`  ${mode.padEnd(8)} ${formatSpread(spreadOf(times[mode])).padEnd(24)} ms  ${mode === 'none' ? '' : formatTimes(spreadOf(ratios[mode]))}`);
  } finally {
    await databases.close();
    await postgres.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
