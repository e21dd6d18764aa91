/**
 * With FERRY_PAYLOAD_KEY, Temporal stores no payload in clear: sample values shown on request
 * are unreadable in the raw history, while workers and the CLI with the key work as before, and
 * those without it fail with a message that says so.
 */
import { Client, Connection } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { startMigration } from '../../operator';
import { validatePlan } from '../../lib/plan';
import { EncryptingPayloadCodec, ferryDataConverter, payloadKeysFromEnv } from '../../workers/payload-codec';
import { ferry } from '../support/cli';
import { connectClient, createTestDatabase, eventually, sql, sqlRow, type TestWorker } from '../support/harness';
import { historiesText } from '../support/history-text';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const VALUE = 'CLEAR-SAMPLE-VALUE';
const newKey = () => randomBytes(32).toString('base64');

describe('payload encryption', () => {
  const key = newKey();
  let url: string;
  let keyed: TestWorker;
  let plainConnection: Connection;
  let plain: Client;
  let worker: WorkerProcess;

  beforeAll(async () => {
    url = await createTestDatabase('codec');
    await sql(url, `
      CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);
      INSERT INTO notes SELECT i, '${VALUE}-' || i FROM generate_series(1, 300) i;
      CREATE TABLE notes_v2 (id int PRIMARY KEY, body text NOT NULL);`);
    keyed = await connectClient();
    worker = await startWorkerProcess(keyed.temporal, { DB: url, FERRY_PAYLOAD_KEY: key });
    keyed.client = new Client({ connection: keyed.client.connection, namespace: keyed.temporal.namespace, dataConverter: ferryDataConverter({ FERRY_PAYLOAD_KEY: key }) });
    plainConnection = await Connection.connect({ address: keyed.temporal.address });
    plain = new Client({ connection: plainConnection, namespace: keyed.temporal.namespace });
  });
  afterAll(async () => {
    await worker?.stop();
    await keyed?.stop();
    await plainConnection?.close();
  });

  const plan = (name: string) =>
    validatePlan({
      name,
      source: { connection: 'DB', table: 'notes', key: 'id' },
      target: { connection: 'DB', table: 'notes_v2' },
      transform: { sql: { id: 'id', body: 'body' } },
    });

  it('keeps sample values shown on request out of the raw history, and ferry status works with the key', async () => {
    const dryRun = await startMigration(keyed.client, keyed.temporal, plan('codec-dry'), { execute: false, showSampleValues: true });
    const status = await dryRun.result();
    expect(JSON.stringify(status.inspection!.sample!.rows)).toContain(VALUE);

    const raw = await historiesText(plain, dryRun.workflowId);
    expect(raw).toContain('binary/encrypted');
    expect(raw).toContain('notes'); // search attributes and names of things stay readable to Temporal
    expect(raw).not.toContain(VALUE);
    expect(raw).not.toContain('"transform"');
    // The same history read through the codec holds the values: the scan would have seen them.
    const readable = await historiesText(keyed.client, dryRun.workflowId);
    expect(readable).not.toContain(VALUE); // fetchHistory does not decode payloads, so decode them here
    const codec = new EncryptingPayloadCodec(payloadKeysFromEnv({ FERRY_PAYLOAD_KEY: key }));
    const history = await plain.workflow.getHandle(dryRun.workflowId).fetchHistory();
    const result = history.events!.at(-1)!.workflowExecutionCompletedEventAttributes!.result!.payloads!;
    expect(Buffer.from((await codec.decode(result))[0]!.data!).toString('utf8')).toContain(VALUE);

    const shown = await ferry(['status', dryRun.workflowId, '--json'], keyed.temporal, { FERRY_PAYLOAD_KEY: key });
    expect(shown.code, shown.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(shown.stdout).status.phase).toBe('dry-run');
    const watched = await ferry(['status', dryRun.workflowId, '--watch'], keyed.temporal, { FERRY_PAYLOAD_KEY: key });
    expect(watched.code, watched.stderr).toBe(ExitCode.ok);
    expect(watched.stdout).toContain('dry-run');
  });

  it('copies every row with encryption on, and the history holds none of them in clear', async () => {
    const handle = await startMigration(keyed.client, keyed.temporal, plan('codec-run'), { execute: true });
    const status = await handle.result();
    expect(status.phase).toBe('completed');
    const sums = await sqlRow(url, `
      SELECT (SELECT md5(string_agg(n::text, ',' ORDER BY id)) FROM notes n) AS source,
             (SELECT md5(string_agg(n::text, ',' ORDER BY id)) FROM notes_v2 n) AS target`);
    expect(sums.target).toBe(sums.source);
    expect(await historiesText(plain, handle.workflowId)).not.toContain(VALUE);
    const watched = await ferry(['status', handle.workflowId, '--watch', '--json'], keyed.temporal, { FERRY_PAYLOAD_KEY: key });
    expect(watched.code, watched.stderr).toBe(ExitCode.ok);
  });

  it('the CLI without the key, or with another, says which key it needs', async () => {
    const dryRun = await startMigration(keyed.client, keyed.temporal, plan('codec-nokey'), { execute: false });
    await dryRun.result();
    const id = payloadKeysFromEnv({ FERRY_PAYLOAD_KEY: key })[0]!.id;
    const without = await ferry(['status', dryRun.workflowId], keyed.temporal, { FERRY_PAYLOAD_KEY: '' });
    expect(without.code).not.toBe(ExitCode.ok);
    expect(without.stderr).toContain(`encrypted (key id ${id}), and this process has no FERRY_PAYLOAD_KEY`);
    const other = await ferry(['status', dryRun.workflowId], keyed.temporal, { FERRY_PAYLOAD_KEY: newKey() });
    expect(other.stderr).toContain(`key id ${id}, which is not among FERRY_PAYLOAD_KEY's keys`);
    // A rotated key list decrypts with the old key.
    const rotated = await ferry(['status', dryRun.workflowId, '--json'], keyed.temporal, { FERRY_PAYLOAD_KEY: `${newKey()},${key}` });
    expect(rotated.code, rotated.stderr).toBe(ExitCode.ok);
    const bad = await ferry(['status', dryRun.workflowId], keyed.temporal, { FERRY_PAYLOAD_KEY: 'not-a-key' });
    expect(bad.code).toBe(ExitCode.badInput);
    expect(bad.stderr).toContain('openssl rand -base64 32');
  });

  it('a worker without the key cannot read the workflow, and says why', async () => {
    const other = await connectClient();
    const keyless = await startWorkerProcess(other.temporal, { DB: url, FERRY_PAYLOAD_KEY: '' });
    try {
      const client = new Client({ connection: other.client.connection, namespace: other.temporal.namespace, dataConverter: ferryDataConverter({ FERRY_PAYLOAD_KEY: key }) });
      const handle = await startMigration(client, other.temporal, plan('codec-keyless'), { execute: false });
      const failure = await eventually(async () => {
        const history = await plain.workflow.getHandle(handle.workflowId).fetchHistory();
        return history.events?.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes?.failure?.message ?? undefined;
      }, 60_000, 'a failed workflow task');
      expect(failure).toContain('this process has no FERRY_PAYLOAD_KEY');
      await handle.terminate('test over');
    } finally {
      await keyless.stop();
      await other.stop();
    }
  });

  it('refuses an altered payload', async () => {
    const codec = new EncryptingPayloadCodec(payloadKeysFromEnv({ FERRY_PAYLOAD_KEY: key }));
    const [sealed] = await codec.encode([{ metadata: { encoding: new TextEncoder().encode('json/plain') }, data: new TextEncoder().encode('"x"') }]);
    const data = sealed!.data!;
    data[20] = data[20]! ^ 1;
    await expect(codec.decode([sealed!])).rejects.toThrow(/does not decrypt: it was altered, or the key is wrong/);
  });
});
