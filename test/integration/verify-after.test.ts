/**
 * Checks after a migration ended: a target damaged after completion (or after an abort) is
 * found by `ferry verify`, left as it is unless --repair, and every check is recorded; proved
 * with this test's own SQL, never with Ferry's verifier alone.
 */
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 3000;

describe('checking a migration after it ended', () => {
  let sourceUrl: string;
  let targetUrl: string;
  let worker: TestWorker;
  let tables = 0;

  beforeAll(async () => {
    [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('after_src'), createTestDatabase('after_tgt')]);
    await sql(sourceUrl, `
      CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, tags jsonb);
      INSERT INTO items SELECT i, 'item ' || i, i * 0.25, jsonb_build_object('n', i) FROM generate_series(1, ${ROWS}) i;`);
    worker = await startWorker({ SRC: sourceUrl, TGT: targetUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function planFor(extra: Partial<PlanInput> = {}) {
    tables += 1;
    const name = `items_${tables}`;
    await sql(targetUrl, `CREATE TABLE ${name} (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, tags jsonb)`);
    const plan = validatePlan({
      name: `after-${tables}`,
      source: { connection: 'SRC', table: 'items', key: 'id' },
      target: { connection: 'TGT', table: name },
      transform: { sql: { id: 'id', name: 'name', price: 'price', tags: 'tags' } },
      shards: { count: 3 },
      verify: { chunkSize: 400, maxPasses: 2, inFlightDelaySeconds: 0.1 },
      ...extra,
    });
    return { plan, name };
  }

  /** This test's own comparison: md5 of every row's text, in key order, on each side. */
  const digest = async (url: string, table: string) => (await sqlRow(url, `SELECT md5(string_agg(t::text, '|' ORDER BY id)) AS d, count(*)::int AS n FROM ${table} t`)) as { d: string; n: number };
  const sameAsSource = async (table: string) => {
    const [source, target] = await Promise.all([digest(sourceUrl, 'items'), digest(targetUrl, table)]);
    return source.d === target.d && source.n === target.n;
  };
  /** Deletes a row, changes a value and adds a row the source never had. */
  const damage = (table: string) =>
    sql(targetUrl, `
      DELETE FROM ${table} WHERE id = 100;
      UPDATE ${table} SET price = 1.00 WHERE id = 200;
      INSERT INTO ${table} VALUES (${ROWS + 7}, 'stray', 1, NULL);`);

  it('finds damage done after completion, reports it without repairing, repairs with --repair, and records every check', async () => {
    const { plan, name } = await planFor();
    const id = (await startMigration(worker.client, worker.temporal, plan, { execute: true })).workflowId;
    const finished = await worker.client.workflow.getHandle(id).result();
    expect(finished.phase).toBe('completed');
    expect(await sameAsSource(name)).toBe(true);

    await damage(name);
    const damaged = await digest(targetUrl, name);
    const reported = await ferry(['verify', id], worker.temporal, { FERRY_OPERATOR: 'dana' });
    expect(reported.code).toBe(ExitCode.failed);
    expect(reported.stderr).toContain(`checking it as ${id}/check-1`);
    expect(reported.stdout).toContain(`(every row, report only): NOT clean after 1 pass: 3,000 rows checked, 1 missing, 1 extra, 1 differing`);
    expect(reported.stdout).toContain(`\`ferry verify ${id} --repair\` repairs them`);
    // Report only: the target is exactly as damaged.
    expect(await digest(targetUrl, name)).toEqual(damaged);

    const listed = await ferry(['mismatches', id], worker.temporal);
    expect(listed.code).toBe(ExitCode.ok);
    expect(listed.stdout).toMatch(/run 2, pass 1: 1 missing, 1 extra, 1 differing; unresolved 1 missing, 1 extra, 1 differing/);
    expect(listed.stdout).toContain('key 200: value (price)');
    expect(listed.stdout).not.toContain('1.00');
    const shown = await ferry(['mismatches', id, '--show-values'], worker.temporal);
    expect(shown.stdout).toContain('key 200: value (price); values as found');
    expect(shown.stdout).toContain('price: source 50.00 | target 1.00');

    const repaired = await ferry(['verify', id, '--repair'], worker.temporal, { FERRY_OPERATOR: 'erin' });
    expect(repaired.code).toBe(ExitCode.ok);
    expect(repaired.stdout).toContain('(every row, repairing): clean after 2 passes: 3,000 rows checked, 0 missing, 0 extra, 0 differing, 3 repaired');
    expect(await sameAsSource(name)).toBe(true);

    // The values stay as they were found, after the repair too.
    const after = await ferry(['mismatches', id, '--show-values'], worker.temporal);
    expect(after.stdout).toMatch(/run 3, pass 1: 1 missing, 1 extra, 1 differing; unresolved 0 missing, 0 extra, 0 differing/);
    expect(after.stdout).toContain('price: source 50.00 | target 1.00');

    const runs = await sql(targetUrl, `SELECT run, kind, requested_by, sample_percent, repair, passes, missing, extra, value, clean FROM ferry.verification_runs WHERE migration_id = $1 ORDER BY run`, [id]);
    expect(runs).toEqual([
      { run: 1, kind: 'lifecycle', requested_by: 'ferry', sample_percent: null, repair: true, passes: 1, missing: '0', extra: '0', value: '0', clean: true },
      { run: 2, kind: 'after-finish', requested_by: 'dana', sample_percent: null, repair: false, passes: 1, missing: '1', extra: '1', value: '1', clean: false },
      { run: 3, kind: 'after-finish', requested_by: 'erin', sample_percent: null, repair: true, passes: 2, missing: '0', extra: '0', value: '0', clean: true },
    ]);

    const sampled = await ferry(['verify', id, '--sample', '20'], worker.temporal);
    expect(sampled.code).toBe(ExitCode.ok);
    expect(sampled.stdout).toContain('(a sample of 20% of keys, report only): clean');
    expect(sampled.stdout).toContain('rows outside it were not compared');

    const shownStatus = await ferry(['status', id], worker.temporal);
    expect(shownStatus.stdout).toMatch(/later {5}.*\/check-1 \(run 2\) by dana at .*, every row, report only: NOT clean, 3,000 rows checked, 1 missing, 1 extra, 1 differing/);
    expect(shownStatus.stdout).toMatch(/later {5}.*\/check-3 \(run 4\) by .*, a sample of 20% of keys, report only: clean/);

    const report = await ferry(['report', id], worker.temporal);
    expect(report.stdout).toContain('## Later checks');
    expect(report.stdout).toMatch(/\| run 2 \(.*\/check-1\) \| .* \| dana \| every row \| no \| 1 \| NOT clean: 3,000 rows checked, 1 missing, 1 extra, 1 differing \|/);
    expect(report.stdout).toMatch(/\| run 3 \(.*\/check-2\) \| .* \| erin \| every row \| yes \| 2 \| clean: 3,000 rows checked, 0 missing, 0 extra, 0 differing, 3 repaired \|/);
    expect(report.stdout).toMatch(/\| run 4 \(.*\/check-3\) \| .* \| a sample of 20% of keys \| no \| 1 \| clean:/);

    // The recorded verification and the checks replay against the code that made them.
    for (const workflowId of [id, `${id}/check-1`, `${id}/check-2`]) {
      const history = await worker.client.workflow.getHandle(workflowId).fetchHistory();
      await Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, workflowId);
    }
  });

  it('finds a target row no shard reads; after an unclean check a sample that finds nothing is not clean, after a clean one it stays clean', async () => {
    const where = 'id % 3 <> 0';
    const { plan, name } = await planFor({ subset: { where } });
    const id = (await startMigration(worker.client, worker.temporal, plan, { execute: true })).workflowId;
    const finished = await worker.client.workflow.getHandle(id).result();
    expect(finished.phase).toBe('completed');
    const subset = () => rowsDigest(sourceUrl, `SELECT * FROM items WHERE ${where}`);
    expect(await rowsDigest(targetUrl, `SELECT * FROM ${name}`)).toEqual(await subset());

    // A row the source never had. With a \`where\`, shards read the target by the keys the source's
    // chunks hold, so no shard reads it.
    await sql(targetUrl, `INSERT INTO ${name} VALUES (${ROWS + 1000}, 'stray', 1, NULL)`);
    expect(await sql(sourceUrl, `SELECT id FROM items WHERE id = ${ROWS + 1000}`)).toEqual([]);
    const reported = await ferry(['verify', id], worker.temporal);
    expect(reported.code).toBe(ExitCode.failed);
    expect(reported.stdout).toContain('(every row, report only): NOT clean after 1 pass: 2,000 rows checked, 0 missing, 1 extra, 0 differing');
    expect((await rowsDigest(targetUrl, `SELECT * FROM ${name}`)).rows).toBe((await subset()).rows + 1);

    // Put right by hand. A sample finds nothing now, but cannot clear the unclean check before it.
    await sql(targetUrl, `DELETE FROM ${name} WHERE id = ${ROWS + 1000}`);
    expect(await rowsDigest(targetUrl, `SELECT * FROM ${name}`)).toEqual(await subset());
    const sampled = await ferry(['verify', id, '--sample', '20'], worker.temporal);
    expect(sampled.stdout).toContain('(a sample of 20% of keys, report only): NOT clean after 1 pass');
    expect(sampled.stdout).toContain('0 missing, 0 extra, 0 differing');
    expect(sampled.stdout).toContain('a sample cannot make a migration clean');
    expect(sampled.code).toBe(ExitCode.failed);

    // Every row compared: clean. A sample that finds nothing then keeps it so.
    const full = await ferry(['verify', id], worker.temporal);
    expect(full.stdout).toContain('(every row, report only): clean after 1 pass: 2,000 rows checked, 0 missing, 0 extra, 0 differing');
    expect(full.code).toBe(ExitCode.ok);
    const sampledClean = await ferry(['verify', id, '--sample', '20'], worker.temporal);
    expect(sampledClean.stdout).toContain('(a sample of 20% of keys, report only): clean after 1 pass');
    expect(sampledClean.code).toBe(ExitCode.ok);

    const runs = await sql(targetUrl, `SELECT run, kind, sample_percent, extra, clean FROM ferry.verification_runs WHERE migration_id = $1 ORDER BY run`, [id]);
    expect(runs).toEqual([
      { run: 1, kind: 'lifecycle', sample_percent: null, extra: '0', clean: true },
      { run: 2, kind: 'after-finish', sample_percent: null, extra: '1', clean: false },
      { run: 3, kind: 'after-finish', sample_percent: '20', extra: '0', clean: false },
      { run: 4, kind: 'after-finish', sample_percent: null, extra: '0', clean: true },
      { run: 5, kind: 'after-finish', sample_percent: '20', extra: '0', clean: true },
    ]);
    for (const workflowId of [`${id}/check-1`, `${id}/check-2`]) {
      const history = await worker.client.workflow.getHandle(workflowId).fetchHistory();
      await Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, workflowId);
    }
  });

  it('with a lineage column, a sampled check keeps a difference found earlier outside its sample open', async () => {
    tables += 1;
    const name = `items_${tables}`;
    await sql(targetUrl, `CREATE TABLE ${name} (id int PRIMARY KEY, item_id int NOT NULL, name text NOT NULL, price numeric(10,2) NOT NULL, tags jsonb)`);
    const plan = validatePlan({
      name: `after-${tables}`,
      source: { connection: 'SRC', table: 'items', key: 'id' },
      target: { connection: 'TGT', table: name, key: 'id', sourceKey: 'item_id' },
      transform: { sql: { id: 'id + 100000', item_id: 'id', name: 'name', price: 'price', tags: 'tags' } },
      shards: { count: 3 },
      verify: { chunkSize: 400, maxPasses: 2, inFlightDelaySeconds: 0.1 },
    });
    const id = (await startMigration(worker.client, worker.temporal, plan, { execute: true })).workflowId;
    expect((await worker.client.workflow.getHandle(id).result()).phase).toBe('completed');
    const source = () => rowsDigest(sourceUrl, 'SELECT id + 100000 AS id, id AS item_id, name, price, tags FROM items');
    const target = () => rowsDigest(targetUrl, `SELECT * FROM ${name}`);
    expect(await target()).toEqual(await source());

    await sql(targetUrl, `UPDATE ${name} SET price = 1.00 WHERE id = 100007`);
    const reported = await ferry(['verify', id], worker.temporal);
    expect(reported.stdout).toContain('NOT clean after 1 pass: 3,000 rows checked, 0 missing, 0 extra, 1 differing');
    // Source key 7 is outside this sample: the difference is compared again as one left open, and is still there.
    const sampled = await ferry(['verify', id, '--sample', '1'], worker.temporal);
    expect(sampled.stdout).toContain('(a sample of 1% of keys, report only): NOT clean after 1 pass');
    expect(sampled.stdout).toContain('0 missing, 0 extra, 1 differing (1 left unresolved by an earlier check)');
    expect(sampled.code).toBe(ExitCode.failed);
    expect((await ferry(['mismatches', id], worker.temporal)).stdout).toContain('key 100007: value (price)');

    const repaired = await ferry(['verify', id, '--repair'], worker.temporal);
    expect(repaired.stdout).toContain('(every row, repairing): clean after 2 passes');
    expect(await target()).toEqual(await source());
  });

  it('checks and repairs an aborted migration', async () => {
    const { plan, name } = await planFor({ lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.1 } });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    await eventually(async () => ((await migrationReport(worker.client, id)).status?.gate?.name === 'cutover-reads' ? true : undefined), 60_000, 'the gate');
    expect((await ferry(['abort', id, '--reason', 'changed our mind'], worker.temporal)).code).toBe(ExitCode.ok);
    expect((await handle.result()).phase).toBe('aborted');

    await damage(name);
    const damaged = await digest(targetUrl, name);
    const reported = await ferry(['verify', id], worker.temporal);
    expect(reported.code).toBe(ExitCode.failed);
    expect(reported.stdout).toContain('1 missing, 1 extra, 1 differing');
    expect(await digest(targetUrl, name)).toEqual(damaged);
    const repaired = await ferry(['verify', id, '--repair'], worker.temporal);
    expect(repaired.code).toBe(ExitCode.ok);
    expect(await sameAsSource(name)).toBe(true);
  });

  it('refuses to check a migration whose target another migration has taken since', async () => {
    const { plan, name } = await planFor();
    const first = (await startMigration(worker.client, worker.temporal, plan, { execute: true })).workflowId;
    await worker.client.workflow.getHandle(first).result();
    const second = await startMigration(worker.client, worker.temporal, { ...plan, name: `${plan.name}-again` }, { execute: true, rerun: true });
    expect((await second.result()).phase).toBe('completed');
    await damage(name);
    const damaged = await digest(targetUrl, name);
    const refused = await ferry(['verify', first, '--repair'], worker.temporal);
    expect(refused.code).toBe(ExitCode.badInput);
    expect(refused.stderr).toContain(`now holds migration ${second.workflowId} (completed); checking ${first} would compare and repair rows that are no longer its own`);
    expect(await digest(targetUrl, name)).toEqual(damaged);
    expect(await sql(targetUrl, 'SELECT run FROM ferry.verification_runs WHERE migration_id = $1 AND kind = $2', [first, 'after-finish'])).toEqual([]);
  });

  it('refuses to check a dry run, and starts nothing', async () => {
    const { plan } = await planFor();
    const id = (await startMigration(worker.client, worker.temporal, plan, { execute: false })).workflowId;
    await worker.client.workflow.getHandle(id).result();
    const refused = await ferry(['verify', id], worker.temporal);
    expect(refused.code).toBe(ExitCode.badInput);
    expect(refused.stderr).toContain('it was a dry run and copied nothing to verify');
    await expect(worker.client.workflow.getHandle(`${id}/check-1`).describe()).rejects.toThrow(/not found/i);
    const forceAlone = await ferry(['verify', id, '--force'], worker.temporal);
    expect(forceAlone.code).toBe(ExitCode.badInput);
    expect(forceAlone.stderr).toContain('--force goes with --repair');
  });
});
