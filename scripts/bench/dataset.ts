/**
 * The benchmark's data: a source table with realistic columns, the target it is reshaped into,
 * the SQL transform between them, and the bench's own correctness check of a copied target.
 */
import pg from 'pg';

export const SOURCE_TABLE = 'source';
export const TARGET_TABLE = 'target';

/** The source table's shape (the benchmark's rows, and pgcopydb's empty copy of it). */
export const sourceTableDdl = `CREATE TABLE ${SOURCE_TABLE} (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL,
  payload jsonb NOT NULL,
  amount numeric(12, 2) NOT NULL
)`;

export interface TargetColumn {
  name: string;
  type: string;
  /** SQL over the source row (alias-free column names). */
  sql: string;
}

/**
 * The transform every path runs. scripts/bench-transform.ts is its JavaScript twin and must
 * produce the same values, so the same check applies to both.
 */
export const targetColumns: TargetColumn[] = [
  { name: 'id', type: 'bigint', sql: 'id' },
  { name: 'display_name', type: 'text', sql: 'upper(name)' },
  { name: 'created_at', type: 'timestamptz', sql: 'created_at' },
  { name: 'payload', type: 'jsonb', sql: `payload || '{"schema": 2}'::jsonb` },
  { name: 'amount_cents', type: 'bigint', sql: '(amount * 100)::bigint' },
  { name: 'country', type: 'text', sql: `payload->>'country'` },
];

export const transformSql: Record<string, string> = Object.fromEntries(targetColumns.map((c) => [c.name, c.sql]));

/** SELECT list of the transform with every value cast to its target type (binary COPY needs exact types). */
export function transformSelect(): string {
  return targetColumns.map((c) => `(${c.sql})::${c.type} AS ${pg.escapeIdentifier(c.name)}`).join(', ');
}

export function targetColumnList(): string {
  return targetColumns.map((c) => pg.escapeIdentifier(c.name)).join(', ');
}

const targetDdl = `
  CREATE TABLE ${TARGET_TABLE} (
    ${targetColumns.map((c) => `${pg.escapeIdentifier(c.name)} ${c.type} NOT NULL${c.name === 'id' ? ' PRIMARY KEY' : ''}`).join(',\n    ')}
  )`;

/** `use` on a connection of its own to `url`, closed afterwards. */
export async function withConnection<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/**
 * Fills the source table with `rows` rows: a bigint key, text, timestamptz with microseconds,
 * jsonb of about 200 bytes and numeric. Vacuumed and frozen afterwards, so no measured path
 * pays for setting hint bits on first read.
 */
export async function createSource(url: string, rows: number): Promise<{ jsonbBytes: number; tableMb: number }> {
  return withConnection(url, async (client) => {
    await client.query(`
      DROP TABLE IF EXISTS ${SOURCE_TABLE}, ${TARGET_TABLE};
      ${sourceTableDdl};
      INSERT INTO ${SOURCE_TABLE}
      SELECT i,
             (ARRAY['ada','grace','alan','edsger','barbara','donald','frances','ken'])[1 + i % 8] || ' ' ||
             (ARRAY['lovelace','hopper','turing','dijkstra','liskov','knuth','allen','thompson','van rossum'])[1 + i % 9],
             timestamptz '2020-01-01 00:00:00.123456+00' + i * interval '17 minutes 3.000001 seconds',
             jsonb_build_object(
               'email', 'user' || i || '@example.com',
               'country', (ARRAY['NL','DE','FR','US','JP','BR','IN'])[1 + i % 7],
               'tags', jsonb_build_array('tag-' || i % 13, 'tag-' || i % 17, 'plan-' || (ARRAY['free','pro','team'])[1 + i % 3]),
               'score', ((i::bigint * 7919) % 10000) / 100.0::float8,
               'address', jsonb_build_object('street', i % 500 || ' Main Street', 'city', 'City ' || i % 1000, 'zip', lpad((i % 100000)::text, 5, '0')),
               'preferences', jsonb_build_object('newsletter', i % 2 = 0, 'theme', (ARRAY['dark','light'])[1 + i % 2])
             ),
             ((i::bigint * 104729) % 10000000) / 100.0
        FROM generate_series(1, ${rows}) AS i;
      ${targetDdl};`);
    await client.query(`VACUUM (FREEZE, ANALYZE) ${SOURCE_TABLE}`);
    const size = await client.query<{ jsonb_bytes: string; table_bytes: string }>(
      `SELECT (SELECT avg(length(payload::text)) FROM ${SOURCE_TABLE} WHERE id % 100 = 0)::int AS jsonb_bytes,
              pg_total_relation_size('${SOURCE_TABLE}') AS table_bytes`,
    );
    return { jsonbBytes: Number(size.rows[0]!.jsonb_bytes), tableMb: Number(size.rows[0]!.table_bytes) / 1024 / 1024 };
  });
}

