/**
 * Repairing the mismatches of a pass from the source: rows copied again through the transform,
 * extra rows deleted when the source does not hold them, groups rewritten by lineage column.
 */
import { activityInfo, heartbeat } from '@temporalio/activity';
import type { Heartbeats } from '../heartbeats';
import { to as copyTo } from 'pg-copy-streams';
import { wholeKeySpace } from '../../lib/key-range';
import { lineageColumn, type Plan } from '../../lib/plan';
import { inCopyTransaction, writeBatch } from '../copy/batch-writer';
import { inTransaction } from '../transaction';
import type { Databases } from '../connections';
import { assertPlanSqlIsSafe, oneStatement, readOnly, readOnlyQuery } from '../plan-sql';
import { copyOutSql, type CopySpec, copySpecOf, copyWithinDatabaseSql } from '../copy/copy-statements';
import { installFerrySchema } from '../state/ferry-schema';
import { openMismatchCount, openMismatches, openSourceKeyGroups, resolveMismatchKeys, resolveRewrittenGroups } from '../state/mismatches';
import { copyRangeThroughModule } from '../transform/module-copy';
import { loadTransform } from '../transform/load';
import { isRowError } from '../../lib/errors';
import { allConditions, deleteTargetGroupsSql, deleteTargetKeysSql, rowHashesOf, rowsSql, sourceKeysCondition, sourceKeysPresentSql } from './verify-statements';
import type { BothSides } from './both-sides';
import { repairLedgerCounts, repairLedgerEntrySql, repairLedgerOfCall } from './repair-ledger';

export interface RepairInput {
  migrationId: string;
  plan: Plan;
  pass: number;
}

export interface RepairResult {
  /** Target rows written (inserted or overwritten) from the source. */
  repaired: number;
  /** Target rows deleted because the source does not hold their key. */
  deleted: number;
  /** Mismatches of the pass still unresolved afterwards (rows the target refused). */
  unresolved: number;
}

/** Mismatches a repair handles per transaction. */
const REPAIR_BATCH = 500;

