/**
 * A small application for end-to-end scenarios: it inserts, updates and hard-deletes users at a
 * steady rate and reads them back, always through Ferry's client library and its flags, and
 * remembers every write the library acknowledged.
 */
import pg from 'pg';
import { Registry } from 'prom-client';
import { createFerryClient, type FerryClient } from '../../client';

export interface UserRow {
  fullName: string;
  email: string;
}

export interface ScenarioApp {
  /** What every acknowledged write says each id holds now; null: deleted. */
  expected: Map<number, UserRow | null>;
  /** Reads served by each store. */
  readsFrom: { old: number; new: number };
  operations: number;
  errors: unknown[];
  client: FerryClient;
  /** Stops writing (and waits for the write in flight). */
  pause(): Promise<void>;
  resume(): void;
  stop(): Promise<void>;
}

const split = (fullName: string) => {
  const first = fullName.split(' ')[0]!;
  return { first, last: fullName.length > first.length ? fullName.slice(first.length + 1) : null };
};

export function startScenarioApp(options: { url: string; migration: string; firstNewId: number; existingIds: number[]; intervalMs?: number }): ScenarioApp {
  const pool = new pg.Pool({ connectionString: options.url, max: 4 });
  pool.on('error', () => {});
  const client = createFerryClient({ pool, migration: options.migration, registry: new Registry(), listen: true, readTallyEveryMs: 300 });
  const expected = new Map<number, UserRow | null>();
  const live = [...options.existingIds];
  let nextId = options.firstNewId;
  let paused = false;
  let stopped = false;
  const app: ScenarioApp = {
    expected,
    readsFrom: { old: 0, new: 0 },
    operations: 0,
    errors: [],
    client,
    pause: async () => {
      paused = true;
      await idle;
    },
    resume: () => {
      paused = false;
    },
    stop: async () => {
      stopped = true;
      await loop;
      await client.close();
      await pool.end();
    },
  };

  const upsertNew = (id: number, row: UserRow) => {
    const { first, last } = split(row.fullName);
    return pool.query(
      `INSERT INTO users_v2 (id, first_name, last_name, email) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, email = EXCLUDED.email`,
      [id, first, last, row.email],
    );
  };

  async function step(round: number): Promise<void> {
    const kind = round % 5;
    if (kind === 0 || live.length < 10) {
      const id = nextId++;
      const row = { fullName: `New User${round}`, email: `new${id}@example.com` };
      await client.write('insert-user', {
        old: () => pool.query('INSERT INTO users (id, full_name, email) VALUES ($1, $2, $3)', [id, row.fullName, row.email]),
        new: () => upsertNew(id, row),
      });
      live.push(id);
      expected.set(id, row);
    } else if (kind === 4) {
      const id = live.splice((round * 7919) % live.length, 1)[0]!;
      await client.delete('delete-user', {
        table: 'public.users_v2',
        key: String(id),
        old: () => pool.query('DELETE FROM users WHERE id = $1', [id]),
        new: (tx) => tx.query('DELETE FROM users_v2 WHERE id = $1', [id]),
      });
      expected.set(id, null);
    } else if (kind === 3) {
      const id = live[(round * 104729) % live.length]!;
      await client.compareReads('user-by-id', {
        old: async () => {
          app.readsFrom.old += 1;
          return (await pool.query('SELECT id, email FROM users WHERE id = $1', [id])).rows;
        },
        new: async () => {
          app.readsFrom.new += 1;
          return (await pool.query('SELECT id, email FROM users_v2 WHERE id = $1', [id])).rows;
        },
        key: (row: { id: string }) => String(row.id),
      });
    } else {
      const id = live[(round * 31) % live.length]!;
      const row = { fullName: `Renamed Person ${round}`, email: `renamed${round}@example.com` };
      await client.write('update-user', {
        old: () => pool.query('UPDATE users SET full_name = $2, email = $3 WHERE id = $1', [id, row.fullName, row.email]),
        // The application writes the whole row to the new table: an upsert, so a row the
        // backfill has not reached yet is there, and the backfill keeps it.
        new: () => upsertNew(id, row),
      });
      expected.set(id, row);
    }
    app.operations += 1;
  }

  let idle: Promise<void> = Promise.resolve();
  const loop = (async () => {
    for (let round = 1; !stopped; round += 1) {
      if (paused) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      let done: () => void = () => {};
      idle = new Promise<void>((resolve) => (done = resolve));
      try {
        await step(round);
      } catch (error) {
        app.errors.push(error);
      } finally {
        done();
      }
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 15));
    }
  })();
  return app;
}
