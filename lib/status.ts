/** The status of a migration as its workflow reports it: what `ferry status` shows. */
import type { Inspection } from './inspection';
import type { KeyRange } from './key-range';

export type Phase = 'inspecting' | 'dry-run' | 'backfilling' | 'completed' | 'failed';

export interface Throttle {
  /** Rows per batch. */
  batchSize: number;
  /** Rows per second across the migration; 0 for no limit. */
  rowsPerSecond: number;
}

export interface ShardStatus {
  index: number;
  range: KeyRange;
  state: 'pending' | 'running' | 'done';
  /** Last key copied. */
  cursor: string | null;
  rowsRead: number;
  rowsWritten: number;
}

export interface MigrationStatus {
  migrationId: string;
  planName: string;
  phase: Phase;
  execute: boolean;
  /** ISO timestamps (workflow time). */
  startedAt: string;
  finishedAt: string | null;
  inspection: Inspection | null;
  throttle: Throttle;
  shards: ShardStatus[];
  /** Rows read from the source and rows inserted into the target, over all shards. */
  rowsRead: number;
  rowsWritten: number;
}

/** Rows a batch found already present in the target (written by the application, or by an earlier run). */
export function rowsSkipped(status: Pick<MigrationStatus, 'rowsRead' | 'rowsWritten'>): number {
  return Math.max(0, status.rowsRead - status.rowsWritten);
}

/** Sets the migration's totals from its shards. */
export function recountRows(status: MigrationStatus): void {
  status.rowsRead = status.shards.reduce((sum, s) => sum + s.rowsRead, 0);
  status.rowsWritten = status.shards.reduce((sum, s) => sum + s.rowsWritten, 0);
}
