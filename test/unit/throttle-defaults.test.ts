import { describe, expect, it } from 'vitest';
import { autoShardCount } from '../../activities/inspect/shard-planner';
import { validatePlan } from '../../lib/plan';
import { budgetOf } from '../../lib/throttle';

const plan = (extra: Record<string, unknown> = {}) =>
  validatePlan({ name: 'defaults', source: { connection: 'A', table: 't', key: 'id' }, target: { connection: 'A', table: 'u' }, transform: { sql: { id: 'id' } }, ...extra });

describe('defaults near the limit', () => {
  it('splits a large table into shards by its size, up to the cores of the worker, and copies a small one whole', () => {
    expect(autoShardCount(100_000, 8)).toBe(1);
    expect(autoShardCount(499_999, 8)).toBe(1);
    expect(autoShardCount(600_000, 8)).toBe(2);
    expect(autoShardCount(10_000_000, 8)).toBe(8);
    expect(autoShardCount(10_000_000, 1)).toBe(2);
  });

  it('turns the pacing controller on with its budget unless the plan turns it off', () => {
    expect(budgetOf(plan().throttle)).toMatchObject({ p99Factor: 1.2, maxLockWaits: 0, maxReplicaLagSeconds: 2, intervalSeconds: 1 });
    expect(budgetOf(plan({ throttle: { budget: { p99Factor: 1.5 } } }).throttle)).toMatchObject({ p99Factor: 1.5 });
    expect(budgetOf(plan({ throttle: { budget: false } }).throttle)).toBeNull();
    expect(() => plan({ throttle: { budget: { p99Factor: 0.5 } } })).toThrow(/throttle\.budget/);
  });
});
