/** The sample tables the demo and `ferry dev` migrate: users, and users_v2 with full_name split in two. */
import pg from 'pg';

/** users (id, full_name, email, created_at) with `rows` rows, and an empty users_v2 to split them into; replaces both. */
export async function createSampleUsers(url: string, rows: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`
      DROP TABLE IF EXISTS users, users_v2;
      CREATE TABLE users (
        id bigint PRIMARY KEY,
        full_name text NOT NULL,
        email text NOT NULL,
        created_at timestamptz NOT NULL
      );
      INSERT INTO users
      SELECT i,
             (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'])[1 + i % 8] || ' ' ||
             (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Thompson','van Rossum'])[1 + i % 9],
             'user' || i || '@example.com',
             timestamptz '2020-01-01 00:00:00.123456+00' + i * interval '17 minutes 3.000001 seconds'
        FROM generate_series(1, ${rows}) AS i;
      ANALYZE users;
      CREATE TABLE users_v2 (
        id bigint PRIMARY KEY,
        first_name text NOT NULL,
        last_name text,
        email text NOT NULL,
        created_at timestamptz NOT NULL
      );`);
  } finally {
    await client.end();
  }
}
