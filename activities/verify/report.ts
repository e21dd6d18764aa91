/** The report of a migration's latest verification pass: counts, examples and, on request, values. */
import type { Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import type { Mismatch, MismatchCategory } from '../state/ferry-schema';
import { ferrySql, sql } from '../sql';
import { runOfPass } from './verification-runs';
import { keyOrderSql } from './verify-statements';
import { type ColumnValues, type BothSides, type MismatchCounts, zeroCounts } from './both-sides';
import { MAX_EXAMPLES } from './compare';

export interface MismatchReportInput {
  migrationId: string;
  plan: Plan;
  /** Also return the source (transformed) and target values of the examples. (Default: false) */
  showValues?: boolean;
  /** Examples at most. (Default: 20) */
  limit?: number;
}

export interface MismatchReportExample extends Mismatch {
  resolved: boolean;
  /** Only with showValues: per differing column (every column for missing and extra rows). */
  values?: Record<string, ColumnValues>;
  /** The values are as the pass found them (false: read when the report was made, after any repair). */
  valuesAsFound?: boolean;
}

export interface MismatchReport {
  migrationId: string;
  /** The latest pass with mismatches recorded; null when there are none. */
  pass: number | null;
  /** The verification run of that pass, and its number within the run, when the run was recorded. */
  run?: number;
  runPass?: number;
  counts: MismatchCounts;
  unresolved: MismatchCounts;
  examples: MismatchReportExample[];
}

export function createMismatchReport(databases: Databases, { verificationOf, rowValues }: BothSides) {
  return {
    /**
     * The latest pass's mismatches: counts per category and examples (keys, categories, column
     * names). Values only with showValues, as canonical text: as the pass found them, or read
     * now from both sides for mismatches whose values were not kept (said so per example).
     */
    async mismatchReport(input: MismatchReportInput): Promise<MismatchReport> {
      const { plan, migrationId } = input;
      const targetPool = databases.pool(plan.target.connection);
      const report: MismatchReport = { migrationId, pass: null, counts: zeroCounts(), unresolved: zeroCounts(), examples: [] };
      const exists = await targetPool.query<{ present: boolean }>(sql`SELECT to_regclass('ferry.mismatches') IS NOT NULL AS present`);
      if (!exists.rows[0]?.present) return report;
      const latest = await targetPool.query<{ pass: number | null }>(sql`SELECT max(pass) AS pass FROM ferry.mismatches WHERE migration_id = ${migrationId}`);
      const pass = latest.rows[0]?.pass ?? null;
      if (pass === null) return report;
      report.pass = pass;
      const counts = await targetPool.query<{ category: MismatchCategory; all: number; open: number }>(
        sql`SELECT category, count(*)::int AS all, (count(*) FILTER (WHERE resolved_at IS NULL))::int AS open
              FROM ferry.mismatches WHERE migration_id = ${migrationId} AND pass = ${pass} GROUP BY category`,
      );
      for (const row of counts.rows) {
        report.counts[row.category] = row.all;
        report.unresolved[row.category] = row.open;
      }
      const examples = await targetPool.query<{ key: string; category: MismatchCategory; columns: string[]; resolved: boolean; found: Record<string, ColumnValues> | null; source_keys: string[] | null }>(
        sql`SELECT key, category, columns, resolved_at IS NOT NULL AS resolved, found_values AS found, source_keys FROM ferry.mismatches
             WHERE migration_id = ${migrationId} AND pass = ${pass} ORDER BY resolved_at IS NOT NULL, ${ferrySql(keyOrderSql('key'))} LIMIT ${input.limit ?? MAX_EXAMPLES}`,
      );
      report.examples = examples.rows.map((r) => ({ key: r.key, category: r.category, columns: r.columns, resolved: r.resolved }));
      const run = await runOfPass(targetPool, migrationId, pass);
      if (run) Object.assign(report, { run: run.run, runPass: run.pass });
      if (!input.showValues || report.examples.length === 0) return report;

      // Values as the pass found them; those it did not keep are read now, and say so.
      const notKept = examples.rows.filter((r) => !r.found);
      const readNow = notKept.length ? await rowValues(plan, await verificationOf(plan, null), notKept.map((r) => r.key), notKept.flatMap((r) => r.source_keys ?? [])) : null;
      report.examples.forEach((example, i) => {
        const found = examples.rows[i]!.found;
        example.values = found ?? readNow!(example);
        example.valuesAsFound = found !== null;
      });
      return report;
    },
  };
}
