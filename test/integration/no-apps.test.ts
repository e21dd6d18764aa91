/**
 * Dual writes that no application follows: the migration pauses for a person, saying why,
 * unless lifecycle.noApps or `ferry start --no-apps` allows it (recorded); `ferry resume` goes
 * ahead (recorded); an application following the flags through the client library lets it run.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFerryClient } from '../../client';
import { migrationReport } from '../../operator';
import type { MigrationStatus } from '../../lib/status';
import { ferry } from '../support/cli';
import { createTestDatabase, eventually, sql, sqlRow, startWorker, type TestWorker } from '../support/harness';

const ROWS = 500;
const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-no-apps-'));

describe('dual writes with no application following the flags', () => {
  let url: string;
  let worker: TestWorker;
  let table = 0;

  beforeAll(async () => {
    url = await createTestDatabase('no_apps');
    await sql(url, `
      CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL);
      INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, ${ROWS}) i;`);
    worker = await startWorker({ DB: url });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  async function planFile(lifecycle: string, soakSeconds = 0.5) {
    table += 1;
    await sql(url, `CREATE TABLE accounts_${table} (id int PRIMARY KEY, owner text NOT NULL)`);
    const file = path.join(dir, `plan-${table}.yaml`);
    writeFileSync(file, [
      `name: no-apps-${table}`,
      'source: { connection: DB, table: accounts, key: id }',
      `target: { connection: DB, table: accounts_${table} }`,
      'transform: { sql: { id: id, owner: owner } }',
      `lifecycle: { dualWrites: true, soakSeconds: ${soakSeconds}${lifecycle} }`,
    ].join('\n'));
    return { file, name: `no-apps-${table}`, target: `accounts_${table}` };
  }
  const start = async (file: string, flags: string[] = []) => {
    const result = await ferry(['start', file, '--execute', ...flags], worker.temporal);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    return /(ferry\/\S+)/.exec(result.stdout)![1]!;
  };
  const statusOf = async (id: string): Promise<MigrationStatus> => (await migrationReport(worker.client, id)).status!;
  const ended = (id: string) =>
    eventually(async () => {
      const status = await statusOf(id);
      return status.finishedAt ? status : undefined;
    }, 60_000, `${id} to end`);
  const digest = (t: string) => sqlRow<{ rows: number; md5: string }>(url, `SELECT count(*)::int AS rows, md5(string_agg(a::text, ',' ORDER BY id)) AS md5 FROM ${t} a`);

  it('pauses for a person, saying why and what to do; ferry resume goes ahead, recorded', async () => {
    const { file, target } = await planFile('');
    const id = await start(file);
    const paused = await eventually(async () => (await statusOf(id)).paused ?? undefined, 30_000, 'the pause');
    expect(paused.reason).toContain('no application process follows the flags (version 1)');
    expect(paused.reason).toContain('writes the application makes to the old table only are missing from the new one until verification repairs them');
    expect(paused.reason).toContain('ferry resume');
    expect(paused.reason).toContain('lifecycle.noApps');
    expect(paused.reason).toContain('--no-apps');
    expect((await statusOf(id)).phase).toBe('dual-write');
    // It stays there: nothing is copied while it waits.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await statusOf(id)).paused).not.toBeNull();
    expect((await digest(target)).rows).toBe(0);
    const shown = await ferry(['status', id], worker.temporal);
    expect(shown.stdout).toContain('no application process follows the flags');

    const resumed = await ferry(['resume', id, '--reason', 'no application writes this table'], worker.temporal);
    expect(resumed.code, resumed.stderr).toBe(0);
    const status = await ended(id);
    expect(status.phase).toBe('completed');
    expect(status.events.some((e) => e.kind === 'auto-pause' && e.detail.includes('no application process follows'))).toBe(true);
    expect(status.events.some((e) => e.kind === 'resume' && e.detail.includes('resumed after: no application process follows'))).toBe(true);
    expect(await digest(target)).toEqual(await digest('accounts'));
  });

  it('goes ahead with --no-apps, recorded in the decisions', async () => {
    const { file, target } = await planFile('');
    const id = await start(file, ['--no-apps']);
    const status = await ended(id);
    expect(status.phase).toBe('completed');
    expect(status.events.some((e) => e.kind === 'auto-pause')).toBe(false);
    const apps = status.events.find((e) => e.kind === 'apps')!;
    expect(apps.detail).toContain('0 application processes follow version 1; going ahead as --no-apps allows');
    expect(await digest(target)).toEqual(await digest('accounts'));
  });

  it('goes ahead with lifecycle.noApps: true, recorded in the decisions', async () => {
    const { file } = await planFile(', noApps: true');
    const id = await start(file);
    const status = await ended(id);
    expect(status.phase).toBe('completed');
    expect(status.events.some((e) => e.kind === 'auto-pause')).toBe(false);
    expect(status.events.find((e) => e.kind === 'apps')!.detail).toContain('going ahead as lifecycle.noApps allows');
  });

  it('runs without pausing when an application follows the flags', async () => {
    const { file, name } = await planFile('', 20);
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const app = createFerryClient({ pool, migration: name, registry: new Registry(), listen: true, cacheMs: 100 });
    const reading = setInterval(() => void app.flags.get().catch(() => {}), 100);
    try {
      const id = await start(file);
      const status = await ended(id);
      expect(status.phase).toBe('completed');
      expect(status.events.some((e) => e.kind === 'auto-pause')).toBe(false);
      expect(status.events.find((e) => e.kind === 'apps')!.detail).toBe('1 application processes follow version 1');
    } finally {
      clearInterval(reading);
      await app.close();
      await pool.end();
    }
  });

  it('ferry abort while it waits rolls the flags back', async () => {
    const { file, name, target } = await planFile('');
    const id = await start(file);
    await eventually(async () => (await statusOf(id)).paused ?? undefined, 30_000, 'the pause');
    const aborted = await ferry(['abort', id, '--reason', 'no app yet'], worker.temporal);
    expect(aborted.code, aborted.stderr).toBe(0);
    await ended(id);
    expect(await sqlRow(url, `SELECT write_old, write_new FROM ferry.flags WHERE migration = $1`, [name])).toEqual({ write_old: true, write_new: false });
    expect((await digest(target)).rows).toBe(0);
  });
});
