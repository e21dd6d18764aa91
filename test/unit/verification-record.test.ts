/** How verification runs read: samples say so, counts agree with the verdict, later checks are listed, refusals say why. */
import { describe, expect, it } from 'vitest';
import { checkProblems, staleSourceNote, type EndedMigration } from '../../operator';
import { formatVerification, formatVerificationRun } from '../../cli/render';
import { migrationRecord, recordMarkdown } from '../../cli/report';
import { recordHtml } from '../../cli/report-html';
import { validatePlan } from '../../lib/plan';
import { newMigrationStatus, type MigrationStatus, type VerificationSummary } from '../../lib/status';
import { uncleanReason, type VerificationRun } from '../../lib/verification-runs';

const summary = (overrides: Partial<VerificationSummary> = {}): VerificationSummary => ({
  clean: false,
  passes: 1,
  rowsChecked: 2_000,
  missing: 0,
  extra: 0,
  value: 0,
  repaired: 0,
  inFlight: 0,
  forcedBy: null,
  ...overrides,
});

const run = (overrides: Partial<VerificationRun> = {}): VerificationRun => ({
  migrationId: 'ferry/m/1',
  run: 2,
  kind: 'after-finish',
  by: 'dana',
  startedAt: '2025-03-01T10:00:00.000Z',
  finishedAt: '2025-03-01T10:00:05.000Z',
  samplePercent: null,
  repair: false,
  passes: 1,
  firstPass: 3,
  rowsChecked: 3_000,
  missing: 1,
  extra: 1,
  value: 1,
  carried: 0,
  repaired: 0,
  inFlight: 0,
  clean: false,
  problem: null,
  ...overrides,
});

function status(overrides: Partial<MigrationStatus> = {}): MigrationStatus {
  return {
    ...newMigrationStatus({ migrationId: 'ferry/m/1', planName: 'm', execute: true, startedAt: '2025-03-01T09:00:00.000Z', throttle: { rowsPerSecond: null, batchSize: 1000, concurrency: 2 } }),
    phase: 'completed',
    finishedAt: '2025-03-01T09:10:00.000Z',
    shards: [{ index: 0, range: { after: null, upTo: null }, partitionValue: null, state: 'done', cursor: null, rowsRead: 10, rowsWritten: 10, rowsFailed: 0, batchSize: 1000, throttleReason: null, error: null }],
    ...overrides,
  };
}

const plan = validatePlan({ name: 'm', source: { connection: 'SRC', table: 'a', key: 'id' }, target: { connection: 'TGT', table: 'b' }, transform: { sql: { id: 'id' } } });
const ended = (overrides: Partial<MigrationStatus> = {}): EndedMigration => ({ migrationId: 'ferry/m/1', taskQueue: 'ferry', plan, status: status(overrides) });

