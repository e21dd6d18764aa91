/**
 * Records the workflow histories that test/unit/replay.test.ts replays against the current code:
 * a full lifecycle with gates (its first run and its last), an abort after a back-off change (the
 * migration's run that took the change, its last run, and a shard that heard of it), a shard that
 * continued-as-new, a verification shard, a migration that continued-as-new while it waited at a gate,
 * and checks of a migration after it ended (one repairing, one sampled).
 * Run it (npm run record-histories) when a workflow change is meant to break old histories, that
 * is, after guarding the change with patched() so running migrations still replay. With
 * `-- --only NAME[,NAME]` it records just those groups (lifecycle, abort, dry-run, gate, check) and keeps
 * the other recordings, which were made by older code and are worth keeping for that.
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { abortMigration, approveGate, changeThrottle, checkEndedMigration, endedMigration, migrationReport, startMigration } from '../operator';
import { validatePlan } from '../lib/plan';
import { temporalSettings } from '../lib/settings';
import { createFerryWorker } from '../workers/worker';
import { ensureTemporalCli } from './install-temporal';
import { startPostgres } from './services/postgres';
import { startTemporal } from './services/temporal';
import { checkWorkflowId, shardWorkflowId, verifyShardWorkflowId } from '../lib/ids';
import { phaseKey } from '../lib/search-attributes';

const outDir = path.join(__dirname, '..', 'test', 'histories');

async function until<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const GROUPS = ['lifecycle', 'abort', 'dry-run', 'gate', 'check'] as const;
type Group = (typeof GROUPS)[number];

function groupsToRecord(argv: string[]): Set<Group> {
  const { values } = parseArgs({ args: argv, options: { only: { type: 'string' }, suffix: { type: 'string' } } });
  if (values.only === undefined) return new Set(GROUPS);
  const named = values.only.split(',').map((g) => g.trim());
  const unknown = named.filter((g) => !(GROUPS as readonly string[]).includes(g));
  if (unknown.length) throw new Error(`--only: unknown group ${unknown.join(', ')}; choose from ${GROUPS.join(', ')}`);
  return new Set(named as Group[]);
}

/**
 * `--suffix v2` records beside the older files (`migration-full-lifecycle-v2.json`) instead of over
 * them: the older recordings keep proving that migrations started by older code still replay.
 */
function suffixOf(argv: string[]): string {
  const { values } = parseArgs({ args: argv, options: { only: { type: 'string' }, suffix: { type: 'string' } } });
  if (values.suffix === undefined) return '';
  if (!/^[a-z0-9-]+$/.test(values.suffix)) throw new Error(`--suffix: lower-case letters, digits and dashes, not "${values.suffix}"`);
  return `-${values.suffix}`;
}

