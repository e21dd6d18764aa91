/**
 * A change apply that outlives the swap (a cancelled applier whose statement was already on its
 * way, or queued behind the swap's locks) must not write: after the swap, the target's name is
 * gone, so its statement fails, and the new table under the old name and the old table set
 * aside keep what the swap left in them. Checked with the test's own md5 of both tables.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyApplier } from '../../activities/capture/apply-keys';
import { createTableSwap, oldTableAsideName } from '../../activities/capture/swap';
import { createCaptureTrigger } from '../../activities/capture/trigger';
import { createDatabases, type Databases } from '../../activities/connections';
import { installFerrySchema } from '../../activities/state/ferry-schema';
import { validatePlan, type Plan } from '../../lib/plan';
import { runActivity } from '../support/activities';
import { createTestDatabase, sql, sqlRow } from '../support/harness';

/** md5 of a table's rows, in key order, as Postgres prints them. */
const tableDigest = async (url: string, table: string) =>
  (await sqlRow<{ digest: string | null }>(url, `SELECT md5(string_agg(t::text, '|' ORDER BY id)) AS digest FROM ${pg.escapeIdentifier(table)} AS t`)).digest;

describe('a change apply after the swap', () => {
  let url: string;
  let databases: Databases;
  let runs = 0;

  /** Tables `name` and `name_v2` equal, captured, with changes logged for keys 1..10; the plan that swaps them. */
  async function capturedPair(): Promise<{ plan: Plan; migrationId: string; source: string; aside: string }> {
    runs += 1;
    const source = `wallets_${runs}`;
    const migrationId = `late-apply-${runs}`;
    await sql(url, `
      CREATE TABLE ${source} (id int PRIMARY KEY, balance numeric(12, 2) NOT NULL, note text);
      INSERT INTO ${source} SELECT i, i * 1.5, 'note ' || i FROM generate_series(1, 200) AS i;
      CREATE TABLE ${source}_v2 (id int PRIMARY KEY, cents bigint NOT NULL, note text);
      INSERT INTO ${source}_v2 SELECT id, (balance * 100)::bigint, note FROM ${source};`);
    const plan = validatePlan({
      name: migrationId,
      source: { connection: 'DB', table: source, key: 'id' },
      target: { connection: 'DB', table: `${source}_v2` },
      transform: { sql: { id: 'id', cents: '(balance * 100)::bigint', note: 'note' } },
      capture: { mode: 'trigger', swap: true },
    });
    await runActivity(createCaptureTrigger(databases).installCapture, { migrationId, plan });
    await sql(url, `UPDATE ${source} SET note = 'changed' WHERE id <= 10`);
    return { plan, migrationId, source, aside: oldTableAsideName(source, migrationId) };
  }

  beforeAll(async () => {
    url = await createTestDatabase('capture_late_apply');
    databases = createDatabases({ env: { DB: url } });
    await installFerrySchema(databases.pool('DB'));
  });
  afterAll(() => databases?.close());

  it('fails, writing nothing, when it starts after the swap committed', async () => {
    const { plan, migrationId, source, aside } = await capturedPair();
    const swapped = await runActivity(createTableSwap(databases).swapTables, { migrationId, plan });
    expect(swapped.keysDrained).toBe(10);
    const before = { renamed: await tableDigest(url, source), aside: await tableDigest(url, aside) };

    // The keys an applier had taken from the log before it was cancelled: 1..10 changed, 300 never existed.
    const keys = [...Array.from({ length: 10 }, (_, i) => String(i + 1)), '300'];
    await expect(createKeyApplier(databases, null)(migrationId, plan, keys, 'integer')).rejects.toMatchObject({ code: '42P01', message: expect.stringContaining(`${source}_v2`) });

    expect(await tableDigest(url, source)).toBe(before.renamed);
    expect(await tableDigest(url, aside)).toBe(before.aside);
    expect((await sqlRow<{ n: number }>(url, `SELECT count(*)::int AS n FROM ${source} WHERE note = 'changed'`)).n).toBe(10);
  });

  it('fails, writing nothing, when its statements wait behind the swap\'s locks', async () => {
    const { plan, migrationId, source, aside } = await capturedPair();
    // A reader of the source holds the swap back, so that the apply's read queues behind the swap's lock request.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    const watcher = new pg.Client({ connectionString: url });
    await watcher.connect();
    try {
      await holder.query(`BEGIN; SELECT count(*) FROM ${pg.escapeIdentifier(source)}`);
      const swapping = runActivity(createTableSwap(databases).swapTables, { migrationId, plan });
      const waitingFor = async (statement: string) => {
        for (let i = 0; i < 200; i += 1) {
          const { rows } = await watcher.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE $1`, [`${statement}%`]);
          if (rows.length > 0) return;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        throw new Error(`no statement starting ${statement} waited for a lock`);
      };
      await waitingFor('LOCK TABLE');
      const applying = createKeyApplier(databases, null)(migrationId, plan, ['1', '2', '3'], 'integer');
      applying.catch(() => {});
      await waitingFor('SELECT');
      await holder.query('COMMIT');

      const swapped = await swapping;
      expect(swapped.attempts).toBe(1);
      await expect(applying).rejects.toMatchObject({ code: '42P01', message: expect.stringContaining(`${source}_v2`) });
      // The new table under the old name holds every row the drain wrote, and nothing since.
      expect(await tableDigest(url, source)).toBe(
        (await sqlRow<{ digest: string }>(url, `SELECT md5(string_agg(row(id, (balance * 100)::bigint, note)::text, '|' ORDER BY id)) AS digest FROM ${aside}`)).digest,
      );
    } finally {
      await holder.end();
      await watcher.end();
    }
  });
});
