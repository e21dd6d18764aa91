/**
 * Copier moves rows from source to target in keyset batches, paced by the throttle and the
 * source's health. Every batch is idempotent under the plan's conflict policy, so a batch run
 * twice after a crash changes nothing; a row that cannot be copied is isolated and recorded,
 * and the rest of its batch goes on.
 */
import { activityInfo, CancelledFailure, Context, heartbeat, sleep } from '@temporalio/activity';
import { withHeartbeats, type Heartbeats } from '../heartbeats';
import { wholeKeySpace, type KeyRange, type ShardSpec } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import type { RetryOutcome } from '../../lib/status';
import type { Databases } from '../connections';
import {
  copySpecOf,
  fullBatchEndSql,
  middleKeySql,
  nextBatchBoundSql,
  rangeRowsSql,
  type CopySpec,
} from './copy-statements';
import { copyAcrossDatabases, copyWithinDatabase } from './batch-writer';
import { copyFormatFor } from './copy-format';
import { installFerrySchema, recordFailures, resolveFailedRecord, unresolvedFailedCount, unresolvedFailedKeys, refusedRow, type FailedRecord, MAX_REPORTED_FAILURES } from '../state/ferry-schema';
import { isRowError, redactErrorText, redactRowError } from '../../lib/errors';
import { MIN_BATCH_SIZE, nextBatchSize, plannedLimits } from '../../lib/throttle';
import { column, literal, sql, SOURCE_ALIAS } from '../sql';
import { copyRangeThroughModule } from '../transform/module-copy';
import { transformDirFromEnv } from '../transform/load';
import { openCopyThrottle, type CopyPacing, type ThrottleWait } from './throttle';
import { assertPlanSqlIsSafe, oneStatement, readOnlyQuery } from '../plan-sql';
import { createCopyMetrics, shardIndexOf, type CopyMetrics, type ShardMetrics } from './metrics';
import { capturesChanges } from '../../lib/capture';
import { createChangeApplier } from '../capture/applier';
import { deleteTargetRows } from '../capture/apply-keys';
import type { CopyProgress } from '../../lib/progress';
import { watchShardControl } from './shard-control';
import { ledgerOfCall, ledgerWritten } from './copy-ledger';

export interface CopyBatchesInput {
  migrationId: string;
  plan: Plan;
  shard: ShardSpec;
  /** Last key already copied in the shard; null to start at the shard's beginning. */
  cursor: string | null;
  /** The batch size to start with (adapted by earlier calls). */
  batchSize: number;
  /** The throttle's batch size: adaptation never goes above it. */
  maxBatchSize: number;
  /** This shard's share of the rows/s limit; null for none. */
  rowsPerSecond: number | null;
  /** Return once this many rows have failed in this call, so the migration can pause. */
  failureBudget: number;
  /** Return after about this long, for the shard to record its cursor (and apply a new throttle). (Default: 5) */
  maxSeconds?: number;
  /**
   * Ask the shard workflow once a second for its throttle and pause, and return as soon as they
   * differ from this call's: a long call then still picks up a change promptly.
   */
  followShard?: boolean;
  /** The pacing controller's memory from the previous call; absent for a copy about to start. */
  pacing?: CopyPacing | null;
}

export interface CopyBatchesResult extends CopyProgress {
  /** The shard holds no rows after the cursor. */
  done: boolean;
  /** Why copying cannot go on until a person acts; the migration pauses. */
  blocked?: string;
  /** Rows that failed in this call (error messages without row values), at most MAX_REPORTED_FAILURES. */
  failures: FailedRecord[];
}

const LOCK_NOT_AVAILABLE = '55P03';
/** Refusals a person has to fix: a missing privilege, or insufficient resources (class 53: disk full, ...). */
const TARGET_REFUSES = new Set(['42501', '53', '25006']);
const QUERY_CANCELED = '57014';

interface RangeOutcome {
  written: number;
  failures: FailedRecord[];
}

