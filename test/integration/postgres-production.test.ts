/**
 * Production Postgres as Ferry meets it: a server that accepts TLS only (sslmode=verify-full with
 * the CA in sslrootcert), and a password that rotates, given by a command the worker runs for
 * each new connection. Both run a real migration, checked by md5 of every row on both sides.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { startPostgres, type PostgresServer } from '../../scripts/services/postgres';
import { makeCertificates } from '../../scripts/services/tls-proxy';
import { ferry } from '../support/cli';
import { sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-pg-prod-'));

const SETUP = `
  CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric(14, 2) NOT NULL, opened timestamptz NOT NULL);
  INSERT INTO accounts SELECT i, 'owner ' || i, i * 10.5, timestamptz '2026-01-01 00:00:00.000001+00' + i * interval '1 day' FROM generate_series(1, 1000) i;
  CREATE TABLE accounts_v2 (id int PRIMARY KEY, owner text NOT NULL, balance numeric(14, 2) NOT NULL, opened timestamptz NOT NULL);`;
const DIFFERENCES = `
  SELECT count(*)::int AS n FROM (SELECT id, md5(a::text) h FROM accounts a) s
  FULL JOIN (SELECT id, md5(t::text) h FROM accounts_v2 t) t USING (id) WHERE s.h IS DISTINCT FROM t.h`;

function plan(name: string, connection: string): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, `name: ${name}\nsource: { connection: ${connection}, table: accounts, key: id }\ntarget: { connection: ${connection}, table: accounts_v2 }\ntransform: { sql: { id: id, owner: owner, balance: balance, opened: opened } }\nthrottle: { batchSize: 100 }\n`);
  return file;
}

describe('a Postgres that accepts TLS only', () => {
  let server: PostgresServer;
  let worker: TestWorker;
  let tlsUrl: string;
  let ca: string;

  beforeAll(async () => {
    const files = makeCertificates(dir);
    ca = files.ca;
    server = await startPostgres({ local: true, tls: { certFile: files.serverCert, keyFile: files.serverKey } });
    const socketUrl = await server.createDatabase('ferry_tls');
    await sql(socketUrl, SETUP);
    const url = new URL(server.tcpUrl!('ferry_tls'));
    url.hostname = 'localhost';
    tlsUrl = `${url.toString()}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;
    worker = await startWorker({ TLS_PG: tlsUrl, PLAIN_PG: server.tcpUrl!('ferry_tls') });
  });
  afterAll(async () => {
    await worker?.stop();
    await server?.stop();
  });

  it('migrates over verify-full TLS, and every session of Ferry used it', async () => {
    const result = await ferry(['start', plan('pg-tls', 'TLS_PG'), '--execute', '--wait'], worker.temporal);
    expect(result.code).toBe(ExitCode.ok);
    expect(await sqlRow(tlsUrl, DIFFERENCES)).toEqual({ n: 0 });
    const sessions = await sqlRow(tlsUrl, `SELECT count(*)::int AS ferry, count(*) FILTER (WHERE NOT s.ssl)::int AS plain FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'ferry'`);
    expect(sessions.ferry).toBeGreaterThan(0);
    expect(sessions.plain).toBe(0);
  });

  it('is refused without TLS, with the server saying why', async () => {
    const result = await ferry(['doctor', plan('pg-plain', 'PLAIN_PG')], worker.temporal);
    expect(result.code).toBe(ExitCode.failed);
    expect(result.stdout).toMatch(/FAIL\s+source\s+connect \(PLAIN_PG\)\s+pg_hba\.conf rejects connection .* no encryption/);
  });
});

describe('a rotating password from a command', () => {
  let server: PostgresServer;
  let worker: TestWorker;
  let owner: string;
  const passwordFile = path.join(dir, 'token');

  beforeAll(async () => {
    server = await startPostgres({ local: true, passwordAuth: true });
    owner = await server.createDatabase('ferry_rotating');
    await sql(owner, `${SETUP}
      CREATE ROLE rotating LOGIN PASSWORD 'token-1';
      GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, accounts_v2 TO rotating;
      GRANT CREATE, TEMPORARY ON DATABASE ferry_rotating TO rotating;`);
    writeFileSync(passwordFile, 'token-1\n');
    const url = new URL(server.tcpUrl!('ferry_rotating'));
    url.username = 'rotating';
    url.password = '';
    worker = await startWorker({ ROTATING_PG: url.toString(), ROTATING_PG_PASSWORD_COMMAND: `cat ${passwordFile}` });
  });
  afterAll(async () => {
    await worker?.stop();
    await server?.stop();
  });

  it('asks the command for each new connection, so a rotated password is taken up', async () => {
    const first = await ferry(['doctor', plan('pg-rotating', 'ROTATING_PG')], worker.temporal);
    expect(first.stdout).toMatch(/ok\s+source\s+connect \(ROTATING_PG\)\s+as rotating/);
    // Rotate: the old password stops working, and the worker's open sessions end.
    await sql(owner, `ALTER ROLE rotating PASSWORD 'token-2'; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rotating'`);
    writeFileSync(passwordFile, 'token-2\n');
    const run = await ferry(['start', plan('pg-rotating', 'ROTATING_PG'), '--execute', '--wait'], worker.temporal);
    expect(run.code).toBe(ExitCode.ok);
    expect(await sqlRow(owner, DIFFERENCES)).toEqual({ n: 0 });
    expect(run.stdout + run.stderr).not.toContain('token-2');
  });
});
