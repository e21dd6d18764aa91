/**
 * A capture the source cannot take is found by the inspection, not seconds after "started": a
 * `capture: logical` plan against a server with wal_level = replica, and a `capture: trigger`
 * plan run by a role that does not own the table. The dry run lists the problem and its fix
 * (exit 1), `--execute` refuses with it before claiming anything, and the test's own SQL finds
 * nothing created on the source or the target.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { startPostgres, type PostgresServer } from '../../scripts/services/postgres';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-capture-prerequisites-'));

function planFile(name: string, connection: string, capture: 'logical' | 'trigger'): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}\nsource: { connection: ${connection}, table: accounts, key: id }\ntarget: { connection: ${connection}, table: accounts_v2 }\n` +
      `transform: { sql: { id: id, note: note } }\ncapture: ${capture}\n`,
  );
  return file;
}

const TABLES = `
  CREATE TABLE accounts (id int PRIMARY KEY, note text);
  INSERT INTO accounts SELECT i, 'note ' || i FROM generate_series(1, 50) AS i;
  CREATE TABLE accounts_v2 (id int PRIMARY KEY, note text);`;

/** What a capture or a claim would have left: read by the test itself, on the one database both sides use. */
async function leftBehind(url: string) {
  return sqlRow(
    url,
    `SELECT (SELECT count(*)::int FROM pg_replication_slots) AS slots,
            (SELECT count(*)::int FROM pg_publication) AS publications,
            (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal) AS triggers,
            to_regnamespace('ferry') IS NOT NULL AS ferry_schema,
            (SELECT count(*)::int FROM accounts_v2) AS copied`,
  );
}

const NOTHING = { slots: 0, publications: 0, triggers: 0, ferry_schema: false, copied: 0 };

describe('a logical capture plan against a server with wal_level = replica', () => {
  let server: PostgresServer;
  let url: string;
  let worker: TestWorker;

  beforeAll(async () => {
    server = await startPostgres({ local: true, walLevel: 'replica' });
    url = await server.createDatabase('ferry_replica_wal');
    await sql(url, TABLES);
    worker = await startWorker({ REPLICA_WAL_DB: url });
  }, 120_000);
  afterAll(async () => {
    await worker?.stop();
    await server?.stop();
  });

  it('is refused by the dry run and by --execute, naming wal_level and its fix, with nothing created', { timeout: 120_000 }, async () => {
    expect(await sqlRow(url, `SELECT current_setting('wal_level') AS level`)).toEqual({ level: 'replica' });
    const plan = planFile('replica-wal', 'REPLICA_WAL_DB', 'logical');
    const problem = 'capture: logical cannot be installed on the source: wal_level is replica on the source; logical capture needs wal_level = logical (fix: ALTER SYSTEM SET wal_level = logical; -- then restart the server)';

    const dry = await ferry(['start', plan], worker.temporal);
    expect(dry.code, dry.stderr).toBe(ExitCode.failed);
    expect(dry.stdout).toContain(problem);

    const execute = await ferry(['start', plan, '--execute'], worker.temporal);
    expect(execute.code).toBe(ExitCode.failed);
    expect(execute.stdout).not.toContain('started migration');
    expect(execute.stderr).toContain(problem);

    expect(await leftBehind(url)).toEqual(NOTHING);
  });
});

describe('a trigger capture plan run by a role that does not own the table', () => {
  let url: string;
  let worker: TestWorker;
  let role: string;

  beforeAll(async () => {
    url = await createTestDatabase('capture_not_owner');
    role = `capture_not_owner_${Date.now()}`;
    const database = new URL(url).pathname.slice(1);
    await sql(url, `${TABLES}
      CREATE ROLE ${role} LOGIN PASSWORD 'not-owner';
      GRANT SELECT ON accounts TO ${role};
      GRANT SELECT, INSERT, UPDATE, DELETE ON accounts_v2 TO ${role};
      GRANT CREATE ON DATABASE ${database} TO ${role};`);
    const limited = new URL(url);
    limited.username = role;
    limited.password = 'not-owner';
    worker = await startWorker({ NOT_OWNER_DB: limited.toString() });
  });
  afterAll(async () => {
    await worker?.stop();
    await sql(url, `DROP OWNED BY ${role}; DROP ROLE ${role}`).catch(() => {});
  });

  it('is refused by the dry run and by --execute, naming the owner to grant, with nothing created', { timeout: 120_000 }, async () => {
    const plan = planFile('not-owner', 'NOT_OWNER_DB', 'trigger');
    const owner = (await sqlRow(url, `SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'accounts'::regclass`)).owner as string;
    const refusal = `capture: trigger cannot be installed on the source: ${role} may not create and drop a trigger on public\\.accounts: .*the table's owner \\(${owner}\\) \\(fix: GRANT `;

    const dry = await ferry(['start', plan], worker.temporal);
    expect(dry.code, dry.stderr).toBe(ExitCode.failed);
    expect(dry.stdout).toMatch(new RegExp(`${refusal}"${owner}" TO "${role}";\\)`));

    const execute = await ferry(['start', plan, '--execute'], worker.temporal);
    expect(execute.code).toBe(ExitCode.failed);
    expect(execute.stdout).not.toContain('started migration');
    // A failure's text has its quoted names redacted (lib/errors.ts); the dry run's report above shows them.
    expect(execute.stderr).toMatch(new RegExp(refusal));

    expect(await leftBehind(url)).toMatchObject({ triggers: 0, ferry_schema: false, copied: 0 });
  });
});