export function createCopier(databases: Databases, metrics: CopyMetrics = createCopyMetrics(), transformDir: string | null = transformDirFromEnv()) {
  const changes = createChangeApplier(databases, transformDir);
  /**
   * Copies one key range of `spec` by the fastest path the plan allows: one statement inside one
   * database, COPY between two, or through the worker for a module transform (which reports the
   * rows its function refused rather than failing the range).
   */
  const rangeCopier = async (plan: Plan): Promise<(spec: CopySpec, range: KeyRange) => Promise<RangeOutcome>> => {
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    const modulePath = plan.transform.module;
    if (modulePath) {
      return async (spec, range) => {
        const { written, failed } = await copyRangeThroughModule(sourcePool, targetPool, spec, range, modulePath, transformDir);
        return { written, failures: failed.map((f) => ({ key: f.key, code: null, error: f.error })) };
      };
    }
    if (databases.sameDatabase(plan.source.connection, plan.target.connection)) {
      return async (spec, range) => ({ written: await copyWithinDatabase(sourcePool, spec, range), failures: [] });
    }
    const copyFormat = await copyFormatFor(sourcePool, targetPool, copySpecOf(plan));
    return async (spec, range) => ({ written: await copyAcrossDatabases(sourcePool, targetPool, { ...spec, copyFormat }, range), failures: [] });
  };

  const activities = {
    /**
     * Copies batches from the cursor on until the shard is done or about `maxSeconds` have
     * passed. Its progress is heartbeated from `heartbeats`' timer and after every batch; a
     * retried attempt resumes from it.
     */
    async copyBatches(input: CopyBatchesInput, heartbeats: Heartbeats | undefined, seen: ShardMetrics): Promise<CopyBatchesResult> {
      const { plan } = input;
      assertPlanSqlIsSafe(plan);
      const ledger = ledgerOfCall(activityInfo());
      const spec: CopySpec = { ...copySpecOf(plan, input.shard.partitionValue), ledger };
      const sourcePool = databases.pool(plan.source.connection);
      const targetPool = databases.pool(plan.target.connection);
      // A worker that started on an older schema leaves the upgrade (the ledger) to the first call; after it, one read.
      await installFerrySchema(targetPool);
      const copyChunk = await rangeCopier(plan);
      // With trigger or logical capture, changes the chunk's read missed are applied again after its write.
      const copyRange = capturesChanges(plan)
        ? async (spec: CopySpec, range: KeyRange) => (await changes.copyChunkWithWatermark(input.migrationId, plan, range, () => copyChunk(spec, range))).copied
        : copyChunk;
      const maxMs = (input.maxSeconds ?? 5) * 1000;
      const targetBatchMs = plan.throttle.targetBatchSeconds * 1000;

      /** Copies a range; when a row in it is refused, halves the range until that row stands alone. */
      const copyIsolating = async (range: KeyRange, rows: number): Promise<RangeOutcome> => {
        try {
          return await copyRange(spec, range);
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (!isRowError(code)) throw error;
          const probe = nextBatchBoundSql(spec, range, 2);
          const present = await sourcePool.query<{ last_key: string; rows: string }>(oneStatement(probe));
          const count = Number(present.rows[0]?.rows ?? 0);
          if (count === 0) return { written: 0, failures: [] };
          if (count === 1) {
            return { written: 0, failures: [refusedRow(present.rows[0]!.last_key, error)] };
          }
          const half = Math.max(1, Math.floor(Math.max(rows, 2) / 2));
          const middle = middleKeySql(spec, range, half);
          const split = await sourcePool.query<{ key: string }>(oneStatement(middle));
          const middleKey = split.rows[0]?.key;
          if (middleKey === undefined || middleKey === range.upTo) return copyIsolating(range, 2);
          const left = await copyIsolating({ after: range.after, upTo: middleKey }, half);
          const right = await copyIsolating({ after: middleKey, upTo: range.upTo }, Math.max(rows - half, 1));
          return { written: left.written + right.written, failures: [...left.failures, ...right.failures] };
        }
      };

      const resumed = activityInfo().heartbeatDetails as CopyProgress | undefined;
      const progress: CopyProgress = resumed ?? {
        cursor: input.cursor,
        rowsRead: 0,
        rowsWritten: 0,
        rowsFailed: 0,
        batches: 0,
        batchSize: Math.min(input.batchSize, input.maxBatchSize),
        throttleReason: null,
      };
      progress.batchSize = Math.min(progress.batchSize, input.maxBatchSize);
      // A retried attempt copies again the batches its lost attempt wrote after the last checkpoint: they count as written.
      if (ledger && activityInfo().attempt > 1) progress.rowsWritten = Math.max(progress.rowsWritten, (await ledgerWritten(targetPool, ledger)) ?? 0);
      const throttle = await openCopyThrottle({
        pool: sourcePool,
        targetPool: databases.sameDatabase(plan.source.connection, plan.target.connection) ? undefined : targetPool,
        plan,
        rowsPerSecond: input.rowsPerSecond,
        pacing: progress.pacing ?? input.pacing ?? null,
        observe: seen.sourceHealth,
      });
      progress.pacing = throttle.pacing();
      heartbeats?.follow(() => progress);
      const reported: FailedRecord[] = [];
      const started = Date.now();
      let failedThisAttempt = 0;
      const finish = (done: boolean): CopyBatchesResult => ({ ...progress, done, failures: reported });
      const shardId = activityInfo().workflowExecution?.workflowId;
      const control = input.followShard && shardId ? watchShardControl({ workflowId: shardId, rowsPerSecond: input.rowsPerSecond, batchSize: input.maxBatchSize, limits: plannedLimits(plan) }) : null;
      const timeUp = () => Date.now() - started >= maxMs || control?.changed === true;
      // Waits end with the call, or when the shard's throttle changes, so a new throttle applies
      // promptly however long the plan's waits are. Activity sleep rejects when the call is cancelled.
      const wait = async (ms: number) => {
        const slept = sleep(Math.min(ms, Math.max(0, maxMs - (Date.now() - started))));
        if (!control) return slept;
        slept.catch(() => {});
        await Promise.race([slept, control.whenChanged]);
      };
      const show = (why: ThrottleWait) => {
        progress.throttleReason = why.reason;
        seen.throttle(why.kind);
      };

      try {
        return await copyLoop();
      } finally {
        control?.stop();
      }

      async function copyLoop(): Promise<CopyBatchesResult> {
        for (;;) {
          const before = await throttle.beforeBatch();
          progress.pacing = throttle.pacing();
          if (before.ms > 0) {
            show(before);
            heartbeat(progress);
            if (timeUp()) return finish(false);
            await wait(before.ms);
            continue;
          }
          if (progress.throttleReason?.startsWith('holding: ')) show(before);

          const range: KeyRange = { after: progress.cursor ?? input.shard.range.after, upTo: input.shard.range.upTo };
          const size = throttle.batchSize(progress.batchSize);
          // A full batch's end is one cheap walk; only a range's last batch needs the count.
          const full = await sourcePool.query<{ last_key: string }>(oneStatement(fullBatchEndSql(spec, range, size)));
          const next = full.rows[0]
            ? { last_key: full.rows[0].last_key, rows: String(size) }
            : (await sourcePool.query<{ last_key: string; rows: string }>(oneStatement(nextBatchBoundSql(spec, range, size)))).rows[0];
          const lastKey = next?.last_key;
          if (lastKey === undefined) return finish(true);
          const rows = Number(next!.rows);

          const batchStarted = Date.now();
          let outcome: RangeOutcome;
          try {
            outcome = await copyIsolating({ after: range.after, upTo: lastKey }, rows);
          } catch (error) {
            const code = (error as { code?: string }).code;
            if (code && TARGET_REFUSES.has(code.slice(0, 2) === '53' ? code.slice(0, 2) : code)) {
              // Retrying cannot help until a person acts (a grant, disk space): stop and say why;
              // the migration pauses for them, and nothing copied so far is lost.
              progress.throttleReason = null;
              return { ...finish(false), blocked: `the database refuses the copy: ${redactErrorText(error)} [${code}]` };
            }
            if (code !== LOCK_NOT_AVAILABLE && code !== QUERY_CANCELED) throw error;
            // A lock held on the target (lock_timeout) or a batch too slow for statement_timeout:
            // wait, or take a smaller bite, and try the same batch again; never queue up sessions.
            progress.throttleReason =
              code === LOCK_NOT_AVAILABLE ? 'holding: the target table is locked by another session' : 'holding: a batch ran into statement_timeout; smaller batches';
            if (code === QUERY_CANCELED) progress.batchSize = Math.max(MIN_BATCH_SIZE, Math.floor(progress.batchSize / 2));
            heartbeat(progress);
            if (timeUp()) return finish(false);
            await wait(plan.backoff.checkEverySeconds * 1000);
            continue;
          }
          const batchMs = Date.now() - batchStarted;
          if (outcome.failures.length > 0) {
            await recordFailures(targetPool, input.migrationId, outcome.failures);
            for (const failure of outcome.failures) {
              if (reported.length < MAX_REPORTED_FAILURES) reported.push({ key: failure.key, code: failure.code, error: redactRowError(failure) });
            }
          }

          progress.cursor = lastKey;
          progress.rowsRead += rows;
          progress.rowsWritten += outcome.written;
          progress.rowsFailed += outcome.failures.length;
          progress.batches += 1;
          progress.batchSize = nextBatchSize({
            current: size,
            rows,
            elapsedMs: batchMs,
            targetMs: targetBatchMs,
            max: input.maxBatchSize,
          });
          seen.batch({
            rows,
            written: outcome.written,
            failed: outcome.failures.length,
            seconds: batchMs / 1000,
            nextBatchSize: progress.batchSize,
            rowsPerSecond: input.rowsPerSecond,
          });
          failedThisAttempt += outcome.failures.length;
          heartbeat(progress);
          if (Context.current().cancellationSignal.aborted) throw new CancelledFailure('copy cancelled');
          if (failedThisAttempt >= input.failureBudget) return finish(false);

          const pace = throttle.afterBatch(rows);
          show(pace);
          // Activity sleep ends early with a failure when the activity is cancelled.
          if (pace.ms > 0) await wait(pace.ms);
          if (timeUp()) return finish(false);
        }
      }
    },

    /** Copies every unresolved failed row of a migration again, one by one, after a fix. */
    async retryFailedRecords({ migrationId, plan }: { migrationId: string; plan: Plan }, heartbeats?: Heartbeats): Promise<RetryOutcome> {
      assertPlanSqlIsSafe(plan);
      const [sourcePool, targetPool] = [databases.pool(plan.source.connection), databases.pool(plan.target.connection)];
      const copyRange = await rangeCopier(plan);
      const base = copySpecOf(plan);
      const failed = await unresolvedFailedKeys(targetPool, migrationId);
      let fixed = 0;
      heartbeats?.follow(() => fixed);
      for (const key of failed) {
        const onlyThisKey = sql`${column(SOURCE_ALIAS, plan.source.key)} = ${literal(key)}`.text;
        const spec = { ...base, filter: base.filter ? `${base.filter} AND ${onlyThisKey}` : onlyThisKey };
        let outcome = await copyRange(spec, { after: null, upTo: null }).catch((error: unknown): RangeOutcome => {
          const code = (error as { code?: string }).code;
          if (!isRowError(code)) throw error;
          return { written: 0, failures: [refusedRow(key, error)] };
        });
        // Under capture, a key the source no longer holds (its failure was the delete of its target
        // row) is fixed by that delete; with dual writes the application deletes its own rows.
        if (capturesChanges(plan) && outcome.written === 0 && outcome.failures.length === 0 && (await readOnlyQuery(sourcePool, oneStatement(rangeRowsSql(spec, wholeKeySpace, 1)))).rowCount === 0) {
          outcome = { written: 0, failures: (await deleteTargetRows(targetPool, base, [key])).failed };
        }
        if (outcome.failures.length > 0) {
          await recordFailures(targetPool, migrationId, outcome.failures);
        } else {
          await resolveFailedRecord(targetPool, migrationId, key);
          fixed += 1;
        }
      }
      return { retried: failed.length, fixed, stillFailing: await unresolvedFailedCount(targetPool, migrationId) };
    },
  };

  return {
    ...activities,
    /**
     * copyBatches, heartbeating every few seconds even while one statement runs long; the shard's
     * gauges end with the call, however it ends (the next may run on another worker).
     */
    async copyBatches(input: CopyBatchesInput): Promise<CopyBatchesResult> {
      const seen = metrics.shard(input.plan.name, shardIndexOf(activityInfo().workflowExecution?.workflowId));
      try {
        return await withHeartbeats((heartbeats) => activities.copyBatches(input, heartbeats, seen));
      } finally {
        seen.end();
      }
    },
    /** retryFailedRecords, heartbeating every few seconds. */
    async retryFailedRecords(input: { migrationId: string; plan: Plan }): Promise<RetryOutcome> {
      return withHeartbeats((heartbeats) => activities.retryFailedRecords(input, heartbeats));
    },
  };
}
