/** When `ferry start --execute` may say "started": what one report of the run says of its inspection and claim. */
import { describe, expect, it } from 'vitest';
import { inspectionOutcome } from '../../operator/start';
import type { MigrationReport } from '../../operator/status';
import { newMigrationStatus, type Phase } from '../../lib/status';

const ID = 'ferry/items/20261202-000000.000Z';
const status = (phase: Phase) => ({
  ...newMigrationStatus({ migrationId: ID, planName: 'items', execute: true, startedAt: '2026-12-02T00:00:00.000Z', throttle: { rowsPerSecond: null, batchSize: 50_000, concurrency: 4 } }),
  phase,
});
const report = (fields: Partial<MigrationReport>): MigrationReport => ({ migrationId: ID, runState: 'running', status: null, failure: null, ...fields });

describe('the inspection outcome', () => {
  it('waits while the run inspects or has not reported yet', () => {
    expect(inspectionOutcome(report({ status: status('inspecting') }))).toBe('waiting');
    expect(inspectionOutcome(report({}))).toBe('waiting');
  });

  it('passes once the run moved on from its inspection, or ended well', () => {
    expect(inspectionOutcome(report({ status: status('backfilling') }))).toBe('passed');
    expect(inspectionOutcome(report({ status: status('dual-write') }))).toBe('passed');
    expect(inspectionOutcome(report({ runState: 'completed', status: status('completed') }))).toBe('passed');
  });

  it('does not take a run that says "failed" a moment before Temporal closes it for a start', () => {
    // The claim was refused: the status says so while the execution still runs.
    expect(inspectionOutcome(report({ status: status('failed') }))).toBe('waiting');
    const refused = 'target public.items_v2 already holds a finished migration (ferry/items/1); start with --rerun to migrate into it again';
    expect(inspectionOutcome(report({ runState: 'failed', status: null, failure: refused }))).toEqual({ reason: `migration ${ID} failed before it started copying: ${refused}` });
  });

  it('does not take a run aborted while it was waited for as a start, nor one aborting', () => {
    expect(inspectionOutcome(report({ status: status('aborting') }))).toBe('waiting');
    expect(inspectionOutcome(report({ status: status('aborted') }))).toBe('waiting');
    const aborted = { ...status('aborted'), abort: { at: '2026-12-02T00:00:01.000Z', by: 'ana@host', reason: 'wrong plan', phaseReached: 'inspecting' as Phase, flagsNote: 'flags unchanged' } };
    expect(inspectionOutcome(report({ runState: 'completed', status: aborted }))).toEqual({
      reason: `migration ${ID} was aborted in phase inspecting by ana@host: wrong plan`,
      aborted: true,
    });
  });
});
