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

/** One shard's share of the work: a key range, and (for partitioned plans) one partition value. */
export interface ShardSpec {
  range: KeyRange;
  /** The shard copies only rows whose partition column equals this (as text); null: no partition filter. */
  partitionValue: string | null;
}
