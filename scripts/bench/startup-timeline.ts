/**
 * `tsx scripts/bench/startup-timeline.ts [--rows N] [--runs N] [--events]`: the fixed time of a
 * same-database migration, event by event. Runs the bench's same-database path a few times and
 * prints, for each run, when every shard was copying and how long the end took after the last
 * copy call, with --events every event of the migration's history and of its shards' until then
 * and from the last copy call's end on, in ms from the migration's start. The worker runs dist/:
 * `npm run build` first after a change.
 */
import { Client, Connection } from '@temporalio/client';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { shardWorkflowId } from '../../lib/ids';
import { temporalSettings } from '../../lib/settings';
import type { MigrationStatus } from '../../lib/status';
import { ferryDataConverter } from '../../workers/payload-codec';
import { startPostgres } from '../services/postgres';
import { startTemporal } from '../services/temporal';
import { createSource } from './dataset';
import { basePlan, runFerry, SOURCE_ENV, TARGET_ENV, type Bench } from './ferry-run';
import { ms } from './histories';
import { spreadOf } from './stats';
import { startWorkerProcess } from './worker-process';

/** The event's kind without its suffix, with the activity's name where there is one. */
function label(event: Record<string, unknown>, activities: Map<string, string>): string {
  const kind = Object.keys(event).find((k) => k.endsWith('EventAttributes') && event[k]) ?? '?';
  const attrs = event[kind] as Record<string, unknown>;
  const name = (attrs.activityType as { name?: string } | undefined)?.name ?? activities.get(String(attrs.scheduledEventId));
  if (name && kind.startsWith('activityTaskScheduled')) activities.set(String(event.eventId), name);
  return kind.replace(/EventAttributes$/, '') + (name ? ` ${name}` : '');
}

interface Timeline {
  /** From the migration's start until every shard's first copy call has started, in ms. */
  allCopyingMs: number;
  /** From the last copy call's end to the migration's recorded end (status.finishedAt), in ms. */
  toFinishedMs: number;
  lines: string[];
}

async function timeline(client: Client, status: MigrationStatus): Promise<Timeline> {
  const migrationId = status.migrationId;
  const ids = [migrationId, ...status.shards.map((shard) => shardWorkflowId(migrationId, shard.index))];
  const events: { at: number; line: string }[] = [];
  for (const id of ids) {
    // The latest run of each: a shard that continued-as-new shows its last run only.
    const history = await client.workflow.getHandle(id).fetchHistory();
    const activities = new Map<string, string>();
    const who = id === migrationId ? 'migration' : id.slice(migrationId.length + 1);
    for (const event of history.events ?? []) events.push({ at: ms(event.eventTime), line: `${who.padEnd(10)} ${label(event as never, activities)}` });
  }
  events.sort((a, b) => a.at - b.at);
  const start = events[0]!.at;
  // Up to the moment every shard copies: each shard's first copy call.
  const firstCopy = Math.max(
    ...ids.slice(1).map((id) => events.find((e) => e.line.startsWith(id.slice(migrationId.length + 1)) && e.line.includes('activityTaskStarted copyBatches'))?.at ?? -Infinity),
  );
  const lastCopyEnd = Math.max(...events.filter((e) => e.line.includes('activityTaskCompleted copyBatches')).map((e) => e.at));
  return {
    allCopyingMs: firstCopy - start,
    toFinishedMs: Date.parse(status.finishedAt!) - lastCopyEnd,
    lines: events.filter((e) => e.at <= firstCopy || e.at >= lastCopyEnd).map((e) => `${(e.at - start).toFixed(1).padStart(8)} ms  ${e.line}`),
  };
}

const median = (values: number[]) => spreadOf(values)!.median;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string' }, runs: { type: 'string' }, events: { type: 'boolean', default: false } } });
  const rows = Number(values.rows ?? 200_000);
  const runs = Number(values.runs ?? 3);
  const [postgres, temporalServer] = await Promise.all([startPostgres({ fsync: true, local: true }), startTemporal()]);
  const temporal = temporalSettings({}, { address: temporalServer.address, taskQueue: `ferry-timeline-${process.pid}` });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-timeline-'));
  const sourceUrl = await postgres.createDatabase('bench_source');
  await createSource(sourceUrl, rows);
  const worker = startWorkerProcess(
    { TEMPORAL_ADDRESS: temporal.address, TEMPORAL_NAMESPACE: temporal.namespace, FERRY_TASK_QUEUE: temporal.taskQueue, [SOURCE_ENV]: sourceUrl, [TARGET_ENV]: sourceUrl },
    path.join(workDir, 'worker.log'),
  );
  const connection = await Connection.connect({ address: temporal.address });
  try {
    const client = new Client({ connection, namespace: temporal.namespace, dataConverter: ferryDataConverter() });
    await worker.ready(client, temporal.namespace);
    const bench: Bench = { client, temporal, worker, adminUrl: postgres.url(), sourceUrl, rows, load: null };
    const figures: { ms: number; allCopyingMs: number; toFinishedMs: number }[] = [];
    for (let run = 1; run <= runs; run += 1) {
      const result = await runFerry(bench, basePlan('bench-same-db', SOURCE_ENV), sourceUrl);
      const seen = await timeline(client, result.status);
      // The first run also opens the worker's connections: a cold start, kept out of the medians.
      if (run > 1) figures.push({ ms: result.ms, ...seen });
      console.log(
        `run ${run}: ${result.ms} ms start to end; every shard copying at ${seen.allCopyingMs.toFixed(0)} ms; ` +
          `last copy call to the recorded end ${seen.toFinishedMs.toFixed(0)} ms${result.problems.length ? `; PROBLEMS: ${result.problems.join('; ')}` : ''}`,
      );
      if (values.events) for (const line of seen.lines) console.log(`  ${line}`);
    }
    if (figures.length > 0) {
      console.log(
        `median of runs 2..${runs}: ${median(figures.map((f) => f.ms))} ms start to end; every shard copying at ` +
          `${median(figures.map((f) => f.allCopyingMs)).toFixed(0)} ms; last copy call to the recorded end ${median(figures.map((f) => f.toFinishedMs)).toFixed(0)} ms`,
      );
    }
  } finally {
    await connection.close();
    await worker.stop();
    await temporalServer.stop();
    await postgres.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
