/**
 * A real physical standby that applies the source's WAL late, as a replica under load does: the
 * copy holds while the standby's replay lag is over backoff.maxReplicaLagSeconds, says so, goes
 * on once the standby keeps up, and the standby ends with the same rows as the primary. With more
 * lag allowed to the back-off, the pacing controller's replica-lag signal holds the rate down.
 * A person at a gate sees over how many standbys the lag was read, and a slot left by one that
 * went down, with the WAL it holds; the copy holds while that WAL is over the back-off's limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationReport, runDoctor, startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { startPostgres, type PostgresServer, type Standby } from '../../scripts/services/postgres';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { eventually, rowsDigest, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 20_000;
/** WAL is applied this late on the standby: its replay lag reads about this, over the 1 s allowed. */
const APPLY_DELAY_SECONDS = 4;

describe('back-off for a lagging standby', () => {
  let server: PostgresServer;
  let standby: Standby;
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    server = await startPostgres({ local: true });
    url = await server.createDatabase('replica_lag');
    await sql(url, `
      CREATE TABLE readings (id int PRIMARY KEY, value int NOT NULL, note text);
      INSERT INTO readings SELECT i, i * 7, 'reading ' || i FROM generate_series(1, ${ROWS}) i;
      CREATE TABLE readings_v2 (id int PRIMARY KEY, value bigint NOT NULL, note text);
      CREATE TABLE readings_v3 (id int PRIMARY KEY, value bigint NOT NULL, note text);
      CREATE TABLE readings_v4 (id int PRIMARY KEY, value bigint NOT NULL, note text);
      CREATE TABLE readings_v5 (id int PRIMARY KEY, value bigint NOT NULL, note text);
      CREATE TABLE wal_filler (id int, note text);`);
    standby = await server.standby!(APPLY_DELAY_SECONDS);
    worker = await startWorker({ DB: url });
  }, 90_000);
  afterAll(async () => {
    await worker?.stop();
    await server?.stop();
  });

  it('holds while the standby replays late, names the lag, and ends equal on the primary and the standby', async () => {
    const plan = validatePlan({
      name: 'replica-lag',
      source: { connection: 'DB', table: 'readings', key: 'id' },
      target: { connection: 'DB', table: 'readings_v2' },
      transform: { sql: { id: 'id', value: 'value', note: 'note' } },
      throttle: { rowsPerSecond: 4000, batchSize: 200, checkpointSeconds: 0.5 },
      backoff: { checkEverySeconds: 0.2, maxReplicaLagSeconds: 1 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const reasons = async () => ((await migrationReport(worker.client, handle.workflowId)).status?.shards ?? []).map((s) => s.throttleReason ?? '');
    const held = await eventually(
      async () => (await reasons()).find((reason) => /^holding: replica lag [\d.]+ s is over backoff\.maxReplicaLagSeconds \(1 s\): the copy goes on once the replica catches up, or raise the limit \(ferry throttle --max-replica-lag-seconds\)$/.test(reason)),
      60_000,
      'the hold for the lagging standby',
    );
    // The lag it read is the standby's, measured by Postgres: about the delay.
    expect(Number(/replica lag ([\d.]+) s/.exec(held)![1])).toBeGreaterThan(1);
    // Held, not slowed: no row moves while the standby stays behind.
    const copied = async () => (await sqlRow(url, 'SELECT count(*)::int AS n FROM readings_v2')).n as number;
    const before = await copied();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(await copied()).toBe(before);
    expect(before).toBeLessThan(ROWS);
    expect((await reasons()).some((reason) => reason.startsWith('holding: replica lag'))).toBe(true);

    // The standby keeps up again: the copy goes on and completes.
    await standby.setApplyDelay(0);
    const status = await handle.result();
    expect(status.rowsWritten).toBe(ROWS);

    // The test's own md5 of every row: the target equals the source, and the standby, once it has
    // replayed, holds the same target as the primary.
    const source = await rowsDigest(url, 'SELECT id, value::bigint, note FROM readings');
    const target = await rowsDigest(url, 'SELECT id, value, note FROM readings_v2');
    expect(target).toEqual({ rows: ROWS, md5: source.md5 });
    await eventually(async () => (await rowsDigest(standby.url('replica_lag'), 'SELECT id, value, note FROM readings_v2')).md5 === target.md5 || undefined, 30_000, 'the standby to replay the copy');
  });

  it("paces the copy to its lowest rate by the controller's replica-lag signal, when the back-off allows more lag", async () => {
    await standby.setApplyDelay(APPLY_DELAY_SECONDS);
    const plan = validatePlan({
      name: 'replica-lag-paced',
      source: { connection: 'DB', table: 'readings', key: 'id' },
      target: { connection: 'DB', table: 'readings_v3' },
      transform: { sql: { id: 'id', value: 'value', note: 'note' } },
      throttle: { rowsPerSecond: 4000, batchSize: 200, checkpointSeconds: 0.5, budget: { maxReplicaLagSeconds: 1 } },
      backoff: { maxReplicaLagSeconds: 3600 },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    await eventually(
      async () =>
        ((await migrationReport(worker.client, handle.workflowId)).status?.shards ?? []).some((s) =>
          /^paced at 500 rows\/s by replica-lag: replica lag [\d.]+ s, budget 1 s$/.test(s.throttleReason ?? ''),
        ) || undefined,
      60_000,
      'the copy paced by replica lag',
    );
    await standby.setApplyDelay(0);
    expect((await handle.result()).rowsWritten).toBe(ROWS);
    const source = await rowsDigest(url, 'SELECT id, value::bigint, note FROM readings');
    expect(await rowsDigest(url, 'SELECT id, value, note FROM readings_v3')).toEqual({ rows: ROWS, md5: source.md5 });
  });

  it('shows the approver over how many standbys the lag was read, and a slot nothing reads with the WAL it holds', async () => {
    const plan = validatePlan({
      name: 'replica-lag-gate',
      source: { connection: 'DB', table: 'readings', key: 'id' },
      target: { connection: 'DB', table: 'readings_v4' },
      transform: { sql: { id: 'id', value: 'value', note: 'note' } },
      lifecycle: { dualWrites: true, noApps: true, soakSeconds: 0, cutover: true, gates: { figuresEverySeconds: 1 } },
    });
    const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
    const id = handle.workflowId;
    const lookAt = async () => (await ferry(['status', id], worker.temporal)).stdout.split('\n').find((line) => line.includes('look at:')) ?? '';
    await eventually(async () => / source replica lag [\d.]+ s \(1 standby streaming\), longest query \d+ s \(as of /.test(await lookAt()) || undefined, 90_000, 'the gate figures over one standby');

    // The standby goes down, and a slot kept for it holds the WAL written since. An idle slot
    // named as Ferry's capture slots are is left out (the capture status shows those).
    await sql(url, `SELECT pg_create_physical_replication_slot('standby_gone', true), pg_create_physical_replication_slot('ferry_idle_capture', true)`);
    standby.stop();
    try {
      await sql(url, 'INSERT INTO readings_v2 SELECT id + 100000, value, note FROM readings_v2');
      const shown = await eventually(async () => {
        const line = await lookAt();
        return /\(no standby streaming\), longest query \d+ s; 1 replication slot nothing reads, holding up to [\d.]+ (kB|MB) of WAL \(a standby or consumer down\?\)/.test(line) ? line : undefined;
      }, 30_000, 'the gate figures with the standby down');
      // The WAL shown is what the slot holds as Postgres counts it (read after, so no less).
      const { held } = await sqlRow(url, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS held FROM pg_replication_slots WHERE slot_name = 'standby_gone'`);
      const [, amount, unit] = / holding up to ([\d.]+) (kB|MB) of WAL/.exec(shown)!;
      const shownBytes = Number(amount) * (unit === 'MB' ? 1024 * 1024 : 1024);
      expect(shownBytes).toBeGreaterThan(100_000);
      expect(shownBytes).toBeLessThanOrEqual(held + 1024 * 1024);
    } finally {
      await sql(url, `SELECT pg_drop_replication_slot('standby_gone'), pg_drop_replication_slot('ferry_idle_capture')`);
    }
    expect((await ferry(['abort', id, '--by', 'test', '--reason', 'figures seen'], worker.temporal)).code).toBe(ExitCode.ok);
    expect((await handle.result()).phase).toBe('aborted');
  });

  it('holds while a slot nothing reads keeps more WAL than the back-off allows, names the slot, and goes on once it is dropped', async () => {
    // A standby that is down leaves its slot behind: from the moment it stopped reading, every
    // byte of WAL the copy writes stays on the source's disk for it.
    // (A new slot holds the WAL since the last checkpoint's redo point: the checkpoint leaves it
    // the WAL from now on.)
    await sql(url, 'CHECKPOINT');
    await sql(url, `SELECT pg_create_physical_replication_slot('standby_down', true)`);
    try {
      const plan = validatePlan({
        name: 'replica-lag-slot',
        source: { connection: 'DB', table: 'readings', key: 'id' },
        target: { connection: 'DB', table: 'readings_v5' },
        transform: { sql: { id: 'id', value: 'value', note: 'note' } },
        // The hold alone: no pacing by the standby's lag, should it still stream.
        throttle: { rowsPerSecond: 4000, batchSize: 200, checkpointSeconds: 0.5, budget: false },
        backoff: { checkEverySeconds: 0.2, maxUnreadSlotWalMb: 4 },
      });
      // The doctor names the slot before the start; under the limit, it is no warning.
      const slotCheck = async () => (await runDoctor(worker.client, worker.temporal, plan)).checks.find((c) => c.name === 'replication slots nothing reads');
      expect(await slotCheck()).toMatchObject({
        side: 'source',
        status: 'ok',
        detail: expect.stringMatching(/^1: "standby_down" holds [\d.]+ (B|kB|MB) of WAL, and the WAL the copy writes piles up behind it; the copy holds past backoff\.maxUnreadSlotWalMb \(4 MB\)$/),
      });
      const handle = await startMigration(worker.client, worker.temporal, plan, { execute: true });
      const reasons = async () => ((await migrationReport(worker.client, handle.workflowId)).status?.shards ?? []).map((s) => s.throttleReason ?? '');
      const copied = async () => (await sqlRow(url, 'SELECT count(*)::int AS n FROM readings_v5')).n as number;
      await eventually(async () => (await copied()) > 0 || undefined, 30_000, 'the first rows');
      // The application's own writes add WAL too: past the limit, whoever wrote it.
      await sql(url, `INSERT INTO wal_filler SELECT i, repeat('x', 200) FROM generate_series(1, 40000) i`);
      const held = await eventually(
        async () =>
          (await reasons()).find((reason) =>
            /^holding: replication slot "standby_down", which nothing reads, holds [\d.]+ MB of WAL, over backoff\.maxUnreadSlotWalMb \(4 MB\): start its standby or consumer, drop the slot, or raise the limit \(ferry throttle --max-unread-slot-wal-mb\)$/.test(reason),
          ),
        30_000,
        'the hold for the slot nothing reads',
      );
      // The WAL named is what the slot holds as Postgres counts it (read after, so no less).
      const { bytes } = await sqlRow(url, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS bytes FROM pg_replication_slots WHERE slot_name = 'standby_down'`);
      const namedMb = Number(/holds ([\d.]+) MB/.exec(held)![1]);
      expect(namedMb).toBeGreaterThan(4);
      expect(namedMb * 1024 * 1024).toBeLessThanOrEqual((bytes as number) + 0.1 * 1024 * 1024);
      // Held, not slowed: no row moves while the slot stays.
      const before = await copied();
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(await copied()).toBe(before);
      expect(before).toBeLessThan(ROWS);
      // Over the limit, the doctor warns that a copy would hold from its start.
      expect(await slotCheck()).toMatchObject({ status: 'warn', detail: expect.stringMatching(/^the copy would hold from its start: replication slot "standby_down", which nothing reads, holds /) });

      // The slot goes: the copy goes on and completes, equal by the test's own md5.
      await sql(url, `SELECT pg_drop_replication_slot('standby_down')`);
      expect((await handle.result()).rowsWritten).toBe(ROWS);
      const source = await rowsDigest(url, 'SELECT id, value::bigint, note FROM readings');
      expect(await rowsDigest(url, 'SELECT id, value, note FROM readings_v5')).toEqual({ rows: ROWS, md5: source.md5 });
      expect(await slotCheck()).toMatchObject({ status: 'ok', detail: 'none: no WAL piles up for a standby or consumer that is down' });
    } finally {
      await sql(url, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'standby_down'`);
    }
  });
});
