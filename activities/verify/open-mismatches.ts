/**
 * Carrying the open mismatches of earlier passes into the current one (recheckOpenMismatches):
 * a pass that did not compare those keys (a sample, a narrower scope) neither forgets nor clears them.
 */
import { heartbeat, sleep } from '@temporalio/activity';
import type { Databases } from '../connections';
import type { Plan } from '../../lib/plan';
import { installFerrySchema, type Mismatch, recordMismatches } from '../state/ferry-schema';
import { openKeysOfEarlierPasses, resolveEarlierPasses, sourceKeysOfEarlierPasses } from '../state/mismatches';
import { targetKeysHeldSql } from './coverage-statements';
import { diffRows, type RowHashes } from './verify-statements';
import { columnNames, type BothSides, MIN_PAGE_ROWS, type MismatchCounts, rereadWith, type Verification, zeroCounts } from './both-sides';
import { captureSettle } from './capture-settle';
import type { RepairInput } from './repair';

/** Open mismatches of earlier passes checked again per query. */
const RECHECK_BATCH = 500;

export function createOpenMismatchRecheck(databases: Databases, { verificationOf, bothSides, captureFoundValues }: BothSides) {
  /**
   * The differences among some open mismatches' keys now. The keys are target keys: with a
   * lineage column both sides are read by the source keys of their groups instead (those recorded
   * with the mismatches, and those the target rows hold now), and only these keys' differences
   * are kept; a target row with no source key is read by none, and stays extra (`untraced`).
   */
  async function openKeysCompared(
    plan: Plan,
    v: Verification,
    migrationId: string,
    pass: number,
    keys: string[],
    pageRows: number,
  ): Promise<{ differences: Mismatch[]; untraced: Mismatch[] }> {
    const lineage = v.shape.lineage;
    if (!lineage) {
      const [s, t] = await bothSides(plan, v, { keys }, { keys }, pageRows);
      return { differences: diffRows(columnNames(v), s, t), untraced: [] };
    }
    const targetPool = databases.pool(plan.target.connection);
    const held = await targetPool.query<{ key: string; source_key: string | null }>(targetKeysHeldSql(v.shape.target, lineage, keys));
    const sourceKeys = [
      ...new Set([...(await sourceKeysOfEarlierPasses(targetPool, migrationId, pass, keys)), ...held.rows.flatMap((r) => (r.source_key === null ? [] : [r.source_key]))]),
    ];
    const open = new Set(keys);
    const [s, t]: [RowHashes[], RowHashes[]] = sourceKeys.length > 0 ? await bothSides(plan, v, { keys: sourceKeys }, { keys: sourceKeys }, pageRows) : [[], []];
    return {
      differences: diffRows(columnNames(v), s, t).filter((d) => open.has(d.key)),
      untraced: held.rows.filter((r) => r.source_key === null).map((r): Mismatch => ({ key: r.key, category: 'extra', columns: [], sourceKey: null })),
    };
  }

  return {
    /**
     * Carries what earlier passes left unresolved into this pass, so a pass that did not compare
     * those keys (a sample, a narrower scope) neither forgets nor clears them: each such key is
     * compared again now; one that still differs is recorded under this pass (values as found),
     * one that is equal is resolved. Earlier passes then hold nothing open. Safe to run twice.
     */
    async recheckOpenMismatches(input: RepairInput): Promise<MismatchCounts> {
      const { plan, migrationId, pass } = input;
      const targetPool = databases.pool(plan.target.connection);
      await installFerrySchema(targetPool);
      const counts = zeroCounts();
      let v: Verification | null = null;
      let settle: ReturnType<typeof captureSettle> | null = null;
      let after: string | null = null;
      for (;;) {
        const keys = await openKeysOfEarlierPasses(targetPool, { migrationId, pass, after, limit: RECHECK_BATCH });
        if (keys.length === 0) break;
        after = keys[keys.length - 1]!;
        v ??= await verificationOf(plan, null, undefined, migrationId);
        settle ??= captureSettle(databases.pool(plan.source.connection), targetPool, plan, migrationId, !!v.shape.lineage);
        const pageRows = Math.max(MIN_PAGE_ROWS, keys.length + 1);
        const { differences: found, untraced } = await openKeysCompared(plan, v, migrationId, pass, keys, pageRows);
        let differences = found;
        if (differences.length > 0) {
          // A write in flight, or a change the change apply has yet to apply, as in verifyShard.
          await sleep(plan.verify.inFlightDelaySeconds * 1000);
          const reread = rereadWith(bothSides, plan, v, pageRows);
          differences = await settle(await reread(differences), reread);
        }
        differences = [...differences, ...untraced];
        await recordMismatches(targetPool, migrationId, pass, differences);
        await captureFoundValues(plan, v, migrationId, pass, differences);
        for (const d of differences) counts[d.category] += 1;
        heartbeat({ after });
      }
      await resolveEarlierPasses(targetPool, migrationId, pass);
      return counts;
    },
  };
}