async function main(): Promise<void> {
  const groups = groupsToRecord(process.argv.slice(2));
  const suffix = suffixOf(process.argv.slice(2));
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const postgres = await startPostgres({ local: true });
  // Low, so that shards continue-as-new within a short run.
  const temporalServer = await startTemporal({ dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 40 } });
  const temporal = temporalSettings({}, { address: temporalServer.address, taskQueue: 'record-histories' });
  const url = await postgres.createDatabase('ferry_histories');
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(`
    CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
    INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 6000) i;
    CREATE TABLE items_full (id int PRIMARY KEY, label text NOT NULL);
    CREATE TABLE items_aborted (id int PRIMARY KEY, label text NOT NULL);
    CREATE TABLE items_gate (id int PRIMARY KEY, label text NOT NULL);
    CREATE TABLE items_check (id int PRIMARY KEY, label text NOT NULL);`);
  await setup.end();

  // Recordings are replayed by tests without keys: always in clear, whatever FERRY_PAYLOAD_KEY says.
  const worker = await createFerryWorker({ temporal, env: { DB: url }, payloadKeys: [] });
  const running = worker.run();
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection });
  // The Temporal CLI writes the canonical JSON form that replay reads back.
  const cli = ensureTemporalCli();
  /** File name to the workflow id it was recorded under: child ids derive from it on replay. */
  const indexPath = path.join(outDir, 'workflow-ids.json');
  const index = (existsSync(indexPath) ? JSON.parse(readFileSync(indexPath, 'utf8')) : {}) as Record<string, string>;
  const save = async (baseName: string, workflowId: string, runId?: string) => {
    const name = `${baseName}${suffix}`;
    index[`${name}.json`] = workflowId;
    const args = ['workflow', 'show', '--address', temporal.address, '--workflow-id', workflowId, '--output', 'json'];
    if (runId) args.push('--run-id', runId);
    const json = execFileSync(cli, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    writeFileSync(path.join(outDir, `${name}.json`), json);
    console.log(`recorded ${name} (${(JSON.parse(json) as { events: unknown[] }).events.length} events)`);
  };
  try {
    mkdirSync(outDir, { recursive: true });
    const plan = (table: string, gates: { reminderSeconds?: number; figuresEverySeconds?: number } = {}) =>
      validatePlan({
        name: `histories-${table.replace(/_/g, '-')}`,
        source: { connection: 'DB', table: 'items', key: 'id' },
        target: { connection: 'DB', table },
        transform: { sql: { id: 'id', label: 'label' } },
        shards: { count: 2 },
        throttle: { rowsPerSecond: 3000, batchSize: 100, concurrency: 2, checkpointSeconds: 0.2 },
        verify: { chunkSize: 200 },
        lifecycle: { dualWrites: true, noApps: true, cutover: true, soakSeconds: 0.2, gates },
      });
    const approveEveryGate = async (workflowId: string) => {
      for (const gate of ['cutover-reads', 'stop-old-writes', 'cleanup']) {
        await until(async () => ((await migrationReport(client, workflowId)).status?.gate?.name === gate ? true : undefined), gate);
        await approveGate(client, workflowId, { gate, by: 'recorder', note: 'recorded' });
      }
    };

    if (groups.has('lifecycle')) await recordLifecycle();
    if (groups.has('abort')) await recordAbort();
    if (groups.has('dry-run')) await recordDryRun();
    if (groups.has('gate')) await recordGate();
    if (groups.has('check')) await recordCheck();
    writeFileSync(indexPath, `${JSON.stringify(index, null, 2)}\n`);

    async function recordLifecycle() {
      const full = await startMigration(client, temporal, plan('items_full'), { execute: true });
      // At the first gate, messages besides approvals: a pause with a reason and its resume, and
      // an update's name sent as a signal (refused where status shows it).
      await until(async () => ((await migrationReport(client, full.workflowId)).status?.gate?.name === 'cutover-reads' ? true : undefined), 'the first gate');
      await full.signal('pause', { by: 'recorder', reason: 'recorded pause' });
      await full.signal('resume', { by: 'recorder' });
      await full.signal('approve', { gate: 'cutover-reads', by: 'recorder' });
      await until(async () => ((await migrationReport(client, full.workflowId)).status?.events.some((e) => e.kind === 'refused') ? true : undefined), 'the refused signal');
      await approveEveryGate(full.workflowId);
      await full.result();
      await save('migration-full-lifecycle', full.workflowId);
      // The migration's first run (inspection, claim, the backfill's start): its last run, above,
      // continued from a later one.
      const migrationRuns = [];
      for await (const run of client.workflow.list({ query: `WorkflowId = '${full.workflowId}'` })) migrationRuns.push(run);
      const first = migrationRuns.sort((a, b) => a.startTime.getTime() - b.startTime.getTime())[0];
      if (first && first.runId !== migrationRuns.at(-1)!.runId) await save('migration-first-run', first.workflowId, first.runId);
      const shardRuns = [];
      for await (const run of client.workflow.list({ query: `WorkflowId = '${shardWorkflowId(full.workflowId, 0)}'` })) shardRuns.push(run);
      const continued = shardRuns.find((run) => run.status.name === 'CONTINUED_AS_NEW');
      if (!continued) throw new Error('no shard run continued-as-new; raise the row count');
      await save('shard-continued-as-new', continued.workflowId, continued.runId);
      await save('shard-last-run', shardWorkflowId(full.workflowId, 0));
      await save('verify-shard', verifyShardWorkflowId(full.workflowId, 1, 0));
    }

    async function runThatTookUpdate(workflowId: string, update: string): Promise<string> {
      for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
        const history = await client.workflow.getHandle(workflowId, run.runId).fetchHistory();
        if (history.events?.some((event) => event.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === update)) return run.runId;
      }
      throw new Error(`no run of ${workflowId} took the update ${update}`);
    }

    async function recordAbort() {
      const aborted = await startMigration(client, temporal, plan('items_aborted'), { execute: true });
      await until(async () => ((await migrationReport(client, aborted.workflowId)).status?.rowsRead ?? 0) > 500 || undefined, 'copying');
      // A change of the back-off and the pacing budget on the way: the migration signals its shards, which take it up.
      await changeThrottle(client, aborted.workflowId, { maxQuerySeconds: 3600, maxUnreadSlotWalMb: null, p99Factor: 2, by: 'recorder' });
      await abortMigration(client, aborted.workflowId, { by: 'recorder', reason: 'recorded abort' });
      await aborted.result();
      await save('migration-aborted-in-backfill', aborted.workflowId);
      // The run that took the change: the migration may have continued-as-new since.
      await save('migration-backoff-changed', aborted.workflowId, await runThatTookUpdate(aborted.workflowId, 'setThrottle'));
      await save('shard-aborted-in-backfill', shardWorkflowId(aborted.workflowId, 0));
    }

    async function recordDryRun() {
      const dryRun = await startMigration(client, temporal, plan('items_full'), { execute: false });
      await dryRun.result();
      await save('migration-dry-run', dryRun.workflowId);
    }

    /** Reminders and figures often enough that the gate's history reaches the low limit within seconds. */
    async function recordGate() {
      const gated = await startMigration(client, temporal, plan('items_gate', { reminderSeconds: 0.3, figuresEverySeconds: 0.3 }), { execute: true });
      // The backfill may continue-as-new too: the run wanted ended with its phase at the gate.
      const query = `WorkflowId = '${gated.workflowId}' AND ExecutionStatus = 'ContinuedAsNew' AND ${phaseKey.name} = 'awaiting-approval'`;
      const atGate = await until(async () => {
        for await (const run of client.workflow.list({ query })) return run;
        return undefined;
      }, 'a run that continued-as-new at the gate');
      await approveEveryGate(gated.workflowId);
      await gated.result();
      await save('migration-continued-as-new-at-gate', atGate.workflowId, atGate.runId);
    }

    /** A completed migration damaged afterwards: a check that repairs it (two passes), then a sampled check. */
    async function recordCheck() {
      const noGates = validatePlan({
        name: 'histories-items-check',
        source: { connection: 'DB', table: 'items', key: 'id' },
        target: { connection: 'DB', table: 'items_check' },
        transform: { sql: { id: 'id', label: 'label' } },
        shards: { count: 2 },
        throttle: { rowsPerSecond: 3000, batchSize: 100, concurrency: 2, checkpointSeconds: 0.2 },
        verify: { chunkSize: 200 },
      });
      const checked = await startMigration(client, temporal, noGates, { execute: true });
      await checked.result();
      const damage = new pg.Client({ connectionString: url });
      await damage.connect();
      await damage.query(`DELETE FROM items_check WHERE id = 10; UPDATE items_check SET label = 'damaged' WHERE id = 20; INSERT INTO items_check VALUES (99999, 'stray')`);
      await damage.end();
      const migration = await endedMigration(client, checked.workflowId, temporal.taskQueue, 'completed');
      await checkEndedMigration(client, migration, { samplePercent: null, repair: true, force: false, by: 'recorder' });
      await save('check-repaired', checkWorkflowId(checked.workflowId, 1));
      await checkEndedMigration(client, migration, { samplePercent: 20, repair: false, force: false, by: 'recorder' });
      await save('check-sampled', checkWorkflowId(checked.workflowId, 2));
    }
  } finally {
    await connection.close();
    worker.shutdown();
    await running;
    await temporalServer.stop();
    await postgres.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
