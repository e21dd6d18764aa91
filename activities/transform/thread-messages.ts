/** The messages between the transform thread pool (transform-threads.ts) and a thread (transform-thread.ts). */
import type { ColumnType } from '../verify/verify-statements';
import type { ColumnKinds } from './exact-values';
import { unescapeCopyText, type RowFailure, type SourceField } from './rows';
import type { SampleResult } from './sample-rows';

export interface TaskBase {
  id: number;
  /** The transform module's real path, checked by resolveTransformModule. */
  module: string;
  fields: SourceField[];
  /** The source rows, as rangeRowsCopySql writes them. */
  source: Uint8Array;
}

export interface EncodeTask extends TaskBase {
  kind: 'encode';
  columns: string[];
  kinds: ColumnKinds;
}

export interface DigestTask extends TaskBase {
  kind: 'digest';
  types: ColumnType[];
}

/** A dry run's sample: what the transform makes of each source row, for display and checks. */
export interface SampleTask extends TaskBase {
  kind: 'sample';
  columns: string[];
  kinds: ColumnKinds;
  /** The column verification traces a target row back to its source key by. */
  traceColumn: string;
}

/** Verification's row-by-row read: each source row's target rows as Postgres input texts. */
export interface InputTextsTask extends TaskBase {
  kind: 'input-texts';
  columns: string[];
  kinds: ColumnKinds;
}

export type TransformTask = EncodeTask | DigestTask | SampleTask | InputTextsTask;

export interface EncodeResult {
  read: number;
  /**
   * The key of each source row that became target rows, in order, as COPY text writes it, each
   * ending in a newline (one string costs less to hand over than one per row; see sourceKeys).
   */
  keys: string;
  /** How many COPY lines each of those rows became; null when every one became one line. */
  lineCounts: number[] | null;
  /** The COPY text of every target row, in source key order. */
  copyText: Uint8Array;
  failed: RowFailure[];
  /** The keys of source rows the transform skipped (null or no row), as `keys` writes them. */
  skipped: string;
}

/** Null when some value cannot be made canonical in the worker (see worker-checksum.ts). */
export type DigestResult = { rows: number; digest: string } | null;

/**
 * The source rows the transform did not skip, in key order: each one's key, and its target rows'
 * values as Postgres input text (columns in task order), or null where the copier would record
 * the source row as failed (its transform threw, or a value has no database form).
 */
export interface InputTextsResult {
  keys: string[];
  rows: ((string | null)[][] | null)[];
}

export type TaskReply =
  | { id: number; ok: true; result: EncodeResult | DigestResult | SampleResult | InputTextsResult }
  | { id: number; ok: false; error: { message: string; name: string; type?: string; nonRetryable?: boolean } };

/** EncodeResult.keys as the keys' text. */
export function sourceKeys(keys: string): string[] {
  const lines = keys.split('\n');
  lines.pop();
  return lines.map(unescapeCopyText);
}