describe('verification records', () => {
  it('says the counts that make a verification unclean, and what a sample cannot clear', () => {
    expect(uncleanReason(summary({ extra: 3 }))).toBe('0 missing, 3 extra, 0 differing');
    expect(uncleanReason(summary({ extra: 3, samplePercent: 50 }))).toBe('0 missing, 3 extra, 0 differing in a sample of 50% of keys');
    expect(uncleanReason(summary({ samplePercent: 5 }))).toMatch(/compared a sample of 5% of keys and found no difference, but a sample cannot make a migration clean/);
  });

  it('shows a sample and a later run as such, and the first full run as before', () => {
    expect(formatVerification(summary({ extra: 3 }))).toBe('verification NOT clean after 1 pass: 2,000 rows checked, 0 missing, 3 extra, 0 differing, 0 repaired, 0 in flight');
    expect(formatVerification(summary({ run: 3, samplePercent: 10 }))).toMatch(
      /^verification NOT clean after 1 pass \(run 3, a sample of 10% of keys\): 2,000 rows checked, 0 missing, 0 extra, 0 differing, .*; the last check compared a sample/,
    );
  });

  it('says what a later check found and what it left alone', () => {
    const text = formatVerificationRun(run());
    expect(text).toContain('check 2 of ferry/m/1 by dana (every row, report only): NOT clean after 1 pass: 3,000 rows checked, 1 missing, 1 extra, 1 differing, 0 repaired');
    expect(text).toContain('nothing was repaired; `ferry verify ferry/m/1 --repair` repairs them from the source');
    const sampled = formatVerificationRun(run({ samplePercent: 20, missing: 0, extra: 0, value: 0, clean: true }));
    expect(sampled).toContain('(a sample of 20% of keys, report only): clean');
    expect(sampled).toContain('rows outside it were not compared');
    // After an unclean run, a sample that finds nothing cannot make it clean, and says why.
    const kept = formatVerificationRun(run({ samplePercent: 20, missing: 0, extra: 0, value: 0, clean: false }));
    expect(kept).toContain('(a sample of 20% of keys, report only): NOT clean after 1 pass');
    expect(kept).toContain('found no difference, but a sample cannot make a migration clean; verify every row');
    expect(kept).not.toContain('rows outside it were not compared');
    expect(formatVerificationRun(run({ problem: 'no such table', clean: false }))).toContain('could not finish after 1 pass');
  });

  it('lists later checks in the Markdown and HTML records', () => {
    const record = migrationRecord(status({ verification: summary({ clean: true, run: 1, samplePercent: null }) }), [
      { checkId: 'ferry/m/1/check-1', state: 'completed', run: run(), failure: null },
      { checkId: 'ferry/m/1/check-2', state: 'completed', run: run({ run: 3, repair: true, passes: 2, missing: 0, extra: 0, value: 0, repaired: 3, clean: true, by: 'erin' }), failure: null },
      { checkId: 'ferry/m/1/check-3', state: 'running', run: null, failure: null },
    ]);
    const markdown = recordMarkdown(record);
    expect(markdown).toContain('Run 1, over every row: clean after 1 pass(es)');
    expect(markdown).toContain('## Later checks');
    expect(markdown).toContain('| run 2 (ferry/m/1/check-1) | 2025-03-01T10:00:00.000Z | 2025-03-01T10:00:05.000Z | dana | every row | no | 1 | NOT clean: 3,000 rows checked, 1 missing, 1 extra, 1 differing |');
    expect(markdown).toContain('| erin | every row | yes | 2 | clean: 3,000 rows checked, 0 missing, 0 extra, 0 differing, 3 repaired |');
    expect(markdown).toContain('| ferry/m/1/check-3 |  |  |  |  |  |  | running |');
    const html = recordHtml(record);
    expect(html).toContain('<h2>Later checks</h2>');
    expect(html).toContain('<td>run 2 (ferry/m/1/check-1)</td>');
    expect(recordMarkdown(migrationRecord(status()))).not.toContain('Later checks');
  });
});

describe('checks after a migration ended', () => {
  it('refuses what has nothing to check, and repairs from a source that stopped receiving writes unless forced', () => {
    expect(checkProblems(ended(), { repair: true, force: false })).toEqual([]);
    expect(checkProblems(ended({ execute: false, phase: 'dry-run', shards: [] }), { repair: false, force: false })).toEqual(['it was a dry run and copied nothing to verify']);
    expect(checkProblems(ended({ phase: 'aborted', shards: [] }), { repair: false, force: false })).toEqual(['it was aborted before its backfill began; nothing was copied to verify']);
    const cutOver = { flags: { writeOld: false, writeNew: true, readFrom: 'new' as const, comparePercent: 0, version: 4 } };
    expect(checkProblems(ended(cutOver), { repair: false, force: false })).toEqual([]);
    expect(checkProblems(ended(cutOver), { repair: true, force: false })[0]).toMatch(/writes to the old table were turned off.*add --force/);
    expect(checkProblems(ended(cutOver), { repair: true, force: true })).toEqual([]);
    expect(staleSourceNote(status(cutOver))).toMatch(/differences may be writes the application made since/);
    expect(staleSourceNote(status())).toBeNull();
  });
});

describe('what is left to do after a cutover', () => {
  it('keeps the flags row until no process runs the client, and says how to tell', () => {
    const cutOver = status({ flags: { writeOld: false, writeNew: true, readFrom: 'new', comparePercent: 0, version: 4 } });
    const todo = migrationRecord(cutOver).leftToDo;
    expect(todo.some((line) => line.startsWith('delete the flags row'))).toBe(false);
    expect(todo.at(-1)).toBe(
      "keep the flags row while any process runs Ferry's client for this migration: without it a process that starts (a rolled-back deploy, a new replica) " +
        "cannot know where to write (Ferry's client refuses to). None runs once SELECT client_id FROM ferry.flag_acks WHERE migration = 'm' AND seen_at > now() - interval '2 minutes' " +
        "returns no row (each process renews its row every 30 s); then DELETE FROM ferry.flags WHERE migration = 'm'; DELETE FROM ferry.flag_acks WHERE migration = 'm'",
    );
  });
});