export function createRepair(databases: Databases, { verificationOf }: BothSides, transformDir: string | null) {
  /**
   * Repair by lineage column: each source key with an unresolved mismatch gets its group of target
   * rows rewritten as a whole. The rows it produces now are copied over the target's; then the
   * target rows whose lineage column holds that source key and that it no longer produces are
   * deleted. A target row is deleted only so, traced to a source key that no longer makes it:
   * one with no source key stays, reported. Safe to run twice.
   */
  async function repairGroups(
    { plan, migrationId, pass }: RepairInput,
    lineage: string,
    base: CopySpec,
    copyKeys: (keys: string[]) => Promise<{ written: number; refused: string[] }>,
  ): Promise<RepairResult> {
    const sourcePool = databases.pool(plan.source.connection);
    const targetPool = databases.pool(plan.target.connection);
    const v = await verificationOf(plan, null);
    /** Every target key the source keys produce now. */
    const producedKeys = async (keys: string[]): Promise<string[]> => {
      if (v.moduleRows) return (await v.moduleRows({ keys })).flatMap((r) => (r.unwritable ? [] : [r.key]));
      const query = rowsSql('source', v.shape, { keys }, 'hash');
      return rowHashesOf((await sourcePool.query<unknown[]>({ ...query, rowMode: 'array' })).rows, v.shape).map((r) => r.key);
    };
    let repaired = 0;
    let deleted = 0;
    let after: string | null = null;
    const refused: string[] = [];
    for (;;) {
      const groups = await openSourceKeyGroups(targetPool, { migrationId, pass, after, limit: REPAIR_BATCH });
      if (groups.length === 0) break;
      after = groups[groups.length - 1]!;
      const copied = await copyKeys(groups);
      repaired += copied.written;
      // A group the target refused, or whose transform fails, is not known whole: nothing of it is deleted.
      refused.push(...copied.refused);
      const settled = groups.filter((k) => !copied.refused.includes(k));
      if (settled.length > 0) {
        const statement = deleteTargetGroupsSql(base.target, lineage, settled, await producedKeys(settled));
        deleted += await inCopyTransaction(targetPool, base, async (c) => (await c.query(statement)).rowCount ?? 0);
      }
      heartbeat({ repaired, deleted, after });
    }
    // Resolved: each difference whose every group was rewritten. One with no source key stays.
    await resolveRewrittenGroups(targetPool, migrationId, pass, refused);
    return { repaired, deleted, unresolved: await openMismatchCount(targetPool, migrationId, pass) };
  }

  return {
    /**
     * Repairs the unresolved mismatches of a pass from the source: missing and value rows are
     * copied again through the transform and overwrite the target's row (keys with a tombstone
     * are skipped); extra rows are deleted when the source (checked now) does not hold the key,
     * and copied when it does. Holds the copy lock while it writes. Safe to run twice.
     */
    async repairMismatches(input: RepairInput, heartbeats?: Heartbeats): Promise<RepairResult> {
      const { plan, migrationId, pass } = input;
      // Repairs COPY from the source, over the simple protocol: the plan's SQL must be one expression.
      assertPlanSqlIsSafe(plan);
      const sourcePool = databases.pool(plan.source.connection);
      const targetPool = databases.pool(plan.target.connection);
      await installFerrySchema(targetPool);
      const base: CopySpec = { ...copySpecOf(plan), conflict: { policy: 'overwrite' } };
      const transform = plan.transform.module ? await loadTransform(plan.transform.module, transformDir) : null;
      const sameDatabase = databases.sameDatabase(plan.source.connection, plan.target.connection);

      /** Copies the source rows of `keys` over the target's; returns rows written and keys the target refused. */
      const copyKeys = async (keys: string[]): Promise<{ written: number; refused: string[] }> => {
        if (keys.length === 0) return { written: 0, refused: [] };
        const spec: CopySpec = { ...base, filter: allConditions(base.filter, sourceKeysCondition(plan.source.key, keys)) };
        try {
          if (transform) {
            const outcome = await copyRangeThroughModule(sourcePool, targetPool, spec, wholeKeySpace, plan.transform.module!, transformDir);
            return { written: outcome.written, refused: outcome.failed.map((f) => f.key) };
          }
          if (sameDatabase) {
            const { text, values } = copyWithinDatabaseSql(spec, wholeKeySpace);
            return { written: await inCopyTransaction(targetPool, spec, async (c) => (await c.query(oneStatement({ text, values }))).rowCount ?? 0), refused: [] };
          }
          const out = copyOutSql(spec, wholeKeySpace);
          const written = await writeBatch(targetPool, spec, wholeKeySpace, (send) => readOnly(sourcePool, (s) => send(s.query(copyTo(out)))));
          return { written, refused: [] };
        } catch (error) {
          if (!isRowError((error as { code?: string }).code)) throw error;
          if (keys.length === 1) return { written: 0, refused: keys };
          // One row the target refuses must not keep the others from being repaired.
          let written = 0;
          const refused: string[] = [];
          for (const key of keys) {
            const one = await copyKeys([key]);
            written += one.written;
            refused.push(...one.refused);
          }
          return { written, refused };
        }
      };

      /** The keys of a list the transform makes a row for from the source now. */
      const producedKeys = async (keys: string[]): Promise<Set<string>> => {
        if (transform) {
          const v = await verificationOf(plan, null);
          return new Set((await v.moduleRows!({ keys })).map((r) => r.key));
        }
        const present = await readOnlyQuery<{ key: string }>(sourcePool, sourceKeysPresentSql(base.source, base.filter ?? null, keys));
        return new Set(present.rows.map((r) => r.key));
      };

      const lineage = lineageColumn(plan);
      if (lineage) return repairGroups(input, lineage, base, copyKeys);

      // A retried attempt starts over from the mismatches still open: what the lost one resolved
      // is in the ledger.
      const ledger = repairLedgerOfCall(activityInfo(), migrationId, pass);
      let { repaired, deleted } = ledger && activityInfo().attempt > 1 ? await repairLedgerCounts(targetPool, ledger) : { repaired: 0, deleted: 0 };
      let after: string | null = null;
      heartbeats?.follow(() => ({ repaired, deleted, after }));
      for (;;) {
        const batch = await openMismatches(targetPool, { migrationId, pass, after, limit: REPAIR_BATCH });
        if (batch.length === 0) break;
        after = batch[batch.length - 1]!.key;
        const extra = batch.filter((r) => r.category === 'extra').map((r) => r.key);
        const toCopy = batch.filter((r) => r.category !== 'extra').map((r) => r.key);
        let toDelete: string[] = [];
        if (extra.length > 0) {
          const inSource = await producedKeys(extra);
          toCopy.push(...extra.filter((k) => inSource.has(k)));
          toDelete = extra.filter((k) => !inSource.has(k));
        }
        const copied = await copyKeys(toCopy);
        let deletedNow = 0;
        if (toDelete.length > 0) {
          const statement = deleteTargetKeysSql(base.target, toDelete);
          deletedNow = await inCopyTransaction(targetPool, base, async (c) => (await c.query(statement)).rowCount ?? 0);
        }
        const refused = new Set(copied.refused);
        await inTransaction(targetPool, async (c) => {
          await resolveMismatchKeys(c, migrationId, pass, batch.map((r) => r.key).filter((k) => !refused.has(k)));
          if (ledger) await c.query(repairLedgerEntrySql(ledger, { repaired: copied.written, deleted: deletedNow }));
        });
        repaired += copied.written;
        deleted += deletedNow;
      }
      return { repaired, deleted, unresolved: await openMismatchCount(targetPool, migrationId, pass) };
    },
  };
}
