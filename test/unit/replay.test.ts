/**
 * Recorded histories of every workflow type replay against the current workflow code: a change
 * that would break migrations already running fails here. Record new ones with
 * `npm run record-histories` only after guarding such a change with patched().
 */
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { workflowsPath } from '../../workers/worker';

const dir = path.join(__dirname, '..', 'histories');
const workflowIds = JSON.parse(readFileSync(path.join(dir, 'workflow-ids.json'), 'utf8')) as Record<string, string>;
const files = readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'workflow-ids.json');

describe('recorded workflow histories', () => {
  it('cover the lifecycle, an abort, a dry run, a gate that continued-as-new, shards, verification and checks after the end', () => {
    // Newer recordings sit beside these (record-histories --suffix), never in their place.
    expect(files.sort()).toEqual(expect.arrayContaining([
      'check-repaired.json',
      'check-sampled.json',
      'migration-aborted-in-backfill.json',
      'migration-continued-as-new-at-gate.json',
      'migration-dry-run.json',
      'migration-full-lifecycle.json',
      'shard-continued-as-new.json',
      'shard-last-run.json',
      'verify-shard.json',
    ]));
  });

  it('replay against the current code without nondeterminism', async () => {
    Runtime.install({ logger: new DefaultLogger('WARN') });
    const histories = files.map((file) => ({
      workflowId: workflowIds[file]!,
      history: historyFromJSON(JSON.parse(readFileSync(path.join(dir, file), 'utf8'))),
    }));
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories({ workflowsPath }, histories)) {
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
      replayed += 1;
    }
    expect(failures).toEqual([]);
    expect(replayed).toBe(files.length);
  }, 120_000);
});
