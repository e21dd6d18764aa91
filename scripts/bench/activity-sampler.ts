/**
 * Where a Ferry copy spends its time, seen from Postgres: samples pg_stat_activity for the
 * worker's connections (application_name 'ferry') and sorts each into the step of a batch it is
 * in. A sample with no Ferry statement running is time spent outside the database (Temporal,
 * Node, the network).
 */
import pg from 'pg';

const SAMPLE_EVERY_MS = 50;

export interface ActivityProfile {
  samples: number;
  /** Share of samples in which no Ferry connection was running a statement. */
  noneActive: number;
  /** Step name to the share of (connection, sample) pairs in that step, over active connections. */
  steps: Record<string, number>;
  /** Mean Ferry connections running a statement at once. */
  meanActive: number;
}

function stepOf(query: string, state: string, waitEvent: string | null): string {
  if (state === 'idle in transaction') return 'idle in transaction (between statements of a batch)';
  const q = query.trimStart();
  if (q.startsWith('SELECT batch.last_key') || /^SELECT \S+::text AS last_key FROM/.test(q)) return 'find the batch end (key index walk)';
  if (q.startsWith('COPY (SELECT')) return 'COPY out of the source';
  if (/^COPY "ferry_stage/.test(q)) return 'COPY into staging';
  if (/^INSERT INTO .* FROM "ferry_stage/s.test(q)) return 'INSERT from staging ON CONFLICT';
  // The text may be cut short (track_activity_query_size): the upsert is told by its target alias.
  if (q.startsWith('INSERT INTO')) return /^INSERT INTO \S+ AS t \(/.test(q) ? 'INSERT ... SELECT ON CONFLICT (same database)' : 'INSERT ... SELECT into a clear range (same database)';
  if (q.startsWith('SELECT NOT EXISTS')) return 'is the target range clear?';
  if (/^(SAVEPOINT|ROLLBACK TO)/i.test(q)) return 'savepoint';
  if (q.startsWith('CREATE TEMP TABLE')) return 'create staging table';
  if (/^(COMMIT|BEGIN)/i.test(q)) return waitEvent ? `${q.split(/\s/)[0]!.toUpperCase()} (waiting: ${waitEvent})` : q.split(/\s/)[0]!.toUpperCase();
  return `other: ${q.slice(0, 40)}`;
}

export interface ActivitySampler {
  stop(): Promise<ActivityProfile>;
}

export async function sampleFerryActivity(adminUrl: string): Promise<ActivitySampler> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'ferry-bench-sampler' });
  await client.connect();
  let samples = 0;
  let noneActive = 0;
  let activeTotal = 0;
  const counts = new Map<string, number>();
  let stopped = false;

  const loop = (async () => {
    while (!stopped) {
      const result = await client.query<{ query: string; state: string; wait_event: string | null }>(
        `SELECT query, state, wait_event FROM pg_stat_activity WHERE application_name = 'ferry' AND state <> 'idle'`,
      );
      samples += 1;
      if (result.rows.every((r) => r.state === 'idle in transaction')) noneActive += 1;
      for (const row of result.rows) {
        if (row.state === 'active') activeTotal += 1;
        const step = stepOf(row.query, row.state, row.wait_event);
        counts.set(step, (counts.get(step) ?? 0) + 1);
      }
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS));
    }
  })();

  return {
    async stop() {
      stopped = true;
      await loop;
      await client.end();
      const pairs = [...counts.values()].reduce((a, b) => a + b, 0);
      return {
        samples,
        noneActive: samples ? noneActive / samples : 0,
        meanActive: samples ? activeTotal / samples : 0,
        steps: Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).map(([step, n]) => [step, pairs ? n / pairs : 0])),
      };
    },
  };
}
