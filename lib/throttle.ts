/**
 * The throttle: how fast a migration may copy, checked by one schema wherever it is given (the
 * plan, or an operator's change while the migration runs), and the arithmetic of batches and
 * rates that applies it. Pure: the workflow checks changes here, synchronously, before they can
 * touch its history; the copier's waits (activities/copy/throttle.ts) are built on it.
 */
import { z } from 'zod';

export interface Throttle {
  /** Rows per second across the whole migration; null for no limit. */
  rowsPerSecond: number | null;
  /** The largest batch; the copier adapts below it toward the target batch time. */
  batchSize: number;
  /** Shards copying at once. */
  concurrency: number;
  /** The backoff limits an operator changed while the migration ran; absent, the plan's apply. */
  backoff?: BackoffLimits;
  /** The pacing budget an operator changed while the migration ran (null: the controller off); absent, the plan's applies. */
  budget?: ThrottleBudget | null;
}

/**
 * The plan's backoff limits an operator may change while a migration runs (the probe and how
 * often the limits are checked stay as planned): a report that runs for an hour, or a standby
 * known to lag, need not hold a backfill until it is restarted.
 */
export interface BackoffLimits {
  maxReplicaLagSeconds: number;
  maxQuerySeconds: number;
  /** null: no limit (undefined in plans recorded before the setting: its default). */
  maxUnreadSlotWalMb: number | null;
}

/** backoff.maxUnreadSlotWalMb's default, also for plans recorded before the setting. */
export const DEFAULT_MAX_UNREAD_SLOT_WAL_MB = 10_240;

/** backoff.maxUnreadSlotWalMb, with the default for plans recorded before the setting; null for no limit. */
export function maxUnreadSlotWalMb(backoff: { maxUnreadSlotWalMb?: number | null }): number | null {
  return backoff.maxUnreadSlotWalMb === undefined ? DEFAULT_MAX_UNREAD_SLOT_WAL_MB : backoff.maxUnreadSlotWalMb;
}

const backoffLimitNames = ['maxReplicaLagSeconds', 'maxQuerySeconds', 'maxUnreadSlotWalMb'] as const satisfies readonly (keyof BackoffLimits)[];

/** The only bounds of the throttle's settings, for plans and changes alike. */
export const throttleBounds = {
  rowsPerSecond: { min: 1, max: 10_000_000 },
  batchSize: { min: 10, max: 100_000 },
  concurrency: { min: 1, max: 64 },
} as const;

export type ThrottleSetting = keyof typeof throttleBounds;
const settings = Object.keys(throttleBounds) as ThrottleSetting[];
/** What one change may set: the throttle's settings, the backoff limits and the pacing controller's. */
const changeable: readonly string[] = [...settings, ...backoffLimitNames, 'pacing', 'p99Factor', 'maxLockWaits', 'maxActiveBackends'];
/** The pacing budget's settings an operator may change while it runs: what the application feels. */
const budgetSettingNames = ['p99Factor', 'maxLockWaits', 'maxActiveBackends'] as const;

/** Defaults near the limit: big batches where the copy is fast, and the pacing controller on. */
export const throttleDefaults = {
  /** No fixed limit: the pacing controller finds the rate the application tolerates. */
  rowsPerSecond: null as number | null,
  /** Tens of thousands of rows: about a 0.5 s batch on a same-database or COPY path. */
  batchSize: 50_000,
  /** Shards of one migration copying at once (shards.count decides how many there are). */
  concurrency: 4,
} as const;

/** One setting: a whole number within its bounds, with the same words wherever it is checked. */
function setting(name: ThrottleSetting) {
  const { min, max } = throttleBounds[name];
  const outOfBounds = (issue: { input?: unknown }) => `must be between ${min} and ${max}, not ${String(issue.input)}`;
  return z
    .number({ error: (issue) => `must be a number, not ${JSON.stringify(issue.input)}` })
    .int({ error: (issue) => `must be a whole number, not ${String(issue.input)}` })
    .min(min, { error: outOfBounds })
    .max(max, { error: outOfBounds });
}

/** A backoff limit: a number above 0 (seconds or MB), with the same words wherever it is checked. */
function backoffLimit() {
  return z
    .number({ error: (issue) => `must be a number, not ${JSON.stringify(issue.input)}` })
    .positive({ error: (issue) => `must be above 0, not ${String(issue.input)}` });
}

/** The pacing budget's p99 factor, for plans and changes alike. */
function p99Factor() {
  return z
    .number({ error: (issue) => `must be a number, not ${JSON.stringify(issue.input)}` })
    .min(1, { error: (issue) => `must be between 1 and 100, not ${String(issue.input)}` })
    .max(100, { error: (issue) => `must be between 1 and 100, not ${String(issue.input)}` });
}

