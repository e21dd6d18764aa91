/**
 * Transform modules through real migrations: only the worker's transform directory is loaded
 * from, a file of secrets given as a module is never quoted, and what a transform or the target
 * says about a row's value stays out of histories, logs, status and reports.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { migrationReport, startMigration } from '../../operator';
import { validatePlan, type Plan } from '../../lib/plan';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, eventually, sql, sqlRow, type TestWorker } from '../support/harness';
import { historiesText } from '../support/history-text';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const SECRET = 'sk_live_5f4dcc3b5aa765d61d8327deb882cf99';
const CARD = '4111-2222-3333-SECRET';
const TOO_BIG = '99999999999';

describe('transform modules and secrets', () => {
  let url: string;
  let client: TestWorker;
  let worker: WorkerProcess;
  const root = mkdtempSync(path.join(os.tmpdir(), 'ferry-module-secrets-'));
  const allowed = path.join(root, 'transforms');
  const outside = path.join(root, 'elsewhere');

  beforeAll(async () => {
    url = await createTestDatabase('module_secrets');
    await sql(url, `
      CREATE TABLE cards (id int PRIMARY KEY, card text NOT NULL, points text NOT NULL);
      INSERT INTO cards SELECT i, '${CARD}-' || i, CASE WHEN i = 15 THEN '${TOO_BIG}' ELSE i::text END FROM generate_series(1, 40) i;
      CREATE TABLE cards_v2 (id int PRIMARY KEY, last4 text NOT NULL, points int NOT NULL);`);
    for (const dir of [allowed, outside]) mkdirSync(dir);
    writeFileSync(path.join(outside, 'secret.ts'), `${SECRET}\n`);
    writeFileSync(path.join(allowed, 'secret.ts'), `${SECRET}\n`);
    symlinkSync(path.join(outside, 'secret.ts'), path.join(allowed, 'linked.ts'));
    writeFileSync(path.join(allowed, 'cards.ts'), `
      // The dry run samples the first rows: the troubles start after them.
      export default (row: { id: number; card: string; points: string }) => {
        if (row.id === 13) throw new Error('refusing card ' + row.card);
        if (row.id === 14) JSON.parse(row.card);
        return { id: row.id, last4: row.card.slice(-4), points: row.points };
      };`);
    client = await connectClient();
    worker = await startWorkerProcess(client.temporal, { DB: url, FERRY_TRANSFORM_DIR: allowed });
  });
  afterAll(async () => {
    await worker?.stop();
    await client?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const plan = (name: string, module: string): Plan =>
    validatePlan({
      name,
      source: { connection: 'DB', table: 'cards', key: 'id' },
      target: { connection: 'DB', table: 'cards_v2' },
      transform: { module, columns: ['id', 'last4', 'points'] },
    });

  it('refuses a module outside the transform directory, also through a link, and never quotes a file of secrets', async () => {
    const outcomes: Record<string, string[]> = {};
    for (const [name, module] of [
      ['outside', path.join(outside, 'secret.ts')],
      ['linked', path.join(allowed, 'linked.ts')],
      ['climbing', path.join(allowed, '..', 'elsewhere', 'secret.ts')],
      ['secret', path.join(allowed, 'secret.ts')],
    ] as const) {
      const status = await (await startMigration(client.client, client.temporal, plan(`module-${name}`, module), { execute: false })).result();
      outcomes[name] = status.inspection!.problems;
    }
    for (const name of ['outside', 'linked', 'climbing']) {
      expect(outcomes[name]!.join('\n')).toContain(`not inside the worker's transform directory`);
    }
    expect(outcomes.secret!.join('\n')).toMatch(/failed to load: \w+.*the loader's message is withheld/);

    const texts = [JSON.stringify(outcomes), worker.output()];
    for (const name of ['outside', 'linked', 'climbing', 'secret']) texts.push(await historiesText(client.client, `ferry/module-${name}/`));
    const all = texts.join('\n');
    expect(all).toContain('transform'); // the scan did read something
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain('sk_live');
  });

  it("keeps a transform's own error text and the target's refusal of a value out of histories, logs, status and reports", async () => {
    const handle = await startMigration(client.client, client.temporal, plan('module-cards', path.join(allowed, 'cards.ts')), { execute: true });
    // Failed rows pause the migration for a person, who lets it finish without them.
    await eventually(async () => ((await migrationReport(client.client, handle.workflowId)).status?.paused ? true : undefined), 60_000, 'the pause');
    expect((await ferry(['resume', handle.workflowId, '--by', 'test'], client.temporal)).code).toBe(ExitCode.ok);
    const status = await handle.result();
    expect(status.rowsFailed).toBe(3);
    expect((await sqlRow(url, 'SELECT count(*)::int AS n FROM cards_v2')).n).toBe(37);
    const reasons = status.recentFailures.map((f) => f.error).join('\n');
    expect(reasons).toContain('Error thrown by the transform');
    expect(reasons).toContain('SyntaxError');
    expect(reasons).toContain('out of range for type integer');

    const texts = [JSON.stringify(status), worker.output(), await historiesText(client.client, handle.workflowId)];
    for (const args of [['status', handle.workflowId, '--json'], ['failures', handle.workflowId], ['report', handle.workflowId, '--format', 'json']]) {
      const result = await ferry(args, client.temporal);
      expect(result.code, result.stderr).toBe(ExitCode.ok);
      texts.push(result.stdout, result.stderr);
    }
    const all = texts.join('\n');
    expect(all).toContain('cards_v2');
    expect(all).not.toContain(CARD);
    expect(all).not.toContain(TOO_BIG);
  });
});
