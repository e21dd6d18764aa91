/**
 * Key ranges: the unit of work of a shard and of a batch. Keys travel as text so that
 * bigint, uuid and text keys survive JSON (and Temporal payloads) unchanged.
 */

/** Rows whose key is greater than `after` (or any, when null) and at most `upTo` (or any). */
export interface KeyRange {
  after: string | null;
  upTo: string | null;
}

export const wholeKeySpace: KeyRange = { after: null, upTo: null };

export function describeRange(range: KeyRange): string {
  const low = range.after === null ? '(-∞' : `(${range.after}`;
  const high = range.upTo === null ? '+∞)' : `${range.upTo}]`;
  return `${low}, ${high}`;
}

/** A unit of work the copier can run beside the others: a key range, maybe within one partition. */
export interface ShardSpec {
  range: KeyRange;
  /** The shard copies only rows whose partition column, as text, equals this; null for no partition filter. */
  partitionValue: string | null;
}

/**
 * Contiguous ranges that split the whole key space at `upperBounds`, given in key order: each
 * bound ends one range and the next begins after it, so every key falls in exactly one range.
 * A bound equal to the one before it is dropped, as it would only make an empty range.
 */
export function splitAtBounds(upperBounds: readonly string[]): KeyRange[] {
  const ranges: KeyRange[] = [];
  let after: string | null = null;
  for (const bound of upperBounds) {
    if (bound === after) continue;
    ranges.push({ after, upTo: bound });
    after = bound;
  }
  ranges.push({ after, upTo: null });
  return ranges;
}

const INTEGER_TEXT = /^-?[0-9]+$/;

/**
 * Splits the whole key space into `count` ranges of equal width between `min` and `max` (both
 * integers as text, computed with BigInt so bigint keys keep every digit). The first range is
 * open below and the last open above, so keys outside [min, max] still belong to a shard. There
 * are fewer ranges when there are fewer integers than `count` between min and max.
 */
export function splitIntegerRange(min: string, max: string, count: number): KeyRange[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`shard count must be a positive integer, not ${count}`);
  for (const value of [min, max]) {
    if (!INTEGER_TEXT.test(value)) throw new RangeError(`integer key bound must be an integer, not "${value}"`);
  }
  const low = BigInt(min);
  const high = BigInt(max);
  if (low > high) throw new RangeError(`integer key bounds are reversed: min ${min} is above max ${max}`);
  const integers = high - low + 1n;
  const shards = integers < BigInt(count) ? integers : BigInt(count);
  const upperBounds: string[] = [];
  for (let i = 1n; i < shards; i++) upperBounds.push((low + (integers * i) / shards - 1n).toString());
  return splitAtBounds(upperBounds);
}

/**
 * The key ranges a set of shards covers, per partition value (null: no partition filter), with
 * ranges that chain (one's upper bound is the next one's start, as splitAtBounds makes them)
 * joined into one. Planned key-range shards come out as the whole key space.
 */
export function coverageOf(shards: readonly ShardSpec[]): { partitionValue: string | null; ranges: KeyRange[] }[] {
  const byPartition = new Map<string | null, KeyRange[]>();
  for (const shard of shards) {
    const ranges = byPartition.get(shard.partitionValue) ?? [];
    const last = ranges.at(-1);
    if (last && last.upTo !== null && last.upTo === shard.range.after) last.upTo = shard.range.upTo;
    else ranges.push({ ...shard.range });
    byPartition.set(shard.partitionValue, ranges);
  }
  return [...byPartition].map(([partitionValue, ranges]) => ({ partitionValue, ranges }));
}
