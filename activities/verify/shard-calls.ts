/**
 * What a verifyShard call takes and answers: the contract between the verification shard
 * workflow and the comparison (compare.ts).
 */
import type { ShardSpec } from '../../lib/key-range';
import type { Plan } from '../../lib/plan';
import type { Mismatch } from '../state/ferry-schema';
import type { MismatchCounts } from './both-sides';

export interface VerifyShardInput {
  migrationId: string;
  plan: Plan;
  shard: ShardSpec;
  /** Last key already verified in the shard; null to start at the shard's beginning. */
  cursor: string | null;
  /**
   * Source keys per checksum chunk: the first chunk's and the largest. After a chunk that differs
   * the next ones halve, down to MIN_ADAPTED_CHUNK; after one that does not they grow (chunk-size.ts).
   */
  chunkSize: number;
  /** The verification pass (1, 2, ...): mismatches are recorded under it. */
  pass: number;
  /**
   * Return after about this long so the workflow can checkpoint. Each call costs history events,
   * a look-up of the plan's columns and, under writes, a wait for its last re-reads. (Default: 60)
   */
  maxSeconds?: number;
  /** How long a differing row is given to settle before it is checked again. (Default: 2000) */
  inFlightDelayMs?: number;
  /** Compare only the keys of this deterministic sample (0 to 100), on both sides. (Default: all) */
  samplePercent?: number;
}

/** Counts of one verifyShard call (and of the attempts it resumed from). */
export interface VerifyCounts {
  chunks: number;
  chunksDiffering: number;
  /** Source rows compared. */
  rowsChecked: number;
  mismatches: MismatchCounts;
  /** Rows that differed at first and matched when checked again: writes that were in flight. Not recorded. */
  inFlight: number;
}

export interface VerifyShardResult extends VerifyCounts {
  cursor: string | null;
  /** The shard holds no rows after the cursor. */
  done: boolean;
  /** Mismatches found in this call: keys, categories and column names only. At most MAX_EXAMPLES. */
  examples: Mismatch[];
}
