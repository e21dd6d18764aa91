/**
 * ReadComparer runs a sampled share of reads on both stores and compares them, like GitHub's
 * scientist: the caller always gets the store the flags read from, never waits for the other
 * (unless asked) and never sees its errors. A mismatch is read again after a delay, within a
 * budget, so replication lag does not raise false alarms; only one that persists is reported.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Flags } from '../lib/flags';
import { type FlagSource } from './flags';
import { KillSwitch, type KillSwitchOptions, type KillSwitchState } from './kill-switch';
import { consoleLogger, describeError, type ClientLogger } from './logger';
import type { ClientMetrics } from './metrics';
import { RetryAllowance, type RetryAllowanceOptions } from './retry-allowance';

export type Side = 'old' | 'new';
export type MismatchCategory = 'length' | 'order' | 'value';

/** A difference between the stores, described by keys and field names only: no values. */
export interface Mismatch {
  name: string;
  category: MismatchCategory;
  /** Keys in old that new lacks (category length). */
  missing: string[];
  /** Keys in new that old lacks (category length). */
  extra: string[];
  /** Keys whose rows differ (value) or stand elsewhere (order). */
  keys: string[];
  /** Fields that differ in any of those rows (value). */
  fields: string[];
  oldCount: number;
  newCount: number;
}

/** The outcome of one comparison; also the labels of ferry_client_read_comparisons_total. */
export type ComparisonResult =
  | { result: 'match'; reason: 'equal' | 'equal-on-retry' }
  | { result: 'mismatch' | 'unverified'; reason: MismatchCategory; mismatch: Mismatch }
  | { result: 'error'; reason: 'new-error' | 'old-error'; error: unknown };

/** A row's element type: the row itself for a single-row read. */
export type RowOf<R> = R extends readonly (infer U)[] ? U : NonNullable<R>;

export interface CompareOptions {
  /** Wait for the comparison before returning (for tests). (Default: false) */
  await?: boolean;
  /** Throw ReadMismatchError on any mismatch, after retries; implies await. For applications' test suites. (Default: false) */
  throwOnMismatch?: boolean;
  /** Whether the order of rows matters. (Default: true) */
  ordered?: boolean;
}

export interface ReadOperations<R> extends CompareOptions {
  old: () => Promise<R>;
  new: () => Promise<R>;
  /** A row's identity, as text. */
  key: (row: RowOf<R>) => string;
}

export interface ReadComparerOptions extends CompareOptions {
  /** Told of every comparison's outcome (the client's read tally). */
  onCompared?: (outcome: ComparisonResult) => void;
  flags: FlagSource;
  metrics?: ClientMetrics;
  killSwitch?: KillSwitchOptions;
  /** How many mismatches are read again (fixed window). (Default: 10 a minute) */
  retries?: RetryAllowanceOptions;
  /** How long to wait before reading a mismatch again. (Default: 500) */
  retryDelayMs?: number;
  logger?: ClientLogger;
  /** Hears every reported mismatch (already logged and counted). */
  onMismatch?: (mismatch: Mismatch) => void;
  /** Labels the kill switch gauge. (Default: 'default') */
  migration?: string;
  /** For tests: a number in [0, 1) deciding which reads are compared. (Default: Math.random) */
  random?: () => number;
}

export interface ReadComparer {
  /**
   * Returns what the store named by flags.readFrom returns. For flags.comparePercent % of calls
   * it reads the other store too and compares, in the background unless `await` is set.
   */
  compareReads<R>(name: string, operations: ReadOperations<R>): Promise<R>;
  killSwitch(): KillSwitchState;
  resetKillSwitch(): void;
  /** Stops following the flags; resolves once the comparisons in flight have been counted. */
  close(): Promise<void>;
}

export class ReadMismatchError extends Error {
  constructor(readonly mismatch: Mismatch) {
    super(`ferry: reads of ${mismatch.name} differ between the old and new stores (${describeMismatch(mismatch)})`);
    this.name = 'ReadMismatchError';
  }
}

const MAX_LISTED_KEYS = 20;

function describeMismatch(m: Mismatch): string {
  switch (m.category) {
    case 'length':
      return `length: old ${m.oldCount} rows, new ${m.newCount}; missing in new [${m.missing.join(', ')}], extra in new [${m.extra.join(', ')}]`;
    case 'order':
      return `order: keys [${m.keys.join(', ')}] stand elsewhere`;
    case 'value':
      return `value: fields [${m.fields.join(', ')}] differ in keys [${m.keys.join(', ')}]`;
  }
}

function rowsOf<R>(value: R): RowOf<R>[] {
  if (Array.isArray(value)) return value as RowOf<R>[];
  return value === null || value === undefined ? [] : [value as RowOf<R>];
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The fields in which two rows differ ('(row)' for rows that are not plain objects). */
function differingFields(a: unknown, b: unknown): string[] {
  if (!isPlainRecord(a) || !isPlainRecord(b)) return isDeepStrictEqual(a, b) ? [] : ['(row)'];
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...names].filter((field) => !isDeepStrictEqual(a[field], b[field]));
}

