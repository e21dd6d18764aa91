/**
 * The worker-thread side of transform-threads.ts: a batch of source rows arrives as COPY text,
 * goes through the plan's module transform, and goes back as the COPY text of the target rows
 * (and the rows the transform refused), or as the chunk digest the verifier compares. Pure
 * computation: the thread never touches a database, so abandoning a task is always safe.
 */
import { parentPort } from 'node:worker_threads';
import { redactErrorText, transformErrorSummary } from '../../lib/errors';
import { copyTextEncoder } from './copy-text';
import { postgresInputTextOf } from './exact-values';
import { loadResolvedTransform } from './load';
import { assertTargetRow, isThenable, SourceRowReader, type RowFailure, type TargetRow } from './rows';
import { sampledTargetRow, type SampleResult } from './sample-rows';
import type { DigestResult, DigestTask, EncodeResult, EncodeTask, InputTextsResult, InputTextsTask, SampleTask, TaskReply, TransformTask } from './thread-messages';
import { ChunkDigest, workerFieldOf, type WorkerField } from './worker-checksum';

/** A transform's output for one source row: its target rows, or null to skip it. */
function targetRowsOfOutput(output: unknown): TargetRow[] | null {
  if (output === undefined) throw new TypeError('the transform returned undefined; return null to skip a row');
  if (output === null) return null;
  return (Array.isArray(output) ? output : [output]) as TargetRow[];
}

/**
 * Buffers that encodings write into, kept for the next task (one each for tasks that overlap
 * while an async transform is awaited), so the thread does not allocate one a part.
 */
const spareBuffers: Buffer[] = [];
const SPARE_BUFFERS = 4;

/** Bytes of COPY text built up a line at a time, in a buffer that grows as it fills. */
class CopyTextBuffer {
  private bytes = spareBuffers.pop() ?? Buffer.allocUnsafeSlow(512 * 1024);
  length = 0;

  append(text: string): void {
    // A UTF-8 character is at most three bytes per UTF-16 code unit.
    const room = this.length + text.length * 3;
    if (room > this.bytes.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(room, this.bytes.length * 2));
      this.bytes.copy(grown, 0, 0, this.length);
      this.bytes = grown;
    }
    this.length += this.bytes.write(text, this.length, 'utf8');
  }

  /** The text, in bytes of its own (to be handed over: a slow buffer is never pooled); the buffer is kept for the next task. */
  take(): Uint8Array {
    const text = Buffer.allocUnsafeSlow(this.length);
    this.bytes.copy(text, 0, 0, this.length);
    if (spareBuffers.length < SPARE_BUFFERS) spareBuffers.push(this.bytes);
    return text;
  }
}

export async function encode(task: EncodeTask): Promise<EncodeResult> {
  const transform = await loadResolvedTransform(task.module);
  const rows = new SourceRowReader(Buffer.from(task.source.buffer, task.source.byteOffset, task.source.byteLength).toString('utf8'), task.fields);
  const encodeRow = copyTextEncoder(task.columns, task.kinds);
  const copyText = new CopyTextBuffer();
  let read = 0;
  let keys = '';
  let skipped = '';
  let lineCounts: number[] | null = null;
  let encoded = 0;
  const failed: RowFailure[] = [];
  while (rows.next()) {
    read++;
    const { key, row } = rows;
    let output: unknown;
    try {
      output = transform(row);
      // Only a promise is awaited: awaiting a plain value costs a turn of the microtask queue per row.
      if (isThenable(output)) output = await output;
    } catch (error) {
      failed.push({ key, error: transformErrorSummary(error) });
      continue;
    }
    try {
      const produced = targetRowsOfOutput(output);
      if (!produced || produced.length === 0) {
        skipped += rows.keyText + '\n';
        continue;
      }
      let lines = '';
      for (const target of produced) lines += encodeRow(target);
      copyText.append(lines);
      if (produced.length !== 1) lineCounts ??= new Array<number>(encoded).fill(1);
      lineCounts?.push(produced.length);
      keys += rows.keyText + '\n';
      encoded++;
    } catch (error) {
      failed.push({ key, error: redactErrorText(error) });
    }
  }
  return { read, keys, lineCounts, copyText: copyText.take(), failed, skipped };
}

/** As the verifier's moduleSourceDigest: rows whose transform throws, or that have a value with no database form, are left out. */
async function digest(task: DigestTask): Promise<DigestResult> {
  const transform = await loadResolvedTransform(task.module);
  const fields = task.types.map(workerFieldOf);
  if (fields.some((f) => f === null)) return null;
  const rows = new SourceRowReader(Buffer.from(task.source.buffer, task.source.byteOffset, task.source.byteLength).toString('utf8'), task.fields);
  const names = task.types.map((c) => c.name);
  const sums = new ChunkDigest();
  const records: string[] = [];
  while (rows.next()) {
    const { row } = rows;
    records.length = 0;
    try {
      let output = transform(row);
      if (isThenable(output)) output = await output;
      const produced = targetRowsOfOutput(output);
      if (!produced) continue;
      for (const target of produced) {
        assertTargetRow(target);
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

/** As the copier: null skips a source row, undefined or a row that is not an object fails it. */
async function inputTexts(task: InputTextsTask): Promise<InputTextsResult> {
  const transform = await loadResolvedTransform(task.module);
  const rows = new SourceRowReader(Buffer.from(task.source.buffer, task.source.byteOffset, task.source.byteLength).toString('utf8'), task.fields);
  const inputTextOf = task.columns.map((column) => postgresInputTextOf(column, task.kinds[column]));
  const result: InputTextsResult = { keys: [], rows: [] };
  while (rows.next()) {
    const { key, row } = rows;
    let texts: (string | null)[][] | null;
    try {
      let output = transform(row);
      if (isThenable(output)) output = await output;
      const produced = targetRowsOfOutput(output);
      if (!produced) continue;
      texts = produced.map((target) => {
        assertTargetRow(target);
        return task.columns.map((column, i) => inputTextOf[i]!(target[column]));
      });
    } catch {
      texts = null;
    }
    result.keys.push(key);
    result.rows.push(texts);
  }
  return result;
}

/** A dry run's sample, up to the first row whose transform throws. */
async function sample(task: SampleTask): Promise<SampleResult> {
  const transform = await loadResolvedTransform(task.module);
  const rows = new SourceRowReader(Buffer.from(task.source.buffer, task.source.byteOffset, task.source.byteLength).toString('utf8'), task.fields);
  const result: SampleResult = { rows: [], threw: null };
  while (rows.next()) {
    const { key, row } = rows;
    let output: unknown;
    try {
      output = transform(row);
      if (isThenable(output)) output = await output;
    } catch (error) {
      result.threw = { key, error: transformErrorSummary(error) };
      break;
    }
    const produced = (output === null ? [] : Array.isArray(output) ? output : [output]) as TargetRow[];
    result.rows.push({ key, produced: produced.map((target) => sampledTargetRow(target, task.columns, task.kinds, task.traceColumn)) });
  }
  return result;
}

function run(task: TransformTask): Promise<EncodeResult | DigestResult | SampleResult | InputTextsResult> {
  if (task.kind === 'encode') return encode(task);
  if (task.kind === 'input-texts') return inputTexts(task);
  return task.kind === 'digest' ? digest(task) : sample(task);
}

parentPort?.on('message', (task: TransformTask) => {
  run(task).then(
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
        error: { message: redactErrorText(error), name: failure?.name ?? 'Error', type: failure?.type, nonRetryable: failure?.nonRetryable },
      };
      parentPort!.postMessage(reply);
    },
  );
});
