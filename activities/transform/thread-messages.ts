/** The messages between the transform thread pool (transform-threads.ts) and a thread (transform-thread.ts). */
import type { ColumnType } from '../verify/verify-statements';
import type { ColumnKinds } from './exact-values';
import type { RowFailure, SourceField } from './rows';

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

export type TransformTask = EncodeTask | DigestTask;

export interface EncodeResult {
  read: number;
  /** The key of each source row that became target rows, and how many COPY lines it became. */
  keys: string[];
  lineCounts: number[];
  /** The COPY text of every target row, in source key order. */
  copyText: Uint8Array;
  failed: RowFailure[];
}

/** Null when some value cannot be made canonical in the worker (see worker-checksum.ts). */
export type DigestResult = { rows: number; digest: string } | null;

export type TaskReply =
  | { id: number; ok: true; result: EncodeResult | DigestResult }
  | { id: number; ok: false; error: { message: string; name: string; type?: string; nonRetryable?: boolean } };
