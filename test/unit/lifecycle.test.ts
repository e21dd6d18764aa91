import { describe, expect, it } from 'vitest';
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
    expect(approvalProblems('yes', 'cutover-reads', clean)).toEqual(['an approval must be an object { gate, by, note?, force? }']);
  });
});
