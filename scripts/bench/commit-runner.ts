/**
 * One round of `compare-commits` for one checkout: the bench's copy paths and verification, run
 * with that checkout's own operator API and verifier (loaded from its folder, whatever its layout)
 * against its own worker, with the throttle pinned and once more with the plan's defaults.
 * Prints one JSON object (rows/s per path, or the reason a path gave none) on its last line.
 */
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { PATHS, PINNED, type PathName, type RoundResult } from './compare-paths';
import { checkTarget, resetTarget, SOURCE_TABLE, TARGET_TABLE, targetColumns, transformSql } from './dataset';

/** A copy that has not ended by then is stuck; it is terminated and gives no figure. */
const COPY_TIMEOUT_MS = 300_000;
const SOURCE_ENV = 'BENCH_SOURCE_URL';
const TARGET_ENV = 'BENCH_TARGET_URL';

/** What a verifyShard call answers, in every layout so far. */
interface VerifyCall {
  done: boolean;
  cursor: string | null;
  rowsChecked: number;
  mismatches: { missing: number; extra: number; value: number };
}

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any -- the checkout's modules are found at run time, by its layout */
/** A checkout's module by its path without extension, trying each layout it may have. */
function load(root: string, ...candidates: string[]): any {
  for (const candidate of candidates) {
    if (existsSync(path.join(root, `${candidate}.ts`))) return require(path.join(root, candidate));
    if (existsSync(path.join(root, candidate, 'index.ts'))) return require(path.join(root, candidate, 'index.ts'));
  }
  throw new Error(`${root} has none of ${candidates.join(', ')}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      root: { type: 'string' },
      address: { type: 'string' },
      queue: { type: 'string' },
      source: { type: 'string' },
      target: { type: 'string' },
      rows: { type: 'string' },
      paths: { type: 'string' },
    },
    strict: true,
  });
  const root = path.resolve(values.root!);
  const rows = Number(values.rows);
  const sourceUrl = values.source!;
  const targetUrl = values.target!;
  const env = { [SOURCE_ENV]: sourceUrl, [TARGET_ENV]: targetUrl };
  // Verification needs the cross-database copy, so it is made (and timed) whenever a verification is asked for.
  const wanted = new Set(values.paths ? values.paths.split(',') : PATHS);
  if (wanted.has('verify') || wanted.has('verifyJsTransform')) wanted.add('crossDb');

  const plans = load(root, 'lib/plan');
  const settings = load(root, 'lib/settings');
  const operator = load(root, 'operator', 'cli/migrations');
  const connections = load(root, 'activities/connections');
  const verifierModule = load(root, 'activities/verify/verifier', 'activities/verifier');
  const codec = existsSync(path.join(root, 'workers/payload-codec.ts')) ? load(root, 'workers/payload-codec') : null;
  // A checkout with the pacing controller has `throttle.budget`; the pinned runs turn it off.
  const hasPacing = existsSync(path.join(root, 'lib/pacing-controller.ts'));

  const temporal = settings.temporalSettings({}, { address: values.address, taskQueue: values.queue });
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection, namespace: temporal.namespace, ...(codec ? { dataConverter: codec.ferryDataConverter() } : {}) });

  const jsTransform = { module: path.join(root, 'scripts', 'bench-transform.ts'), columns: targetColumns.map((c) => c.name) };
  const plan = (name: string, targetEnv: string, js: boolean, pinned: boolean) => ({
    name,
    source: { connection: SOURCE_ENV, table: SOURCE_TABLE, key: 'id' },
    target: { connection: targetEnv, table: TARGET_TABLE },
    transform: js ? jsTransform : { sql: transformSql },
    ...(pinned && {
      throttle: { batchSize: PINNED.batchSize, concurrency: PINNED.concurrency, rowsPerSecond: null, ...(hasPacing ? { budget: false } : {}) },
      shards: { count: PINNED.shards },
    }),
    verify: { enabled: false },
  });

  const result: RoundResult = {};
  const failed = (name: PathName, error: unknown) => {
    result[name] = { rowsPerSec: null, ms: null, error: error instanceof Error ? error.message : String(error) };
  };

  /** One migration to its end; its rate from the workflow's own start and finish times, as the bench. */
  const copy = async (name: PathName, planInput: object, url: string, keep = false) => {
    if (!wanted.has(name)) return;
    try {
      await resetTarget(url);
      const validated = plans.validatePlan(planInput, (planInput as { name: string }).name);
      const handle: WorkflowHandle = await operator.startMigration(client, temporal, validated, { execute: true, rerun: true });
      let timer: NodeJS.Timeout | undefined;
      const status = await Promise.race([
        handle.result(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not finished after ${COPY_TIMEOUT_MS / 1000} s`)), COPY_TIMEOUT_MS);
        }),
      ]).catch(async (error: unknown) => {
        for await (const run of client.workflow.list({ query: `WorkflowId STARTS_WITH '${handle.workflowId}' AND ExecutionStatus = 'Running'` })) {
          await client.workflow.getHandle(run.workflowId).terminate('compare-commits: stuck').catch(() => {});
        }
        throw error;
      });
      clearTimeout(timer);
      const ms = Date.parse(status.finishedAt) - Date.parse(status.startedAt);
      const problems = await checkTarget(sourceUrl, url, rows);
      if (status.rowsRead !== rows) problems.push(`${status.rowsRead} rows read of ${rows}`);
      result[name] = problems.length ? { rowsPerSec: null, ms, error: problems.join('; ') } : { rowsPerSec: rows / (ms / 1000), ms };
    } catch (error) {
      failed(name, error);
    } finally {
      if (!keep) await resetTarget(url).catch(() => {});
    }
  };

  /** verifyShard over the whole table in two key ranges at once, in this process, as the bench's verification figure. */
  const verify = async (name: PathName, planInput: object) => {
    if (!wanted.has(name)) return;
    const databases = connections.createDatabases({ env });
    try {
      const validated = plans.validatePlan(planInput, (planInput as { name: string }).name);
      const verifier = verifierModule.createVerifier(databases, path.join(root, 'scripts'));
      let checked = 0;
      let mismatched = 0;
      const range = async (after: string | null, upTo: string | null) => {
        let cursor: string | null = null;
        for (let done = false; !done; ) {
          const last: VerifyCall = await new MockActivityEnvironment().run(verifier.verifyShard, {
            migrationId: `compare-verify-${process.pid}`,
            plan: validated,
            shard: { range: { after, upTo }, partitionValue: null },
            cursor,
            // The checkout's own default, as the bench's verification figure.
            chunkSize: validated.verify.chunkSize,
            pass: 1,
          });
          done = last.done;
          cursor = last.cursor;
          checked += last.rowsChecked;
          mismatched += last.mismatches.missing + last.mismatches.extra + last.mismatches.value;
        }
      };
      const middle = String(Math.ceil(rows / 2));
      const started = performance.now();
      await Promise.all([range(null, middle), range(middle, null)]);
      const ms = performance.now() - started;
      const problems = [...(checked !== rows ? [`checked ${checked} rows of ${rows}`] : []), ...(mismatched ? [`${mismatched} mismatches on equal data`] : [])];
      result[name] = problems.length ? { rowsPerSec: null, ms, error: problems.join('; ') } : { rowsPerSec: rows / (ms / 1000), ms };
    } catch (error) {
      failed(name, error);
    } finally {
      await databases.close();
    }
  };

  try {
    await copy('sameDb', plan('cmp-same-db', SOURCE_ENV, false, true), sourceUrl);
    // The cross-database copy stays for verification, settled as the bench settles its target.
    await copy('crossDb', plan('cmp-cross-db', TARGET_ENV, false, true), targetUrl, true);
    if (result.crossDb?.rowsPerSec) {
      const admin = new pg.Client({ connectionString: targetUrl });
      await admin.connect();
      await admin.query(`VACUUM (FREEZE, ANALYZE) ${TARGET_TABLE}`).finally(() => admin.end());
      await verify('verify', plan('cmp-verify', TARGET_ENV, false, true));
      await verify('verifyJsTransform', plan('cmp-verify-js', TARGET_ENV, true, true));
    } else {
      failed('verify', 'no complete copy to verify');
      failed('verifyJsTransform', 'no complete copy to verify');
    }
    await resetTarget(targetUrl);
    await copy('jsTransform', plan('cmp-js', TARGET_ENV, true, true), targetUrl);
    await copy('sameDbDefaults', plan('cmp-same-db-defaults', SOURCE_ENV, false, false), sourceUrl);
    await copy('crossDbDefaults', plan('cmp-cross-db-defaults', TARGET_ENV, false, false), targetUrl);
    await copy('jsTransformDefaults', plan('cmp-js-defaults', TARGET_ENV, true, false), targetUrl);
  } finally {
    await connection.close();
  }
  console.log(JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`commit-runner failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
