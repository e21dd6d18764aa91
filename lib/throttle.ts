/**
 * The throttle: how fast a migration may copy. Operators change it while the migration runs;
 * a change is checked here, synchronously, before it can touch the workflow's history.
 */

export interface Throttle {
  /** Rows per second across the whole migration; null for no limit. */
  rowsPerSecond: number | null;
  /** The largest batch; the copier adapts below it toward the target batch time. */
  batchSize: number;
  /** Shards copying at once. */
  concurrency: number;
}

export const throttleBounds = {
  rowsPerSecond: { min: 1, max: 10_000_000 },
  batchSize: { min: 10, max: 100_000 },
  concurrency: { min: 1, max: 64 },
} as const;

export interface ThrottleChange {
  /** A number, or null to lift the limit. Absent: unchanged. */
  rowsPerSecond?: number | null;
  batchSize?: number;
  concurrency?: number;
  /** Who asked, for the record. */
  by?: string;
  reason?: string;
}

const settings = ['rowsPerSecond', 'batchSize', 'concurrency'] as const;

function checkSetting(name: (typeof settings)[number], value: unknown): string | null {
  const { min, max } = throttleBounds[name];
  if (typeof value !== 'number' || !Number.isFinite(value)) return `${name} must be a number, not ${JSON.stringify(value)}`;
  if (!Number.isInteger(value)) return `${name} must be a whole number, not ${value}`;
  if (value < min || value > max) return `${name} must be between ${min} and ${max}, not ${value}`;
  return null;
}

/** Every problem with a requested change; empty when it may be applied. Never throws. */
export function throttleChangeProblems(change: unknown): string[] {
  if (typeof change !== 'object' || change === null || Array.isArray(change)) return ['a throttle change must be an object'];
  const record = change as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(record)) {
    if (![...settings, 'by', 'reason'].includes(key)) problems.push(`${key} is not a throttle setting (known: ${settings.join(', ')})`);
  }
  if (!settings.some((name) => name in record)) problems.push(`nothing to change: give at least one of ${settings.join(', ')}`);
  for (const name of settings) {
    if (!(name in record)) continue;
    if (name === 'rowsPerSecond' && record[name] === null) continue;
    const problem = checkSetting(name, record[name]);
    if (problem) problems.push(problem);
  }
  for (const key of ['by', 'reason'] as const) {
    if (key in record && record[key] !== undefined && typeof record[key] !== 'string') problems.push(`${key} must be text`);
  }
  return problems;
}

/** The throttle after a valid change. */
export function applyThrottleChange(current: Throttle, change: ThrottleChange): Throttle {
  return {
    rowsPerSecond: change.rowsPerSecond === undefined ? current.rowsPerSecond : change.rowsPerSecond,
    batchSize: change.batchSize ?? current.batchSize,
    concurrency: change.concurrency ?? current.concurrency,
  };
}

/** A shard's share of the migration's rows/s limit. */
export function shardRate(throttle: Throttle, runningShards: number): number | null {
  if (throttle.rowsPerSecond === null) return null;
  return Math.max(1, Math.floor(throttle.rowsPerSecond / Math.max(1, runningShards)));
}
