/**
 * The worker-thread side of transform-threads.ts: a batch of source rows arrives as COPY text,
 * goes through the plan's module transform, and goes back as the COPY text of the target rows
 * (and the rows the transform refused), or as the chunk digest the verifier compares. Pure
 * computation: the thread never touches a database, so abandoning a task is always safe.
 */
import { parentPort } from 'node:worker_threads';
import { redactErrorText, transformErrorSummary } from '../../lib/errors';
import { copyTextEncoder } from './copy-text';
import { loadResolvedTransform } from './load';
import { decodeSourceRows, isThenable, type RowFailure, type TargetRow } from './rows';
import type { DigestResult, DigestTask, EncodeResult, EncodeTask, TaskReply, TransformTask } from './thread-messages';
import { ChunkDigest, workerFieldOf, type WorkerField } from './worker-checksum';

/** An error the transform itself threw: its text is the transform's, and may quote the row. */
class ThrownByTransform {
  constructor(readonly error: unknown) {}
}

/** Why a row failed, without its values: a transform's own message is withheld (see transformErrorSummary). */
function rowFailureText(error: unknown): string {
  return error instanceof ThrownByTransform ? transformErrorSummary(error.error) : redactErrorText(error);
}

/** The target rows of one source row; null to skip it. A throw of the transform comes as ThrownByTransform. */
async function targetRowsOf(transform: (row: never) => unknown, row: unknown): Promise<TargetRow[] | null> {
  let output: unknown;
  try {
    output = transform(row as never);
    // Awaiting a plain value costs a turn of the microtask queue per row.
    if (isThenable(output)) output = await output;
  } catch (error) {
    throw new ThrownByTransform(error);
  }
  if (output === undefined) throw new TypeError('the transform returned undefined; return null to skip a row');
  if (output === null) return null;
  return (Array.isArray(output) ? output : [output]) as TargetRow[];
}

async function encode(task: EncodeTask): Promise<EncodeResult> {
  const transform = await loadResolvedTransform(task.module);
  const rows = decodeSourceRows(Buffer.from(task.source.buffer, task.source.byteOffset, task.source.byteLength).toString('utf8'), task.fields);
  const encodeRow = copyTextEncoder(task.columns, task.kinds);
  const keys: string[] = [];
  const lineCounts: number[] = [];
  const failed: RowFailure[] = [];
  let text = '';
  for (const { key, row } of rows) {
    try {
      const produced = await targetRowsOf(transform, row);
      if (!produced || produced.length === 0) continue;
      let lines = '';
      for (const target of produced) lines += encodeRow(target);
      text += lines;
      keys.push(key);
      lineCounts.push(produced.length);
    } catch (error) {
      failed.push({ key, error: rowFailureText(error) });
    }
  }
  // Bytes of their own (a small Buffer would share Node's pool), so they can be handed over.
  return { read: rows.length, keys, lineCounts, copyText: new TextEncoder().encode(text), failed };
}

/** As the verifier's moduleSourceDigest: rows whose transform throws, or that have a value with no database form, are left out. */
async function digest(task: DigestTask): Promise<DigestResult> {
  const transform = await loadResolvedTransform(task.module);
  const fields = task.types.map(workerFieldOf);
  if (fields.some((f) => f === null)) return null;
  const rows = decodeSourceRows(Buffer.from(task.source.buffer, task.source.byteOffset, task.source.byteLength).toString('utf8'), task.fields);
  const names = task.types.map((c) => c.name);
  const sums = new ChunkDigest();
  const records: string[] = [];
  for (const { row } of rows) {
    records.length = 0;
    try {
      const produced = await targetRowsOf(transform, row);
      if (!produced) continue;
      for (const target of produced) {
        if (target === null || typeof target !== 'object' || Array.isArray(target)) throw new TypeError('a target row must be an object');
        let record = '(';
        for (let i = 0; i < names.length; i++) {
          const field = (fields[i] as WorkerField)(target[names[i]!]);
          if (field === undefined) return null;
          record += i > 0 ? ',' + field : field;
        }
        records.push(record + ')');
      }
    } catch {
      continue;
    }
    for (const record of records) sums.add(record);
  }
  return { rows: sums.rows, digest: sums.digest() };
}

parentPort?.on('message', (task: TransformTask) => {
  (task.kind === 'encode' ? encode(task) : digest(task)).then(
    (result) => {
      const reply: TaskReply = { id: task.id, ok: true, result };
      const transfer = result && 'copyText' in result ? [result.copyText.buffer as ArrayBuffer] : [];
      parentPort!.postMessage(reply, transfer);
    },
    (error: unknown) => {
      const failure = error as { message?: string; name?: string; type?: string; nonRetryable?: boolean };
      const reply: TaskReply = {
        id: task.id,
        ok: false,
        error: { message: rowFailureText(error), name: failure?.name ?? 'Error', type: failure?.type, nonRetryable: failure?.nonRetryable },
      };
      parentPort!.postMessage(reply);
    },
  );
});
