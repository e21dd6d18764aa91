/** The plan's table swap (capture.swap): where it sits in the lifecycle, the plans it refuses, and the abort it refuses once begun. */
import { describe, expect, it } from 'vitest';
import { oldTableAsideName } from '../../activities/capture/swap';
import { newCaptureStatus, refusalAfterSwap } from '../../lib/capture';
import { approvalProblems, lifecycleSteps } from '../../lib/lifecycle';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { planProblems } from '../support/plan-problems';

const base: PlanInput = {
  name: 'swap-plan',
  source: { connection: 'DB', table: 'accounts', key: 'id' },
  target: { connection: 'DB', table: 'accounts_v2' },
  transform: { sql: { id: 'id', cents: 'balance * 100' } },
};

const problems = planProblems;

describe('capture.swap in the plan', () => {
  it('puts the swap behind its gate, after the verification and before the cleanup gate', () => {
    expect(lifecycleSteps(validatePlan({ ...base, capture: { mode: 'trigger', swap: true } }))).toEqual([
      'capture-on', 'backfill', 'catch-up', 'verify', 'gate:swap', 'swap', 'gate:cleanup', 'capture-off',
    ]);
  });

  it('refuses a swap across databases, without trigger capture, with a module transform, or beside the flags cutover', () => {
    expect(problems({ ...base, target: { connection: 'OTHER_DB', table: 'accounts_v2' }, capture: { mode: 'trigger', swap: true } })).toEqual([
      'capture.swap: needs the source and the target in the same database (one connection): a table cannot be renamed into another database',
    ]);
    expect(problems({ ...base, capture: { swap: true } })).toEqual(['capture.swap: needs capture mode trigger: the swap drains the change log the trigger writes']);
    expect(problems({ ...base, transform: { module: './t.js' }, capture: { mode: 'trigger', swap: true } })).toContain(
      'capture.swap: needs a SQL transform: the swap applies the last changes inside its own transaction',
    );
    expect(problems({ ...base, capture: { mode: 'trigger', dropOldTable: true } })).toEqual(['capture.dropOldTable: needs capture.swap: only a swap leaves an old table aside']);
  });

  it('takes a view of the old shape only with the swap, under a name of its own, of safe expressions', () => {
    const view = { name: 'accounts_v1', columns: { id: 'id', balance: 'cents / 100.0' } };
    expect(validatePlan({ ...base, capture: { mode: 'trigger', swap: true, oldShapeView: view } }).capture.oldShapeView).toEqual(view);
    expect(problems({ ...base, capture: { mode: 'trigger', oldShapeView: view } })).toEqual([
      'capture.oldShapeView: needs capture.swap: the view reads the new table under the old name',
    ]);
    expect(problems({ ...base, capture: { mode: 'trigger', swap: true, oldShapeView: { ...view, name: 'accounts' } } })).toEqual([
      "capture.oldShapeView.name: must differ from the source and target tables' names",
    ]);
    const stacked = problems({ ...base, capture: { mode: 'trigger', swap: true, oldShapeView: { ...view, columns: { id: 'id FROM accounts; DROP TABLE accounts; --' } } } });
    expect(stacked).toHaveLength(1);
    expect(stacked[0]).toMatch(/^capture\.oldShapeView\.columns\.id: /);
    expect(problems({ ...base, capture: { mode: 'trigger', swap: true, oldShapeView: { name: 'v', columns: {} } } })).toEqual([
      'capture.oldShapeView.columns: must name at least one column',
    ]);
  });

  it('asks a clean verification (or --force) at the swap gate, as at the cutover of reads', () => {
    expect(approvalProblems({ gate: 'swap', by: 'ann' }, 'swap', { clean: false, summary: '2 missing' })).toEqual([
      'verification is not clean (2 missing); repair it, or approve with --force (recorded)',
    ]);
    expect(approvalProblems({ gate: 'swap', by: 'ann', force: true }, 'swap', { clean: false, summary: '2 missing' })).toEqual([]);
  });
});

describe('an abort after the swap', () => {
  it('is refused from the moment the swap begins, naming the table kept aside', () => {
    const capture = newCaptureStatus();
    expect(refusalAfterSwap('awaiting-approval', capture)).toBeNull();
    expect(refusalAfterSwap('swapping', capture)).toMatch(/are being swapped/);
    capture.swap = { swappedAt: 'now', oldTableAside: 'public.accounts_ferry_old_1', newName: 'public.accounts', keysDrained: 0, attempts: 1, snapshot: '1000:1000:', oldTableDroppedAt: null };
    expect(refusalAfterSwap('awaiting-approval', capture)).toMatch(/were swapped.*kept as public\.accounts_ferry_old_1.*cannot go back/);
  });

  it('names the old table from the migration id, within Postgres\'s 63 bytes', () => {
    expect(oldTableAsideName('accounts', 'm-1')).toBe(oldTableAsideName('accounts', 'm-1'));
    expect(oldTableAsideName('accounts', 'm-1')).toMatch(/^accounts_ferry_old_[0-9a-f]{8}$/);
    expect(oldTableAsideName('x'.repeat(80), 'm-1').length).toBe(63);
  });
});
