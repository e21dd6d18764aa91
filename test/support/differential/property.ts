/**
 * The differential property, for the CI test and `npm run fuzz` alike: generated runs of one
 * case, each of which must keep Ferry and the comparator in agreement. A failure comes back as
 * a counterexample a person can read and a seed that replays it.
 */
import fc from 'fast-check';
import { specFor, type DifferentialCase, type Sizes } from './cases';
import { runCase, type CaseOutcome, type DifferentialServers } from './run-case';
import type { TableSpec } from './table-spec';

export interface PropertyResult {
  case: DifferentialCase;
  seed: number;
  outcomes: { spec: TableSpec; outcome: CaseOutcome }[];
  /** A readable counterexample, when the property failed. */
  failure: string | null;
}

export async function checkCase(servers: DifferentialServers, c: DifferentialCase, seed: number, sizes: Sizes, numRuns = 1): Promise<PropertyResult> {
  const result: PropertyResult = { case: c, seed, outcomes: [], failure: null };
  const details = await fc.check(
    fc.asyncProperty(specFor(c, sizes), async (spec) => {
      const outcome = await runCase(servers, c, spec);
      result.outcomes.push({ spec, outcome });
      if (outcome.problems.length > 0) throw new Error(counterexample(c, spec, outcome));
    }),
    // Every run is a whole migration: report the first counterexample as found, without shrinking.
    { seed, numRuns, endOnFailure: true },
  );
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    result.failure = `${cause}\n  fast-check: seed ${details.seed}, path ${details.counterexamplePath ?? '0'}`;
  }
  return result;
}

function counterexample(c: DifferentialCase, spec: TableSpec, outcome: CaseOutcome): string {
  const writes = spec.writer.reduce<Record<string, number>>((n, op) => ({ ...n, [op.kind]: (n[op.kind] ?? 0) + 1 }), {});
  return [
    `case ${c.name}: ${outcome.problems.length} problem(s) in migration ${outcome.migrationId}`,
    `  plan: ${outcome.plan.source.table} -> ${outcome.plan.target.table}, ${outcome.plan.shards.partitionColumn ? `a shard per value of ${outcome.plan.shards.partitionColumn}` : `${outcome.plan.shards.count} shards by ${c.shardKind}`}, ` +
      `transform ${outcome.plan.transform.module ? 'module' : 'sql'}, target ${outcome.plan.target.connection}`,
    `  table: key ${spec.keyType}${spec.nullKeys ? ' (nullable, with NULL keys)' : ''}, partition ${spec.partType}, ${outcome.rows} rows, columns ${spec.columns.join(', ')}`,
    `  writer: ${outcome.writerOpsApplied} of ${spec.writer.length} operations applied (${Object.entries(writes).map(([k, n]) => `${n} ${k}`).join(', ')}); damage: ${outcome.damageApplied} of ${spec.damage.length}; ` +
      `backfill ${outcome.backfillSeconds ?? '?'} s${outcome.reverifiedAfterRace ? ', verified again after a write raced verification' : ''}`,
    ...outcome.problems.map((p) => `  - ${p}`),
  ].join('\n');
}