/** The rows under each key, in the order they came; a key may stand for several rows. */
function groupByKey<T>(rows: T[], keys: string[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  rows.forEach((row, i) => {
    const group = groups.get(keys[i]!);
    if (group) group.push(row);
    else groups.set(keys[i]!, [row]);
  });
  return groups;
}

/** The fields in which two equally long groups of rows differ, taken as multisets: [] when they agree. */
function differingGroupFields(a: unknown[], b: unknown[]): string[] {
  if (a.length === 1 && b.length === 1) return differingFields(a[0], b[0]);
  const unmatched = [...b];
  const leftover = a.filter((row) => {
    const at = unmatched.findIndex((other) => differingFields(row, other).length === 0);
    if (at < 0) return true;
    unmatched.splice(at, 1);
    return false;
  });
  const fields = new Set(leftover.flatMap((row, i) => differingFields(row, unmatched[i])));
  return leftover.length === 0 ? [] : fields.size > 0 ? [...fields] : ['(row)'];
}

/** Compares two reads; undefined when they agree. Pure. */
export function compareRows<T>(name: string, oldRows: T[], newRows: T[], key: (row: T) => string, ordered = true): Mismatch | undefined {
  const oldKeys = oldRows.map(key);
  const newKeys = newRows.map(key);
  const base = { name, missing: [] as string[], extra: [] as string[], keys: [] as string[], fields: [] as string[], oldCount: oldRows.length, newCount: newRows.length };
  const oldByKey = groupByKey(oldRows, oldKeys);
  const newByKey = groupByKey(newRows, newKeys);
  // A key repeated more often on one side counts as missing (or extra) too.
  const missing = [...oldByKey].filter(([k, rows]) => (newByKey.get(k)?.length ?? 0) < rows.length).map(([k]) => k);
  const extra = [...newByKey].filter(([k, rows]) => (oldByKey.get(k)?.length ?? 0) < rows.length).map(([k]) => k);
  if (missing.length > 0 || extra.length > 0 || oldRows.length !== newRows.length) {
    return { ...base, category: 'length', missing: missing.slice(0, MAX_LISTED_KEYS), extra: extra.slice(0, MAX_LISTED_KEYS) };
  }
  const keys: string[] = [];
  const fields = new Set<string>();
  for (const [k, oldGroup] of oldByKey) {
    const differ = differingGroupFields(oldGroup, newByKey.get(k)!);
    if (differ.length === 0) continue;
    keys.push(k);
    for (const field of differ) fields.add(field);
  }
  if (keys.length > 0) return { ...base, category: 'value', keys: keys.slice(0, MAX_LISTED_KEYS), fields: [...fields].sort() };
  if (ordered) {
    // Rows under a repeated key can swap places with the keys in order.
    const moved = new Set(oldKeys.filter((k, i) => newKeys[i] !== k || differingFields(oldRows[i], newRows[i]).length > 0));
    if (moved.size > 0) return { ...base, category: 'order', keys: [...moved].slice(0, MAX_LISTED_KEYS) };
  }
  return undefined;
}

interface Timed<R> {
  ok: boolean;
  value?: R;
  error?: unknown;
}

export function createReadComparer(options: ReadComparerOptions): ReadComparer {
  const { flags: source, metrics, logger = consoleLogger, onMismatch, migration = 'default', random = Math.random, retryDelayMs = 500 } = options;
  const allowance = new RetryAllowance(options.retries);
  const killSwitch = new KillSwitch(options.killSwitch, (tripped) => {
    // Counted up and down, not set: other clients of the migration in this process share the series.
    if (tripped) metrics?.killSwitchTripped.inc({ migration, path: 'read' });
    else metrics?.killSwitchTripped.dec({ migration, path: 'read' });
    logger.warn(tripped ? 'ferry: kill switch tripped; new-store reads stop in this process' : 'ferry: kill switch reset; new-store reads resume', {
      migration,
      path: 'read',
    });
  });
  metrics?.killSwitchTripped.inc({ migration, path: 'read' }, 0);
  const unsubscribe = source.onChange?.(() => killSwitch.reset());
  /** Comparisons in the background: close() waits for them, so they reach the tally. */
  const running = new Set<Promise<unknown>>();

  async function timed<R>(name: string, side: Side, read: () => Promise<R>): Promise<Timed<R>> {
    const stop = metrics?.readDuration.startTimer({ name, side });
    try {
      const value = await read();
      return { ok: true, value };
    } catch (error) {
      return { ok: false, error };
    } finally {
      stop?.();
    }
  }

  function count(name: string, outcome: ComparisonResult): void {
    metrics?.readComparisons.inc({ name, result: outcome.result, reason: outcome.reason });
    options.onCompared?.(outcome);
  }

  /** Compares the first pair of reads, reads both again on a mismatch, and reports. Never throws. */
  async function compare<R>(name: string, ops: ReadOperations<R>, flags: Flags, first: Promise<[Timed<R>, Timed<R>]>, ordered: boolean): Promise<ComparisonResult> {
    let [oldRead, newRead] = await first;
    if (!oldRead.ok || !newRead.ok) {
      // Only the side the caller does not get lands here; the other one's error is the caller's.
      const side: Side = !newRead.ok ? 'new' : 'old';
      const error = side === 'new' ? newRead.error : oldRead.error;
      const outcome: ComparisonResult = { result: 'error', reason: side === 'new' ? 'new-error' : 'old-error', error };
      count(name, outcome);
      logger.warn(`ferry: the ${side}-store read failed; the caller did not see it`, { name, ...describeError(error) });
      if (side === 'new') killSwitch.recordError(flags.version);
      return outcome;
    }
    let mismatch = compareRows(name, rowsOf(oldRead.value as R), rowsOf(newRead.value as R), ops.key, ordered);
    if (!mismatch) {
      count(name, { result: 'match', reason: 'equal' });
      return { result: 'match', reason: 'equal' };
    }
    if (!allowance.take()) {
      const outcome: ComparisonResult = { result: 'unverified', reason: mismatch.category, mismatch };
      count(name, outcome);
      return outcome;
    }
    await new Promise((resolve) => setTimeout(resolve, retryDelayMs));
    [oldRead, newRead] = await Promise.all([timed(name, 'old', ops.old), timed(name, 'new', ops.new)]);
    if (!oldRead.ok || !newRead.ok) {
      // The retry could not settle it; the first difference stands unconfirmed.
      const outcome: ComparisonResult = { result: 'unverified', reason: mismatch.category, mismatch };
      count(name, outcome);
      if (!newRead.ok) killSwitch.recordError(flags.version);
      return outcome;
    }
    mismatch = compareRows(name, rowsOf(oldRead.value as R), rowsOf(newRead.value as R), ops.key, ordered);
    if (!mismatch) {
      count(name, { result: 'match', reason: 'equal-on-retry' });
      return { result: 'match', reason: 'equal-on-retry' };
    }
    const outcome: ComparisonResult = { result: 'mismatch', reason: mismatch.category, mismatch };
    count(name, outcome);
    const { category, keys, missing, extra, fields, oldCount, newCount } = mismatch;
    logger.warn('ferry: reads differ between the old and new stores', { name, category, keys, missing, extra, fields, oldCount, newCount });
    try {
      onMismatch?.(mismatch);
    } catch (error) {
      logger.warn('ferry: onMismatch threw', { name, ...describeError(error) });
    }
    return outcome;
  }

  return {
    async compareReads<R>(name: string, ops: ReadOperations<R>): Promise<R> {
      const flags = await source.get();
      const primary: Side = flags.readFrom;
      const throwOnMismatch = ops.throwOnMismatch ?? options.throwOnMismatch ?? false;
      const awaitComparison = throwOnMismatch || (ops.await ?? options.await ?? false);
      const ordered = ops.ordered ?? options.ordered ?? true;
      const read = primary === 'old' ? ops.old : ops.new;
      const sampled = flags.comparePercent > 0 && random() * 100 < flags.comparePercent;
      if (!sampled) return timedOrThrow(name, primary, read);
      // The kill switch only takes away new reads the caller does not depend on.
      if (primary === 'old' && !killSwitch.allows(flags.version)) {
        metrics?.readComparisons.inc({ name, result: 'skipped', reason: 'kill-switch' });
        return timedOrThrow(name, primary, read);
      }
      const oldRead = timed(name, 'old', ops.old);
      const newRead = timed(name, 'new', ops.new);
      const primaryRead = await (primary === 'old' ? oldRead : newRead);
      if (!primaryRead.ok) throw primaryRead.error;
      let failure: unknown;
      const comparison = compare(name, ops, flags, Promise.all([oldRead, newRead]), ordered).catch((error: unknown) => {
        failure = error;
        logger.warn('ferry: a read comparison failed', { name, ...describeError(error) });
        return undefined;
      });
      running.add(comparison);
      void comparison.finally(() => running.delete(comparison));
      if (awaitComparison) {
        const outcome = await comparison;
        // A comparison that could not run (the key function threw) proves nothing either way.
        if (throwOnMismatch && !outcome) throw new Error(`ferry: the reads of ${name} could not be compared`, { cause: failure });
        if (throwOnMismatch && outcome && outcome.result !== 'match') {
          if (outcome.result === 'error') {
            throw new Error(`ferry: the ${outcome.reason === 'new-error' ? 'new' : 'old'}-store read of ${name} failed`, { cause: outcome.error });
          }
          throw new ReadMismatchError(outcome.mismatch);
        }
      }
      return primaryRead.value as R;
    },
    killSwitch: () => killSwitch.state(),
    resetKillSwitch: () => killSwitch.reset(),
    async close() {
      unsubscribe?.();
      await Promise.allSettled([...running]);
      if (killSwitch.state().tripped) metrics?.killSwitchTripped.dec({ migration, path: 'read' });
      killSwitch.dispose();
    },
  };

  async function timedOrThrow<R>(name: string, side: Side, read: () => Promise<R>): Promise<R> {
    const outcome = await timed(name, side, read);
    if (!outcome.ok) throw outcome.error;
    return outcome.value as R;
  }
}