/** A whole number of sessions, at least `min`. */
function wholeAtLeast(min: number) {
  return z
    .number({ error: (issue) => `must be a number, not ${JSON.stringify(issue.input)}` })
    .int({ error: (issue) => `must be a whole number, not ${String(issue.input)}` })
    .min(min, { error: (issue) => `must be at least ${min}, not ${String(issue.input)}` });
}

/** The plan's budget for the pacing controller: what the copy may cost the application. */
export const pacingBudgetSchema = z.strictObject({
  /**
   * Keep the p99 latency of the database's own statements (or of a canary transaction, without
   * pg_stat_statements) within this multiple of what it was before the copy. (Default: 1.2)
   */
  p99Factor: p99Factor().default(1.2),
  /** Sessions that may wait on a lock on the source or target, or on a copy batch. (Default: 0) */
  maxLockWaits: wholeAtLeast(0).default(0),
  /** Active sessions other than Ferry's; omit for 1.5x the most seen before the copy, plus 2. */
  maxActiveBackends: wholeAtLeast(1).optional(),
  /** WAL written per second, bytes; omit for none (checkpoints forced by WAL always count). */
  maxWalBytesPerSecond: z.number().positive().optional(),
  /** Replay lag of any replica of the source, seconds. (Default: 2) */
  maxReplicaLagSeconds: z.number().positive().default(2),
  /** How often the controller samples the database and sets the rate. (Default: 1) */
  intervalSeconds: z.number().min(0.2).max(60).default(1),
});

export type ThrottleBudget = z.output<typeof pacingBudgetSchema>;

/** The plan's `throttle` section. */
export const planThrottleSchema = z.strictObject({
  /**
   * Rows per second across the migration, a ceiling over the pacing controller; null for no
   * ceiling. Changed while running with `ferry throttle`. (Default: null)
   */
  rowsPerSecond: setting('rowsPerSecond').nullable().default(throttleDefaults.rowsPerSecond),
  /** The largest batch, and the first; batches adapt below it toward targetBatchSeconds. (Default: 50000) */
  batchSize: setting('batchSize').default(throttleDefaults.batchSize),
  /** Shards copying at once. (Default: 4) */
  concurrency: setting('concurrency').default(throttleDefaults.concurrency),
  /** Batch size adapts so a batch takes about this long; 0 keeps it fixed. (Default: 0.5) */
  targetBatchSeconds: z.number().min(0).max(60).default(0.5),
  /**
   * How often a shard records its cursor in the workflow: each copy call runs this long, and
   * each writes about a dozen history events. A throttle change or a pause still reaches a
   * running call within about a second (it asks its shard). (Default: 60)
   */
  checkpointSeconds: z.number().min(0.1).max(300).default(60),
  /**
   * The pacing controller's budget; `false` turns the controller off, leaving only the rows/s
   * limit and the backoff holds. (Default: on, with the budget's defaults)
   */
  budget: z.union([pacingBudgetSchema, z.literal(false)]).optional(),
});

/** The budget a plan's throttle gives the controller; null when the plan turned it off. */
export function budgetOf(throttle: { budget?: ThrottleBudget | false }): ThrottleBudget | null {
  if (throttle.budget === false) return null;
  return throttle.budget ?? pacingBudgetSchema.parse({});
}

export interface ThrottleChange {
  /** A number, or null to lift the limit. Absent: unchanged. */
  rowsPerSecond?: number | null;
  batchSize?: number;
  concurrency?: number;
  maxReplicaLagSeconds?: number;
  maxQuerySeconds?: number;
  /** A number, or null to lift the limit. Absent: unchanged. */
  maxUnreadSlotWalMb?: number | null;
  /** false turns the pacing controller off (the rows/s ceiling and the holds stay); true turns it on, with the plan's budget or the defaults. */
  pacing?: boolean;
  /** The pacing budget's settings; the controller must be on (or turned on by the same change). */
  p99Factor?: number;
  maxLockWaits?: number;
  /** A number, or null for 1.5x the most seen before the copy, plus 2. */
  maxActiveBackends?: number | null;
  /** Who asked, for the record. */
  by?: string;
  reason?: string;
}

const MAX_NAME = 200;
const MAX_TEXT = 2000;
const nothingToChange = `nothing to change: give at least one of ${changeable.join(', ')}`;

