/**
 * A secured Temporal, reached the way Temporal's own tools reach it: a real TLS-terminating gRPC
 * proxy (nginx) in front of the dev server, one listener for client certificates and one for an
 * API key. A worker and the CLI run a migration through each; a wrong or missing certificate or
 * key is refused with a clear message and exit code 4.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { startTlsProxy, type TlsProxy } from '../../scripts/services/tls-proxy';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, sqlRow, uniqueName } from '../support/harness';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';
import type { TemporalSettings } from '../../lib/settings';

const planDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-tls-plans-'));

function planFile(name: string, target: string): string {
  const file = path.join(planDir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
source: { connection: TLS_DB, table: items, key: id }
target: { connection: TLS_DB, table: ${target} }
transform: { sql: { id: id, label: upper(label) } }
verify: { enabled: true }
`,
  );
  return file;
}

/** The test's own comparison: every source row, transformed, equals the target row by md5. */
const differences = (target: string) => `
  SELECT count(*)::int AS n FROM (SELECT id, md5(row(id, upper(label))::text) AS h FROM items) s
  FULL JOIN (SELECT id, md5(row(id, label)::text) AS h FROM ${target}) t USING (id)
  WHERE s.h IS DISTINCT FROM t.h`;

describe('a secured Temporal (TLS proxy)', () => {
  let proxy: TlsProxy;
  let databaseUrl: string;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    proxy = await startTlsProxy(inject('temporalAddress'));
    databaseUrl = await createTestDatabase('tls');
    await sql(databaseUrl, `
      CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 300) i;
      CREATE TABLE items_mtls (id int PRIMARY KEY, label text NOT NULL);
      CREATE TABLE items_key (id int PRIMARY KEY, label text NOT NULL);`);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await proxy?.stop();
  });

  const through = (address: string): TemporalSettings => ({ address, namespace: 'default', taskQueue: uniqueName('tls') });

  it('runs a migration through mutual TLS: worker and CLI with client certificates', async () => {
    const temporal = through(proxy.mtlsAddress);
    const flags = ['--tls-ca-path', proxy.files.ca, '--tls-cert-path', proxy.files.clientCert, '--tls-key-path', proxy.files.clientKey];
    workers.push(await startWorkerProcess(temporal, { TLS_DB: databaseUrl }, flags));
    const result = await ferry(['start', planFile('tls-mtls', 'items_mtls'), '--execute', '--wait', ...flags], temporal);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(ExitCode.ok);
    expect(await sqlRow(databaseUrl, differences('items_mtls'))).toEqual({ n: 0 });
    expect(await sqlRow(databaseUrl, 'SELECT count(*)::int AS n FROM items_mtls')).toEqual({ n: 300 });
  });

  it('runs a migration with an API key from the standard variables', async () => {
    const temporal = through(proxy.apiKeyAddress);
    const env = { TEMPORAL_API_KEY: proxy.apiKey, TEMPORAL_TLS_SERVER_CA_CERT_PATH: proxy.files.ca };
    workers.push(await startWorkerProcess(temporal, { TLS_DB: databaseUrl, ...env }));
    const result = await ferry(['start', planFile('tls-key', 'items_key'), '--execute', '--wait'], temporal, env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(ExitCode.ok);
    expect(await sqlRow(databaseUrl, differences('items_key'))).toEqual({ n: 0 });
    // The key is this process's secret: nothing a person or Temporal sees carries it.
    expect(result.stdout).not.toContain(proxy.apiKey);
  });

  it.each([
    ['no client certificate', 'mtls', ['--tls-ca-path', 'CA']],
    ['a certificate from a CA the server does not trust', 'mtls', ['--tls-ca-path', 'CA', '--tls-cert-path', 'STRANGER_CERT', '--tls-key-path', 'STRANGER_KEY']],
    ['no TLS at all', 'mtls', []],
    ['no API key', 'key', ['--tls-ca-path', 'CA']],
    ['a wrong API key', 'key', ['--tls-ca-path', 'CA', '--api-key', 'not-the-key']],
    ["a CA that did not sign the server's certificate", 'key', ['--tls-ca-path', 'STRANGER_CERT', '--api-key', 'KEY']],
  ])('refuses %s with a clear message and exit 4', async (_case, listener, template) => {
    const files: Record<string, string> = { CA: proxy.files.ca, STRANGER_CERT: proxy.files.strangerCert, STRANGER_KEY: proxy.files.strangerKey, KEY: proxy.apiKey };
    const args = template.map((arg) => files[arg] ?? arg);
    const temporal = through(listener === 'mtls' ? proxy.mtlsAddress : proxy.apiKeyAddress);
    const result = await ferry(['list', ...args], temporal);
    expect(result.code).toBe(ExitCode.unreachable);
    expect(result.stderr).toMatch(/^ferry: cannot reach Temporal at localhost:\d+ \(/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toContain(proxy.apiKey);
  });

  it('refuses a certificate without its key, and a missing file, as bad input (exit 2) before connecting', async () => {
    const temporal = through(proxy.mtlsAddress);
    const noKey = await ferry(['list', '--tls-cert-path', proxy.files.clientCert], temporal);
    expect(noKey.code).toBe(ExitCode.badInput);
    expect(noKey.stderr).toContain('give both --tls-cert-path and --tls-key-path');
    const missing = await ferry(['list', '--tls-cert-path', '/nonexistent/client.pem', '--tls-key-path', proxy.files.clientKey], temporal);
    expect(missing.code).toBe(ExitCode.badInput);
    expect(missing.stderr).toContain('cannot read /nonexistent/client.pem');
  });

  it('a worker with a wrong certificate says so and exits 4', async () => {
    const temporal = through(proxy.mtlsAddress);
    await expect(
      startWorkerProcess(temporal, { TLS_DB: databaseUrl }, ['--tls-ca-path', proxy.files.ca, '--tls-cert-path', proxy.files.strangerCert, '--tls-key-path', proxy.files.strangerKey]),
    ).rejects.toThrow(/worker exited with 4:[\s\S]*cannot reach Temporal at localhost:\d+ \(mTLS\)/);
  });
});
