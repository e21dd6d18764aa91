/**
 * Every message a Ferry workflow accepts, in one place: names are the ones operators see in
 * Temporal's CLI and UI, payloads are plain JSON.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { MigrationStatus } from '../lib/status';

export const statusQuery = defineQuery<MigrationStatus>('status');

export interface ShardProgress {
  index: number;
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
  done: boolean;
}

/** A shard reports to its migration after every copy call. */
export const shardProgressSignal = defineSignal<[ShardProgress]>('shardProgress');
