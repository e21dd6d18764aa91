import { describe, expect, it } from 'vitest';
import { earlyEtaOf } from '../../cli/report';
import { approvalProblems, flagsAfterAbort, lifecycleSteps } from '../../lib/lifecycle';

describe('lifecycle rules', () => {
  it('runs only the steps a plan asks for', () => {
    const verify = { enabled: true } as never;
    expect(lifecycleSteps({ lifecycle: { dualWrites: false, cutover: false } as never, verify: { enabled: false } as never })).toEqual(['backfill']);
    expect(lifecycleSteps({ lifecycle: { dualWrites: true, cutover: false } as never, verify })).toEqual(['dual-write', 'backfill', 'verify']);
    expect(lifecycleSteps({ lifecycle: { dualWrites: true, cutover: true } as never, verify })).toEqual([
      'dual-write', 'backfill', 'verify', 'gate:cutover-reads', 'reads-to-new', 'gate:stop-old-writes', 'old-writes-off', 'gate:cleanup',
    ]);
  });

  it('rolls flags back to the old table while it still gets every write', () => {
    for (const readFrom of ['old', 'new'] as const) {
      expect(flagsAfterAbort({ writeOld: true, writeNew: true, readFrom, comparePercent: 10 }).flags).toEqual({
        writeOld: true, writeNew: false, readFrom: 'old', comparePercent: 0,
      });
    }
    // The note speaks of the flags: the applications follow them later, each as it hears of them.
    expect(flagsAfterAbort({ writeOld: true, writeNew: true, readFrom: 'new', comparePercent: 0 }).note).toBe(
      'the old table received every write: the flags send the application back to it alone (each process follows as it hears of them)',
    );
  });

  it('never rolls back past lost writes: old writes come back on first, reads stay on new', () => {
    const { flags, note } = flagsAfterAbort({ writeOld: false, writeNew: true, readFrom: 'new', comparePercent: 0 });
    expect(flags).toEqual({ writeOld: true, writeNew: true, readFrom: 'new', comparePercent: 0 });
    expect(note).toContain('misses writes');
    expect(flagsAfterAbort(null)).toEqual({ flags: null, note: 'flags were never set; nothing to roll back' });
  });

  it('refuses approvals of the wrong gate, without an approver, or past unclean verification', () => {
    const clean = { clean: true, summary: '' };
    const dirty = { clean: false, summary: '3 missing' };
    expect(approvalProblems({ gate: 'cutover-reads', by: 'alice' }, 'cutover-reads', clean)).toEqual([]);
    expect(approvalProblems({ gate: 'cleanup', by: 'alice' }, 'cutover-reads', clean)).toEqual([
      'gate "cleanup" is not the one waiting; the migration waits at "cutover-reads"',
    ]);
    expect(approvalProblems({ gate: 'cleanup', by: 'alice' }, null, clean)).toEqual(['no gate is waiting; "cleanup" cannot be approved now']);
    expect(approvalProblems({ gate: 'cutover-reads', by: '' }, 'cutover-reads', clean)).toEqual([
      'the approver is missing: say who approves (--by NAME)',
    ]);
    expect(approvalProblems({ gate: 'cutover-reads', by: 'alice' }, 'cutover-reads', dirty)).toEqual([
      'verification is not clean (3 missing); repair it, or approve with --force (recorded)',
    ]);
    expect(approvalProblems({ gate: 'cutover-reads', by: 'alice', force: true }, 'cutover-reads', dirty)).toEqual([]);
    expect(approvalProblems('yes', 'cutover-reads', clean)).toEqual(['an approval must be an object { gate, by, note?, force?, verdictPass? }']);
  });
});

describe('the early ETA in the report', () => {
  const phases = [{ name: 'backfill', startedAt: '2025-01-01T00:00:00.000Z', endedAt: '2025-01-01T00:01:50.000Z' }];
  const inspection = { source: { estimatedRows: 1000 } } as never;

  it('compares the ETA at 10% with the real end', () => {
    // 100 rows in 10 s: 900 more at 10 rows/s predicts the end at 100 s; it came at 110 s.
    const samples = [
      { at: '2025-01-01T00:00:05.000Z', rowsRead: 40, batchSize: 10 },
      { at: '2025-01-01T00:00:10.000Z', rowsRead: 100, batchSize: 10 },
    ];
    expect(earlyEtaOf({ samples, phases, inspection })).toEqual({
      at: '2025-01-01T00:00:10.000Z',
      predictedEnd: '2025-01-01T00:01:40.000Z',
      actualEnd: '2025-01-01T00:01:50.000Z',
      errorSeconds: 10,
      errorShare: 10 / 110,
    });
  });

  it('says nothing without a sample at 10%, an estimate, or an ended backfill', () => {
    expect(earlyEtaOf({ samples: [], phases, inspection })).toBeNull();
    expect(earlyEtaOf({ samples: [{ at: '2025-01-01T00:00:10.000Z', rowsRead: 500, batchSize: 1 }], phases: [{ ...phases[0]!, endedAt: null }], inspection })).toBeNull();
  });
});