export async function createTarget(url: string): Promise<void> {
  await withConnection(url, (client) => client.query(`DROP TABLE IF EXISTS ${TARGET_TABLE}; ${targetDdl}`));
}

/** Empties the target and checkpoints, so every measured path starts from the same state. */
export async function resetTarget(url: string): Promise<void> {
  await withConnection(url, async (client) => {
    await client.query(`TRUNCATE ${TARGET_TABLE}`);
    await client.query('CHECKPOINT');
  });
}

export async function countRows(url: string, table: string): Promise<number> {
  return withConnection(url, async (client) => {
    const result = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${pg.escapeIdentifier(table)}`);
    return Number(result.rows[0]!.n);
  });
}

/** Rows of the spot check, as Postgres prints them (so microseconds and jsonb content count). */
const SAMPLE_ROWS = 3000;

interface Sample {
  digest: string;
  rows: number;
  withMicroseconds: number;
}

async function sampleOf(url: string, select: string, stride: number): Promise<Sample> {
  return withConnection(url, async (client) => {
    const result = await client.query<{ digest: string | null; rows: string; with_us: string }>(
      `SELECT md5(string_agg(t::text, E'\\n' ORDER BY t.id)) AS digest, count(*) AS rows,
              count(*) FILTER (WHERE extract(microseconds FROM t.created_at)::bigint % 1000 <> 0) AS with_us
         FROM (${select}) AS t`,
      [stride],
    );
    const row = result.rows[0]!;
    return { digest: row.digest ?? '', rows: Number(row.rows), withMicroseconds: Number(row.with_us) };
  });
}

async function sampleRows(url: string, select: string, stride: number): Promise<Map<string, string>> {
  return withConnection(url, async (client) => {
    const result = await client.query<{ id: string; line: string }>(`SELECT t.id::text AS id, t::text AS line FROM (${select}) AS t ORDER BY t.id`, [stride]);
    return new Map(result.rows.map((r) => [r.id, r.line]));
  });
}

/**
 * The bench's own check that a copy is complete and exact: the target has exactly the source's
 * row count, and a spread sample of rows reads the same (as text, so timestamps must keep their
 * microseconds and jsonb its content) as the SQL transform of the source. Returns the problems.
 */
export async function checkTarget(sourceUrl: string, targetUrl: string, expectedRows: number): Promise<string[]> {
  const stride = Math.max(1, Math.floor(expectedRows / SAMPLE_ROWS));
  const expectedSelect = `SELECT ${transformSelect()} FROM ${SOURCE_TABLE} AS s WHERE s.id % $1 = 0`;
  const actualSelect = `SELECT ${targetColumnList()} FROM ${TARGET_TABLE} WHERE id % $1 = 0`;
  const [sourceRows, targetRows, expected, actual] = await Promise.all([
    countRows(sourceUrl, SOURCE_TABLE),
    countRows(targetUrl, TARGET_TABLE),
    sampleOf(sourceUrl, expectedSelect, stride),
    sampleOf(targetUrl, actualSelect, stride),
  ]);
  const problems: string[] = [];
  if (targetRows !== sourceRows) problems.push(`target has ${targetRows} rows, source ${sourceRows}`);
  if (actual.withMicroseconds !== expected.withMicroseconds) {
    problems.push(`${actual.withMicroseconds} sampled target timestamps have sub-millisecond digits, expected ${expected.withMicroseconds} (microseconds lost?)`);
  }
  if (actual.digest !== expected.digest) {
    const [want, got] = await Promise.all([sampleRows(sourceUrl, expectedSelect, stride), sampleRows(targetUrl, actualSelect, stride)]);
    const differing = [...want].filter(([id, line]) => got.get(id) !== line);
    const first = differing[0];
    problems.push(
      `${differing.length} of ${want.size} sampled rows differ` +
        (first ? `; first, id ${first[0]}:\n      expected ${first[1]}\n      found    ${got.get(first[0]) ?? '(missing)'}` : ''),
    );
  }
  return problems;
}
