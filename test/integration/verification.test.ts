/** Verification in the lifecycle: found, repaired, clean again; and an unclean one holds the cutover gate. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, startWorker, type TestWorker } from '../support/harness';

const ROWS = 4000;

describe('verification in the lifecycle', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('verify_src'), createTestDatabase('verify_tgt')]);
    await sql(sourceUrl, `
      CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(10,2) NOT NULL, placed_at timestamptz NOT NULL, details json);
      INSERT INTO orders SELECT i, 'customer ' || i, i * 1.5, timestamptz '2025-03-01 10:00:00.123456+00' + i * interval '1 minute',
                                json_build_object('items', i % 5, 'note', 'n' || i)
        FROM generate_series(1, ${ROWS}) i;`);
    worker = await startWorker({ SRC: sourceUrl, TGT: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  /** A target seeded with rows the backfill keeps (conflict policy ignore): 5 wrong, 3 extra. */
  async function seededPlan(extra: Partial<PlanInput>) {
    table += 1;
    const name = `orders_${table}`;
    await sql(targetUrl, `
      CREATE TABLE ${name} (id int PRIMARY KEY, customer text NOT NULL, total numeric(12,3) NOT NULL, placed_at timestamptz NOT NULL, details jsonb);
      INSERT INTO ${name} VALUES
        (10, 'someone else', 15.0, '2025-03-01 10:10:00.123456+00', '{"note": "n10", "items": 0}'),
        (20, 'customer 20', 99.99, '2025-03-01 10:20:00.123456+00', '{"note": "n20", "items": 0}'),
        (30, 'customer 30', 45.0, '2025-03-01 10:30:00.123457+00', '{"note": "n30", "items": 0}'),
        (40, 'customer 40', 60.0, '2025-03-01 10:40:00.123456+00', '{"note": "changed", "items": 0}'),
        (50, 'customer 50', 75.0, '2025-03-01 10:50:00.123456+00', NULL),
        -- Equal data in another form: not a difference.
        (60, 'customer 60', 90.000, '2025-03-01 21:00:00.123456+10', '{"items": 0, "note": "n60"}'),
        (${ROWS + 1}, 'ghost', 1, now(), NULL), (${ROWS + 2}, 'ghost', 1, now(), NULL), (${ROWS + 3}, 'ghost', 1, now(), NULL);`);
    return validatePlan({
      name: `verify-${table}`,
      source: { connection: 'SRC', table: 'orders', key: 'id' },
      target: { connection: 'TGT', table: name },
      transform: { sql: { id: 'id', customer: 'customer', total: 'total', placed_at: 'placed_at', details: 'details' } },
      shards: { count: 2 },
      verify: { chunkSize: 500, inFlightDelaySeconds: 0.2 },
      ...extra,
    });
  }
  const equalsSource = async (name: string) => {
    const target = await sql(targetUrl, `SELECT id, customer, total::numeric::float8 AS total, placed_at, details::jsonb::text AS details FROM ${name} ORDER BY id`);
    const source = await sql(sourceUrl, `SELECT id, customer, total::numeric::float8 AS total, placed_at, details::jsonb::text AS details FROM orders ORDER BY id`);
    return JSON.stringify(target) === JSON.stringify(source);
  };

  it('finds every difference, repairs it from the source, and verifies clean', async () => {
    const plan = await seededPlan({ verify: { chunkSize: 500, maxPasses: 2, inFlightDelaySeconds: 0.2 } });
    const status = await (await startMigration(worker.client, worker.temporal, plan, { execute: true })).result();
    expect(status.phase).toBe('completed');
    expect(status.verification).toMatchObject({ clean: true, passes: 2, missing: 0, extra: 0, value: 0, repaired: 8, rowsChecked: ROWS });
    const passes = status.events.filter((e) => e.kind === 'verify').map((e) => e.detail);
    expect(passes[0]).toBe(`pass 1: ${ROWS} rows checked, 0 missing, 3 extra, 5 differing, 0 in flight`);
    expect(passes[1]).toBe('pass 1 repaired: 5 rows written, 3 deleted, 0 unresolved');
    expect(passes[2]).toBe(`pass 2: ${ROWS} rows checked, 0 missing, 0 extra, 0 differing, 0 in flight`);
    expect(await equalsSource(`orders_${table}`)).toBe(true);

    // After the repair, and after the migration completed, the values are shown as they were found.
    const shown = await ferry(['mismatches', status.migrationId, '--show-values'], worker.temporal);
    expect(shown.code).toBe(ExitCode.ok);
    expect(shown.stdout).toContain('pass 1: 0 missing, 3 extra, 5 differing; unresolved 0 missing, 0 extra, 0 differing');
    expect(shown.stdout).toContain('key 10: value (customer), resolved; values as found');
    expect(shown.stdout).toContain('customer: source customer 10 | target someone else');
  });

  it('holds the cutover gate while verification is not clean, unless forced, and shows what differs', async () => {
    const plan = await seededPlan({
      verify: { chunkSize: 500, maxPasses: 1, inFlightDelaySeconds: 0.2 },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    const status = await ferry(['status', id], worker.temporal);
    expect(status.stdout).toContain('verify    NOT clean after 1 pass: 4,000 rows checked, 0 missing, 3 extra, 5 differing');

    const refused = await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'alice'], worker.temporal);
    expect(refused.code).toBe(ExitCode.badInput);
    expect(refused.stderr).toContain('verification is not clean (0 missing, 3 extra, 5 differing); repair it, or approve with --force (recorded)');

    const listed = await ferry(['mismatches', id], worker.temporal);
    expect(listed.stdout).toContain('pass 1: 0 missing, 3 extra, 5 differing');
    expect(listed.stdout).toContain('key 10: value (customer)');
    expect(listed.stdout).toContain('key 30: value (placed_at)');
    expect(listed.stdout).toContain('key 50: value (details)');
    expect(listed.stdout).toContain(`key ${ROWS + 1}: extra`);
    expect(listed.stdout).not.toContain('someone else');
    expect(listed.stdout).toContain('(values redacted; --show-values reveals them)');
    const shown = await ferry(['mismatches', id, '--show-values'], worker.temporal);
    expect(shown.stdout).toContain('customer: source customer 10 | target someone else');

    // Fixed by hand, then verified again on demand: clean, and the gate opens.
    await sql(targetUrl, `
      UPDATE orders_${table} SET customer = 'customer 10', total = 15 WHERE id = 10;
      UPDATE orders_${table} SET total = 30 WHERE id = 20;
      UPDATE orders_${table} SET placed_at = '2025-03-01 10:30:00.123456+00' WHERE id = 30;
      UPDATE orders_${table} SET details = '{"items": 0, "note": "n40"}' WHERE id = 40;
      UPDATE orders_${table} SET details = '{"items": 0, "note": "n50"}' WHERE id = 50;`);
    // A sample says it is one, and keeps what earlier passes left unresolved outside it.
    const sampled = await ferry(['verify', id, '--sample', '50'], worker.temporal);
    expect(sampled.stdout).toMatch(/verification NOT clean after 1 pass \(run 2, a sample of 50% of keys\): [\d,]+ rows checked, 0 missing, 3 extra, 0 differing/);
    const sampledRecord = await ferry(['status', id], worker.temporal);
    expect(sampledRecord.stdout).toMatch(/verify {4}NOT clean after 1 pass \(run 2, a sample of 50% of keys\): [\d,]+ rows checked, 0 missing, 3 extra, 0 differing/);
    const stillRefused = await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'alice'], worker.temporal);
    expect(stillRefused.stderr).toContain('verification is not clean (0 missing, 3 extra, 0 differing in a sample of 50% of keys)');
    const open = await ferry(['mismatches', id], worker.temporal);
    expect(open.stdout).toContain('run 2, pass 1: 0 missing, 3 extra, 0 differing; unresolved 0 missing, 3 extra, 0 differing');
    const again = await ferry(['verify', id], worker.temporal, { FERRY_OPERATOR: 'bob' });
    expect(again.stdout).toContain('verification NOT clean after 1 pass (run 3): 4,000 rows checked, 0 missing, 3 extra, 0 differing');
    await sql(targetUrl, `DELETE FROM orders_${table} WHERE id > ${ROWS}`);
    const clean = await ferry(['verify', id], worker.temporal, { FERRY_OPERATOR: 'bob' });
    expect(clean.code).toBe(ExitCode.ok);
    expect(clean.stdout).toContain('verification clean after 1 pass (run 4): 4,000 rows checked, 0 missing, 0 extra, 0 differing');
    const runs = await sql(targetUrl, `SELECT run, kind, requested_by, sample_percent::float8 AS sample, passes, extra, clean FROM ferry.verification_runs WHERE migration_id = $1 ORDER BY run`, [id]);
    expect(runs).toMatchObject([
      { run: 1, kind: 'lifecycle', requested_by: 'ferry', sample: null, passes: 1, extra: '3', clean: false },
      { run: 2, kind: 'on-demand', sample: 50, passes: 1, extra: '3', clean: false },
      { run: 3, kind: 'on-demand', requested_by: 'bob', sample: null, passes: 1, extra: '3', clean: false },
      { run: 4, kind: 'on-demand', requested_by: 'bob', sample: null, passes: 1, extra: '0', clean: true },
    ]);
    expect((await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'alice'], worker.temporal)).code).toBe(ExitCode.ok);
    await ferry(['abort', id, '--reason', 'test done'], worker.temporal);
    await handle.result();
  });

  it('records an approval forced past unclean verification', async () => {
    const plan = await seededPlan({
      verify: { chunkSize: 500, maxPasses: 1, inFlightDelaySeconds: 0.2 },
      lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    const forced = await ferry(['approve', id, '--gate', 'cutover-reads', '--by', 'carol', '--force', '--note', 'known ghosts'], worker.temporal);
    expect(forced.code).toBe(ExitCode.ok);
    const verdict = `pass 1: NOT clean, 0 missing, 3 extra, 5 differing in ${ROWS} rows checked, 0 rows with unresolved failed records left out`;
    expect(forced.stdout).toContain(`forced past verification ${verdict} (recorded)`);
    await eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === 'stop-old-writes' ? true : undefined), 60_000, 'the next gate');
    const { status } = await migrationReport(worker.client, id);
    expect(status!.verification!.forcedBy).toMatch(/^carol \(as \S+\)$/);
    expect(status!.events.find((e) => e.kind === 'approve')!.detail).toBe(`gate cutover-reads approved with --force, past verification ${verdict} (known ghosts)`);
    const report = await ferry(['report', id], worker.temporal);
    expect(report.stdout).toMatch(/A gate was approved past it with --force by carol \(as \S+\), at pass 1: NOT clean, 0 missing, 3 extra, 5 differing/);
    await ferry(['abort', id, '--reason', 'test done'], worker.temporal);
    await handle.result();
  });
});