/** An operator's change: absolute values, checked with the plan's words. */
export const throttleChangeSchema = z
  .strictObject({
    rowsPerSecond: setting('rowsPerSecond').nullable().optional(),
    batchSize: setting('batchSize').optional(),
    concurrency: setting('concurrency').optional(),
    maxReplicaLagSeconds: backoffLimit().optional(),
    maxQuerySeconds: backoffLimit().optional(),
    maxUnreadSlotWalMb: backoffLimit().nullable().optional(),
    pacing: z.boolean({ error: (issue) => `must be true or false, not ${JSON.stringify(issue.input)}` }).optional(),
    p99Factor: p99Factor().optional(),
    maxLockWaits: wholeAtLeast(0).optional(),
    maxActiveBackends: wholeAtLeast(1).nullable().optional(),
    by: z
      .string({ error: 'must be text' })
      .refine((by) => by.trim() !== '' && by.length <= MAX_NAME, `must be a name of 1 to ${MAX_NAME} characters`)
      .optional(),
    reason: z.string({ error: 'must be text' }).max(MAX_TEXT, `must be at most ${MAX_TEXT} characters`).optional(),
  })
  .refine((change) => changeable.some((name) => name in change), nothingToChange);

/** Every problem with a requested change; empty when it may be applied. Never throws. */
export function throttleChangeProblems(change: unknown): string[] {
  if (typeof change !== 'object' || change === null || Array.isArray(change)) return ['a throttle change must be an object'];
  const result = throttleChangeSchema.safeParse(change);
  const problems = result.success ? [] : result.error.issues.flatMap(describeChangeIssue);
  // A change of only unknown keys names them and still says what it lacks.
  if (!changeable.some((name) => name in change) && !problems.includes(nothingToChange)) problems.push(nothingToChange);
  return [...new Set(problems)];
}

function describeChangeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${key} is not a throttle setting (known: ${changeable.join(', ')})`);
  const name = issue.path.map(String).join('.');
  return [name ? `${name} ${issue.message}` : issue.message];
}

/** What of the plan an operator may change while it runs, besides the throttle's settings. */
export interface PlanLimits {
  backoff: BackoffLimits;
  /** null: the pacing controller is off. */
  budget: ThrottleBudget | null;
}

/** The plan's own limits (a plan recorded before the unread-slot limit gets its default). */
export function plannedLimits(plan: { backoff: BackoffLimits; throttle: { budget?: ThrottleBudget | false } }): PlanLimits {
  const { backoff } = plan;
  return {
    backoff: {
      maxReplicaLagSeconds: backoff.maxReplicaLagSeconds,
      maxQuerySeconds: backoff.maxQuerySeconds,
      maxUnreadSlotWalMb: maxUnreadSlotWalMb(backoff),
    },
    budget: budgetOf(plan.throttle),
  };
}

/** The limits in force: an operator's changes, else the plan's. */
export function limitsInForce(throttle: Pick<Throttle, 'backoff' | 'budget'>, planned: PlanLimits): PlanLimits {
  return { backoff: throttle.backoff ?? planned.backoff, budget: throttle.budget !== undefined ? throttle.budget : planned.budget };
}

/** `plan` with `limits` in place of its own. */
export function withLimits<P extends { backoff: object; throttle: object }>(plan: P, limits: PlanLimits): P {
  return { ...plan, backoff: { ...plan.backoff, ...limits.backoff }, throttle: { ...plan.throttle, budget: limits.budget ?? false } };
}

function sameBackoff(a: BackoffLimits, b: BackoffLimits): boolean {
  return backoffLimitNames.every((name) => a[name] === b[name]);
}

/** A budget's keys in any order. */
function sameBudget(a: ThrottleBudget | null, b: ThrottleBudget | null): boolean {
  const text = (budget: ThrottleBudget | null) => (budget === null ? 'off' : JSON.stringify(Object.entries(budget).sort(([x], [y]) => x.localeCompare(y))));
  return text(a) === text(b);
}

/** Two sets of limits are the same. */
export function sameLimits(a: PlanLimits, b: PlanLimits): boolean {
  return sameBackoff(a.backoff, b.backoff) && sameBudget(a.budget, b.budget);
}

/** Why a valid change cannot apply to the throttle in force; null when it can. */
export function throttleChangeRefusal(current: Throttle, change: ThrottleChange, planned: PlanLimits): string | null {
  const set = budgetSettingNames.filter((name) => change[name] !== undefined).join(', ');
  if (!set) return null;
  if (change.pacing === false) return `pacing: false turns off the controller that ${set} would set`;
  if (change.pacing !== true && limitsInForce(current, planned).budget === null) {
    return `the pacing controller is off: turn it on in the same change (ferry throttle --pacing on) to set ${set}`;
  }
  return null;
}

/** The throttle after a valid change. `planned` is the plan's limits: the base of the first change of one. */
export function applyThrottleChange(current: Throttle, change: ThrottleChange, planned: PlanLimits): Throttle {
  const throttle: Throttle = {
    rowsPerSecond: change.rowsPerSecond === undefined ? current.rowsPerSecond : change.rowsPerSecond,
    batchSize: change.batchSize ?? current.batchSize,
    concurrency: change.concurrency ?? current.concurrency,
  };
  const was = limitsInForce(current, planned);
  const backoff: BackoffLimits = {
    maxReplicaLagSeconds: change.maxReplicaLagSeconds ?? was.backoff.maxReplicaLagSeconds,
    maxQuerySeconds: change.maxQuerySeconds ?? was.backoff.maxQuerySeconds,
    maxUnreadSlotWalMb: change.maxUnreadSlotWalMb === undefined ? was.backoff.maxUnreadSlotWalMb : change.maxUnreadSlotWalMb,
  };
  let budget = change.pacing === false ? null : change.pacing === true ? (was.budget ?? planned.budget ?? pacingBudgetSchema.parse({})) : was.budget;
  if (budget) budget = withBudgetSettings(budget, change);
  // A limit set to what is in force changes nothing: the throttle keeps following the plan.
  if (!sameBackoff(backoff, was.backoff)) throttle.backoff = backoff;
  else if (current.backoff) throttle.backoff = current.backoff;
  if (!sameBudget(budget, was.budget)) throttle.budget = budget;
  else if (current.budget !== undefined) throttle.budget = current.budget;
  return throttle;
}

/** `budget` with the settings `change` gives; a null maxActiveBackends goes back to the one from before the copy. */
function withBudgetSettings(budget: ThrottleBudget, change: ThrottleChange): ThrottleBudget {
  const next: ThrottleBudget = { ...budget };
  if (change.p99Factor !== undefined) next.p99Factor = change.p99Factor;
  if (change.maxLockWaits !== undefined) next.maxLockWaits = change.maxLockWaits;
  if (change.maxActiveBackends === null) delete next.maxActiveBackends;
  else if (change.maxActiveBackends !== undefined) next.maxActiveBackends = change.maxActiveBackends;
  return next;
}

/** Each setting a change moved, as "name before -> after". */
export function throttleChanges(before: Throttle, after: Throttle, planned: PlanLimits): string[] {
  const shown = (value: number | null) => (value === null ? 'unlimited' : String(value));
  const was = limitsInForce(before, planned);
  const now = limitsInForce(after, planned);
  const changes = [
    ...settings.filter((name) => before[name] !== after[name]).map((name) => `${name} ${shown(before[name])} -> ${shown(after[name])}`),
    ...backoffLimitNames.filter((name) => was.backoff[name] !== now.backoff[name]).map((name) => `backoff.${name} ${shown(was.backoff[name])} -> ${shown(now.backoff[name])}`),
  ];
  if ((was.budget === null) !== (now.budget === null)) changes.push(`pacing ${was.budget ? 'on' : 'off'} -> ${now.budget ? 'on' : 'off'}`);
  if (was.budget && now.budget) {
    const before = was.budget;
    const after = now.budget;
    const auto = (value: number | undefined) => (value === undefined ? 'auto' : String(value));
    changes.push(
      ...budgetSettingNames.filter((name) => before[name] !== after[name]).map((name) => `budget.${name} ${auto(before[name])} -> ${auto(after[name])}`),
    );
  }
  return changes;
}

/** A shard's share of the migration's rows/s limit. */
export function shardRate(throttle: Throttle, runningShards: number): number | null {
  if (throttle.rowsPerSecond === null) return null;
  return Math.max(1, Math.floor(throttle.rowsPerSecond / Math.max(1, runningShards)));
}

/**
 * What a concurrency below the shards already running means: lowering it stops none of them.
 * Each finishes its range (the rows/s limit shared among all of them), and no new shard starts
 * until fewer run than the concurrency. Null when no more run than it allows.
 */
export function concurrencyOverrun(throttle: Pick<Throttle, 'rowsPerSecond' | 'concurrency'>, shardsRunning: number): string | null {
  const { concurrency } = throttle;
  if (shardsRunning <= concurrency) return null;
  const shared = throttle.rowsPerSecond === null ? '' : ', sharing the rows/s limit';
  const until = concurrency === 1 ? 'until they have all finished' : `until fewer than ${concurrency} run`;
  return `the ${shardsRunning} shards already copying finish their ranges${shared}; no new shard starts ${until}`;
}

/** The smallest batch the copier adapts down to. */
export const MIN_BATCH_SIZE = throttleBounds.batchSize.min;

/**
 * The next batch size: toward the size that would take `targetMs`, changing at most 2x per
 * batch so one slow batch (a checkpoint, a lock) does not collapse it. A batch cut short by the
 * end of the range says nothing about speed and keeps the size.
 */
export function nextBatchSize(options: { current: number; rows: number; elapsedMs: number; targetMs: number; max: number }): number {
  const { current, rows, elapsedMs, targetMs, max } = options;
  if (targetMs <= 0) return max;
  if (rows < current) return Math.min(current, max);
  const ideal = (rows * targetMs) / Math.max(elapsedMs, 1);
  const bounded = Math.min(current * 2, Math.max(current / 2, ideal));
  return Math.max(MIN_BATCH_SIZE, Math.min(max, Math.round(bounded)));
}
