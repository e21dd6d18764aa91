/**
 * An approval forced past unclean verification names the verdict it forced past, and may name
 * the pass its sender looked at: the approve update's validator (its payload's parse and the
 * lifecycle's rule) refuses it when another pass has reported since.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { forcedPastSentence, forcedPastText, gateStory } from '../../cli/phase-story';
import { approvalProblems } from '../../lib/lifecycle';
import { parseApproval } from '../../lib/messages-input';
import { newMigrationStatus, type VerificationSummary } from '../../lib/status';
import { describeVerdict, verdictOf, verdictPassId } from '../../lib/verification-runs';

const unclean = (pass: number) => ({ clean: false, summary: '5000 missing, 0 extra, 3 differing', pass });

describe('the approve payload', () => {
  it('reads payloads without verdictPass exactly as before', () => {
    fc.assert(
      fc.property(
        fc.record({ gate: fc.constantFrom('cutover-reads', 'swap', 'cleanup'), by: fc.constantFrom('bob', 'alice@ops') }, { requiredKeys: ['gate', 'by'] }),
        fc.option(fc.boolean(), { nil: undefined }),
        fc.option(fc.string({ maxLength: 50 }), { nil: undefined }),
        (base, force, note) => {
          const payload = { ...base, ...(force === undefined ? {} : { force }), ...(note === undefined ? {} : { note }) };
          expect(parseApproval(payload)).toEqual({ ok: true, value: payload });
        },
      ),
    );
  });

  it('takes a pass number, and refuses anything else with what is wrong', () => {
    expect(parseApproval({ gate: 'cutover-reads', by: 'bob', force: true, verdictPass: 4 })).toEqual({
      ok: true,
      value: { gate: 'cutover-reads', by: 'bob', force: true, verdictPass: 4 },
    });
    expect(parseApproval({ gate: 'cutover-reads', by: 'bob', verdictPass: 0 })).toEqual({ ok: false, problems: ['verdictPass must be 1 or more: a pass number as `ferry status` shows it'] });
    expect(parseApproval({ gate: 'cutover-reads', by: 'bob', verdictPass: 2.5 })).toEqual({ ok: false, problems: ['verdictPass must be a whole number'] });
    expect(parseApproval({ gate: 'cutover-reads', by: 'bob', verdictPass: '2' })).toEqual({ ok: false, problems: ['verdictPass must be a number, not a string'] });
    expect(parseApproval({ gate: 'cutover-reads', by: 'bob', verdictPass: null })).toEqual({ ok: false, problems: ['verdictPass must be a number, not null'] });
  });
});

describe('an approval judged against the verdict its sender looked at', () => {
  it('is refused whenever the pass it names is not the one whose verdict stands now', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 10_000 }), fc.boolean(), fc.boolean(), (current, named, clean, force) => {
        const verification = { clean, summary: '5000 missing, 0 extra, 3 differing', pass: current };
        const problems = approvalProblems({ gate: 'cutover-reads', by: 'bob', force, verdictPass: named }, 'cutover-reads', verification);
        const without = approvalProblems({ gate: 'cutover-reads', by: 'bob', force }, 'cutover-reads', verification);
        if (named === current) expect(problems).toEqual(without);
        else {
          expect(problems.length).toBeGreaterThan(0);
          expect(problems[0]).toContain(`pass ${current}`);
          expect(problems[0]).toContain(clean ? 'says clean' : 'says NOT clean: 5000 missing, 0 extra, 3 differing');
          expect(problems[0]).toContain('look again (ferry status)');
        }
      }),
    );
  });

  it('says the verification changed since the sender looked, and what it says now', () => {
    expect(approvalProblems({ gate: 'cutover-reads', by: 'bob', force: true, verdictPass: 1 }, 'cutover-reads', unclean(2))).toEqual([
      'the verification changed since you looked: pass 2 now says NOT clean: 5000 missing, 0 extra, 3 differing; look again (ferry status)',
    ]);
    expect(approvalProblems({ gate: 'cutover-reads', by: 'bob', force: true, verdictPass: 3 }, 'cutover-reads', unclean(2))).toEqual([
      'no pass 3 has reported: the last one is pass 2, which says NOT clean: 5000 missing, 0 extra, 3 differing; look again (ferry status)',
    ]);
    expect(approvalProblems({ gate: 'cutover-reads', by: 'bob', force: true, verdictPass: 1 }, 'cutover-reads', null)).toEqual([
      'no verification has reported yet, so there is no pass 1 to approve past; look again (ferry status)',
    ]);
    expect(approvalProblems({ gate: 'cutover-reads', by: 'bob', force: true, verdictPass: 2 }, 'cutover-reads', unclean(2))).toEqual([]);
    // Without force, the unclean verdict itself still refuses it.
    expect(approvalProblems({ gate: 'cutover-reads', by: 'bob', verdictPass: 2 }, 'cutover-reads', unclean(2))).toEqual([
      'verification is not clean (5000 missing, 0 extra, 3 differing); repair it, or approve with --force (recorded)',
    ]);
  });
});

describe('the verdict forced past', () => {
  const summary: VerificationSummary = {
    clean: false, passes: 1, rowsChecked: 4000, missing: 500, extra: 0, value: 3, repaired: 0, inFlight: 0, forcedBy: null, run: 2, samplePercent: null, lastPassId: 2,
  };

  it('names the pass among all the migration’s passes, its run, its counts and the rows left out', () => {
    expect(verdictPassId(summary)).toBe(2);
    // Older records number passes only by `passes`, counted over every run.
    expect(verdictPassId({ passes: 3 })).toBe(3);
    const verdict = verdictOf(summary, 7);
    expect(verdict).toEqual({ pass: 2, run: 2, passInRun: 1, clean: false, rowsChecked: 4000, missing: 500, extra: 0, value: 3, samplePercent: null, rowsLeftOut: 7 });
    expect(describeVerdict(verdict)).toBe('pass 2 (run 2, pass 1 of it): NOT clean, 500 missing, 0 extra, 3 differing in 4000 rows checked, 7 rows with unresolved failed records left out');
    expect(describeVerdict(verdictOf({ ...summary, run: undefined, samplePercent: undefined, lastPassId: undefined }, 1))).toBe(
      'pass 1: NOT clean, 500 missing, 0 extra, 3 differing in 4000 rows checked, 1 row with unresolved failed records left out',
    );
    expect(describeVerdict(verdictOf({ ...summary, run: 1, lastPassId: 1 }, 0))).toMatch(/^pass 1: NOT clean/);
    expect(describeVerdict(verdictOf({ ...summary, samplePercent: 10 }, 0))).toMatch(/^pass 2 \(run 2, pass 1 of it, a sample of 10% of keys\): NOT clean/);
  });

  it('says in the status and the report whether the verdict shown is the one forced past', () => {
    const forced = { ...summary, forcedBy: 'bob', forcedPast: verdictOf(summary, 0) };
    expect(forcedPastText(forced, 'bob')).toBe(
      'a gate was approved past it with --force by bob, at pass 2 (run 2, pass 1 of it): NOT clean, 500 missing, 0 extra, 3 differing in 4000 rows checked, 0 rows with unresolved failed records left out',
    );
    const later = { ...forced, lastPassId: 3, run: 3 };
    expect(forcedPastSentence(later, 'bob')).toBe(
      'A gate was approved with --force by bob past an earlier verdict, pass 2 (run 2, pass 1 of it): NOT clean, 500 missing, 0 extra, 3 differing in 4000 rows checked, 0 rows with unresolved failed records left out.',
    );
    // Older records carry who forced, not what: the sentence is what it was.
    expect(forcedPastSentence(summary, 'bob')).toBe('A gate was approved past it with --force by bob.');
  });

  it('shows at an unclean gate the command that forces past the verdict shown, naming its pass', () => {
    const status = {
      ...newMigrationStatus({ migrationId: 'm/1', planName: 'p', execute: true, startedAt: '2025-01-01T00:00:00.000Z', throttle: { rowsPerSecond: null, batchSize: 1000, concurrency: 1 } }),
      gate: { name: 'cutover-reads', description: 'move reads', waitingSince: '2025-01-01T00:10:00.000Z', expiresAt: null, reminders: 0, approveCommand: 'ferry approve m/1 --gate cutover-reads', figures: null },
      verification: summary,
    };
    expect(gateStory(status)).toContain('or force past this verdict (pass 2), if the plan lets you: ferry approve m/1 --gate cutover-reads --force --verdict 2 --note "<why it may pass>"');
    expect(gateStory({ ...status, verification: { ...summary, clean: true, missing: 0, value: 0 } }).join('\n')).not.toContain('--verdict');
  });
});
