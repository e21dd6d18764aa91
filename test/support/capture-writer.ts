/**
 * A writer for capture tests: clients that insert, update, hard-delete and change keys of a
 * source table as an application would, some in transactions of several statements and some
 * rolled back, until stopped. Plain SQL, knowing nothing of Ferry.
 */
import pg from 'pg';

export interface WriterCounts {
  inserts: number;
  updates: number;
  deletes: number;
  keyChanges: number;
  rolledBack: number;
}

export interface RunningWriter {
  /** Stops every client after its current transaction; resolves with what they wrote. */
  stop(): Promise<WriterCounts>;
}

/**
 * Writes `table (id int primary key, balance numeric, note text)` with `clients` connections.
 * Keys it inserts or moves to start at `freshKeysFrom`, one range per client, so none collide.
 */
export function startWriter(url: string, options: { table: string; keys: number; clients?: number; freshKeysFrom: number; pauseMs?: number }): RunningWriter {
  const counts: WriterCounts = { inserts: 0, updates: 0, deletes: 0, keyChanges: 0, rolledBack: 0 };
  let stopping = false;
  const loops = Array.from({ length: options.clients ?? 3 }, async (_, client) => {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    let fresh = options.freshKeysFrom + client * 1_000_000;
    const anyKey = () => 1 + Math.floor(Math.random() * options.keys);
    const t = options.table;
    try {
      while (!stopping) {
        await writeOnce().catch(async (error: unknown) => {
          // Two transactions touching the same two rows in opposite orders: one loses, as in any application.
          if ((error as { code?: string }).code !== '40P01') throw error;
          await db.query('ROLLBACK');
          counts.rolledBack += 1;
        });
        if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
      }
    } finally {
      await db.end();
    }

    async function writeOnce(): Promise<void> {
      const dice = Math.random();
      if (dice < 0.45) {
        await db.query(`UPDATE ${t} SET balance = balance + $2, note = md5(random()::text) WHERE id = $1`, [anyKey(), (Math.random() * 100).toFixed(2)]);
        counts.updates += 1;
      } else if (dice < 0.6) {
        await db.query(`INSERT INTO ${t} (id, balance, note) VALUES ($1, $2, 'inserted')`, [fresh++, (Math.random() * 1000).toFixed(2)]);
        counts.inserts += 1;
      } else if (dice < 0.7) {
        await db.query(`DELETE FROM ${t} WHERE id = $1`, [anyKey()]);
        counts.deletes += 1;
      } else if (dice < 0.8) {
        await db.query(`UPDATE ${t} SET id = $2 WHERE id = $1`, [anyKey(), fresh++]);
        counts.keyChanges += 1;
      } else if (dice < 0.95) {
        // Several statements in one transaction: the log sees them under one transaction id.
        await db.query('BEGIN');
        await db.query(`UPDATE ${t} SET balance = balance - 1 WHERE id = $1`, [anyKey()]);
        await db.query(`UPDATE ${t} SET balance = balance + 1, note = 'moved' WHERE id = $1`, [anyKey()]);
        await db.query(`INSERT INTO ${t} (id, balance, note) VALUES ($1, 0, 'in a transaction')`, [fresh++]);
        await db.query('COMMIT');
        counts.updates += 2;
        counts.inserts += 1;
      } else {
        await db.query('BEGIN');
        await db.query(`UPDATE ${t} SET balance = -999999 WHERE id = $1`, [anyKey()]);
        await db.query(`DELETE FROM ${t} WHERE id = $1`, [anyKey()]);
        await db.query('ROLLBACK');
        counts.rolledBack += 1;
      }
    }
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return counts;
    },
  };
}
