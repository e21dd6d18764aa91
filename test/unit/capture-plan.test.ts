/** The plan's capture setting: its short form, its default, and the plans it refuses. */
import { describe, expect, it } from 'vitest';
import { captureOf } from '../../lib/capture';
import { lifecycleSteps } from '../../lib/lifecycle';
import { validatePlan, type PlanInput } from '../../lib/plan';
import { planProblems } from '../support/plan-problems';

const base: PlanInput = {
  name: 'capture-plan',
  source: { connection: 'SOURCE_URL', table: 'accounts', key: 'id' },
  target: { connection: 'SOURCE_URL', table: 'accounts_v2' },
  transform: { sql: { id: 'id', cents: 'balance * 100' } },
};

const problems = planProblems;

describe('capture in the plan', () => {
  it('defaults to the application, and reads plans recorded before the setting existed', () => {
    expect(validatePlan(base).capture).toEqual({ mode: 'application', applyBatchSize: 500, swap: false, dropOldTable: false });
    const { capture: _omitted, ...recorded } = validatePlan(base);
    expect(captureOf(recorded as { capture?: never })).toEqual({ mode: 'application', applyBatchSize: 500, swap: false, dropOldTable: false });
  });

  it('takes `capture: trigger` as short for the mapping', () => {
    expect(validatePlan({ ...base, capture: 'trigger' }).capture).toEqual({ mode: 'trigger', applyBatchSize: 500, swap: false, dropOldTable: false });
    expect(validatePlan({ ...base, capture: { mode: 'trigger', applyBatchSize: 50 } }).capture).toEqual({ mode: 'trigger', applyBatchSize: 50, swap: false, dropOldTable: false });
  });

  it('takes `capture: logical`, and refuses a swap with it', () => {
    expect(validatePlan({ ...base, capture: 'logical' }).capture).toEqual({ mode: 'logical', applyBatchSize: 500, swap: false, dropOldTable: false });
    expect(problems({ ...base, capture: { mode: 'logical', swap: true } })).toEqual([expect.stringMatching(/^capture\.swap: needs capture mode trigger/)]);
    expect(problems({ ...base, capture: 'logical', lifecycle: { dualWrites: true } })).toEqual([expect.stringMatching(/^lifecycle\.dualWrites: goes with capture: application only/)]);
  });

  it('waits 30 s for the change apply at a re-read by default, and refuses a wait below 0 or above an hour', () => {
    expect(validatePlan(base).verify.captureWaitSeconds).toBe(30);
    expect(validatePlan({ ...base, verify: { captureWaitSeconds: 0 } }).verify.captureWaitSeconds).toBe(0);
    expect(problems({ ...base, verify: { captureWaitSeconds: -1 } })).toEqual([expect.stringMatching(/^verify\.captureWaitSeconds: /)]);
    expect(problems({ ...base, verify: { captureWaitSeconds: 3601 } })).toEqual([expect.stringMatching(/^verify\.captureWaitSeconds: /)]);
  });

  it('names the problem of the form that was written', () => {
    expect(problems({ ...base, capture: 'wal' })).toEqual(['capture: must be one of application, trigger, logical']);
    expect(problems({ ...base, capture: { mode: 'wal' } })).toEqual(['capture.mode: must be one of application, trigger, logical']);
    expect(problems({ ...base, capture: { mode: 'trigger', slot: 'x' } })).toEqual(['capture.slot: is not a known setting']);
    expect(problems({ ...base, capture: { mode: 'trigger', applyBatchSize: 0 } })).toHaveLength(1);
  });

  it('refuses trigger capture beside dual writes or a lineage column, with every other problem', () => {
    expect(problems({ ...base, capture: 'trigger', lifecycle: { dualWrites: true }, throttle: { batchSize: 1 } })).toEqual([
      expect.stringMatching(/^throttle\.batchSize: /),
      'lifecycle.dualWrites: goes with capture: application only; with capture: trigger Ferry applies the changes itself',
    ]);
    expect(problems({ ...base, capture: 'trigger', target: { ...base.target, sourceKey: 'id' } })).toContain(
      'capture: trigger capture needs one target row per source key; it cannot be combined with target.sourceKey yet',
    );
  });
});

describe('the target key of a plan that captures', () => {
  const keyed: PlanInput = {
    ...base,
    target: { ...base.target, key: 'tid' },
    transform: { sql: { tid: 'id * 10', v: 'v' } },
    verify: { enabled: false },
  };

  it('must be the source key carried unchanged, with verification off too, under trigger and logical capture', () => {
    for (const mode of ['trigger', 'logical'] as const) {
      expect(problems({ ...keyed, capture: mode })).toEqual([
        expect.stringMatching(new RegExp(`^transform\\.sql\\.tid: must be the source key column "id" itself, not \`id \\* 10\`: capture: ${mode} applies a change .* carry the source key "id" unchanged into the target key, or use capture: application$`)),
      ]);
    }
    // The same key expression under the source key's own name.
    expect(problems({ ...base, transform: { sql: { id: 'id + 1' } }, capture: 'trigger' })).toEqual([expect.stringMatching(/^transform\.sql\.id: must be the source key column "id" itself/)]);
    // With verification on, the capture rule speaks instead of the advice to set target.sourceKey, which capture refuses.
    const verified = problems({ ...keyed, verify: {}, capture: 'trigger' });
    expect(verified).toHaveLength(1);
    expect(verified[0]).not.toMatch(/sourceKey/);
  });

  it('may be renamed when it holds the source key as is', () => {
    expect(validatePlan({ ...keyed, transform: { sql: { tid: 'id', v: 'v' } }, capture: 'trigger' }).target.key).toBe('tid');
    expect(validatePlan({ ...keyed, transform: { sql: { tid: 's."id"', v: 'v' } }, capture: 'logical' }).target.key).toBe('tid');
    // Without capture, verification off, nothing finds rows by the key.
    expect(validatePlan(keyed).target.key).toBe('tid');
  });

  it('with a module transform, must be the source key by name', () => {
    const module: PlanInput = { ...keyed, transform: { module: './t.ts', columns: ['tid', 'v'] } };
    expect(problems({ ...module, capture: 'trigger' })).toEqual([
      expect.stringMatching(/^target\.key: is "tid", not the source key "id": capture: trigger applies a change .* with a module transform name the source key as the target key/),
    ]);
    expect(validatePlan({ ...module, target: base.target, transform: { module: './t.ts', columns: ['id', 'v'] }, capture: 'trigger' }).capture.mode).toBe('trigger');
  });
});

describe('the lifecycle of a plan that captures', () => {
  it('puts the trigger on before the backfill, catches up, and takes it off after the cleanup gate', () => {
    expect(lifecycleSteps(validatePlan({ ...base, capture: 'trigger' }))).toEqual(['capture-on', 'backfill', 'catch-up', 'verify', 'gate:cleanup', 'capture-off']);
    expect(lifecycleSteps(validatePlan({ ...base, capture: 'trigger', verify: { enabled: false } }))).toEqual(['capture-on', 'backfill', 'catch-up', 'gate:cleanup', 'capture-off']);
    expect(lifecycleSteps(validatePlan(base))).toEqual(['backfill', 'verify']);
  });
});
