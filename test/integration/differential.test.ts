/**
 * Differential tests: generated tables of every supported type, migrated through every path and
 * shard kind with a live application writing, must leave Ferry's verification and an independent
 * comparator in agreement, key for key. A fixed seed here; `npm run fuzz` runs more.
 *
 * Cases that show a known defect (cases.ts, KNOWN_DEFECTS) are skipped and named; run them with
 * DIFFERENTIAL_KNOWN_DEFECTS=1 to see them fail. Once a defect is fixed, delete its entry there:
 * its hazard then joins the passing cases, and its skipped case disappears.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { fixedDefectCases, knownDefectCases, passingCases, specFor, type DifferentialCase } from '../support/differential/cases';
import { checkCase } from '../support/differential/property';
import { CONNECTIONS, type DifferentialServers } from '../support/differential/run-case';
import { prepareDatabase } from '../support/differential/tables';
import { COLUMN_TYPE_NAMES } from '../support/differential/values';
import { createTestDatabase, startWorker, type TestWorker } from '../support/harness';

/** Its tables cover every column type and key type (the last test checks it). */
const SEED = 20261202;
const SIZES = { minRows: 20, maxRows: 60 };
/** Runs of each case: one migration per case keeps the file near two minutes on 2 cores. */
const RUNS = 1;
const showKnownDefects = process.env.DIFFERENTIAL_KNOWN_DEFECTS === '1';

describe('differential: Ferry agrees with an independent comparator on generated tables', () => {
  let worker: TestWorker;
  let servers: DifferentialServers;
  let moduleDir: string;

  beforeAll(async () => {
    const [sourceUrl, targetUrl] = await Promise.all([createTestDatabase('diff_src'), createTestDatabase('diff_tgt')]);
    await Promise.all([prepareDatabase(sourceUrl), prepareDatabase(targetUrl)]);
    moduleDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-differential-'));
    worker = await startWorker({ [CONNECTIONS.source]: sourceUrl, [CONNECTIONS.target]: targetUrl });
    servers = { client: worker.client, temporal: worker.temporal, sourceUrl, targetUrl, moduleDir };
  });
  afterAll(async () => {
    await worker?.stop();
    if (moduleDir) rmSync(moduleDir, { recursive: true, force: true });
  });

  async function holds(c: DifferentialCase, seed: number): Promise<void> {
    const result = await checkCase(servers, c, seed, SIZES, RUNS);
    expect(result.failure, result.failure ?? '').toBeNull();
    expect(result.outcomes).toHaveLength(RUNS);
    for (const { spec, outcome } of result.outcomes) {
      // What the run exercised, for whoever reads the log: the seed decides it, the writer's timing too.
      console.log(
        `${c.name}: ${outcome.rows} rows, key ${spec.keyType}, ${spec.columns.length} column types, writer ${outcome.writerOpsApplied}/${spec.writer.length}, ` +
          `damage ${outcome.damageApplied}/${spec.damage.length}, backfill ${outcome.backfillSeconds ?? '?'} s, ${outcome.seconds.toFixed(1)} s in all`,
      );
      expect(outcome.refused).toBeNull();
    }
  }

  passingCases().forEach((c, index) => {
    it(c.name, () => holds(c, SEED + index), 150_000);
  });

  fixedDefectCases().forEach((c, index) => {
    it(c.name, () => holds(c, SEED + 50 + index), 150_000);
  });

  // Known defects not fixed yet: each case below fails today.
  knownDefectCases().forEach((c, index) => {
    (showKnownDefects ? it : it.skip)(`${c.name} (known defect: ${c.knownDefect!.defect})`, () => holds(c, SEED + 100 + index), 150_000);
  });

  it('generates what it claims: every path and shard kind, every column type and key type', () => {
    const cases = passingCases();
    expect(cases.map((c) => c.name)).toEqual(expect.arrayContaining(['sql-same-db / key-range', 'sql-across-dbs / quantile', 'js-one-to-one / partition']));
    // The tables the cases above migrate, with the seeds they run with.
    const specs = [
      ...cases.flatMap((c, index) => fc.sample(specFor(c, SIZES), { seed: SEED + index, numRuns: RUNS })),
      ...fixedDefectCases().flatMap((c, index) => fc.sample(specFor(c, SIZES), { seed: SEED + 50 + index, numRuns: RUNS })),
    ];
    expect(new Set(specs.flatMap((s) => s.columns))).toEqual(new Set(COLUMN_TYPE_NAMES));
    expect(new Set(specs.map((s) => s.keyType))).toEqual(new Set(['int4', 'int8', 'text', 'uuid']));
  });
});
