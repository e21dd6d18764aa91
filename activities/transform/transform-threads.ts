/**
 * A module transform runs on worker threads, one per core. JavaScript transforms are the one
 * place where the worker, not Postgres, does the work per row; on the event loop they would use
 * one core and hold up heartbeats. Here the event loop only moves bytes: the source rows leave
 * Postgres as COPY text, a thread turns them into the target's COPY text (or a chunk digest),
 * and the event loop streams that into the target.
 */
import { ApplicationFailure } from '@temporalio/activity';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { KeyRange } from '../../lib/key-range';
import { transformErrorSummary } from '../../lib/errors';
import { oneStatement, readOnly } from '../plan-sql';
import { rangeRowsCopySql, rangeRowsSql, type CopySpec } from '../copy/copy-statements';
import type { SourceField } from './rows';
import type { SampleResult } from './sample-rows';
import type { DigestResult, DigestTask, EncodeResult, EncodeTask, InputTextsResult, InputTextsTask, SampleTask, TaskReply, TransformTask } from './thread-messages';

/** Threads to run transforms on (FERRY_TRANSFORM_THREADS, else one per core). */
function threadCount(): number {
  const configured = Number(process.env.FERRY_TRANSFORM_THREADS);
  if (Number.isInteger(configured) && configured > 0) return configured;
  return Math.max(1, os.availableParallelism());
}

/**
 * How long a thread with work in hand may go without finishing any of it (FERRY_TRANSFORM_STUCK_SECONDS,
 * else 5 minutes): a part is about 256 KB of rows, so only a transform that never returns (a
 * loop, a promise that never settles) comes near it, and the heartbeats that go on meanwhile
 * would otherwise hold its shard for ever.
 */
export function stuckAfterMs(): number {
  const configured = Number(process.env.FERRY_TRANSFORM_STUCK_SECONDS);
  return (Number.isFinite(configured) && configured > 0 ? configured : 300) * 1000;
}

type TaskResult = EncodeResult | DigestResult | SampleResult | InputTextsResult;

interface Pending {
  resolve: (result: TaskResult) => void;
  reject: (error: Error) => void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Set while work is in hand: fires when none of it has finished for stuckAfterMs(). */
  watchdog?: NodeJS.Timeout;
  /** Fails every task in hand and takes the thread out of use. */
  failAll: (error: Error) => void;
}

/**
 * The thread runs this module's sibling, compiled or not as this one is; tsx is registered
 * first so that a transform module written in TypeScript loads.
 */
const THREAD_SOURCE = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(path.join(__dirname, `transform-thread${path.extname(__filename)}`))});`;

let nextTaskId = 1;
const threads: Thread[] = [];

function failureOf(error: Extract<TaskReply, { ok: false }>['error']): Error {
  if (error.type) return ApplicationFailure.create({ message: error.message, type: error.type, nonRetryable: error.nonRetryable ?? false });
  return Object.assign(new Error(error.message), { name: error.name });
}

function startThread(): Thread {
  const thread: Thread = {
    worker: new Worker(THREAD_SOURCE, { eval: true }),
    pending: new Map(),
    failAll(error) {
      clearTimeout(thread.watchdog);
      for (const pending of thread.pending.values()) pending.reject(error);
      thread.pending.clear();
      const index = threads.indexOf(thread);
      if (index >= 0) threads.splice(index, 1);
    },
  };
  thread.worker.on('message', (reply: TaskReply) => {
    const pending = thread.pending.get(reply.id);
    if (!pending) return;
    thread.pending.delete(reply.id);
    watch(thread);
    if (reply.ok) pending.resolve(reply.result);
    else pending.reject(failureOf(reply.error));
  });
  // Nothing on the thread caught it: thrown by the transform outside its return path (a callback,
  // an unawaited promise), so its text is the transform's own and may quote a row.
  thread.worker.on('error', (error) => thread.failAll(new Error(`a transform thread failed on an error nothing caught: ${transformErrorSummary(error)}`)));
  thread.worker.on('exit', (code) => thread.failAll(new Error(`a transform thread exited (code ${code}) with work in hand`)));
  // Idle threads do not keep the process alive.
  thread.worker.unref();
  return thread;
}

/**
 * Starts the thread's watchdog again (a task finished) or stops it (nothing in hand). A thread
 * that trips it is ended, which stops even a loop that never yields; its tasks fail for good,
 * since the same rows would hold the next attempt as long.
 */
function watch(thread: Thread): void {
  clearTimeout(thread.watchdog);
  thread.watchdog = undefined;
  if (thread.pending.size === 0) return;
  const stuckMs = stuckAfterMs();
  thread.watchdog = setTimeout(() => {
    thread.failAll(transformStuck(stuckMs, 'on its thread (a loop that never ends, or a promise that never settles); the thread was ended'));
    void thread.worker.terminate();
  }, stuckMs);
  thread.watchdog.unref();
}

/** The failure of a transform that returned nothing for `stuckMs`: for good, since the same rows would hold the next attempt as long. */
export function transformStuck(stuckMs: number, where: string): ApplicationFailure {
  return ApplicationFailure.create({ message: `the module transform returned nothing for ${stuckMs / 1000} s ${where}`, type: 'TransformStuck', nonRetryable: true });
}

/** The least busy thread, started when fewer than threadCount() run. */
function threadForTask(): Thread {
  const idle = threads.find((t) => t.pending.size === 0);
  if (idle) return idle;
  if (threads.length < threadCount()) {
    const thread = startThread();
    threads.push(thread);
    return thread;
  }
  return threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
}

function run<T extends TaskResult>(task: Omit<EncodeTask, 'id'> | Omit<DigestTask, 'id'> | Omit<InputTextsTask, 'id'>): Promise<T> {
  return runOn<T>(threadForTask(), task);
}

function runOn<T extends TaskResult>(thread: Thread, task: Omit<TransformTask, 'id'>): Promise<T> {
  const id = nextTaskId++;
  return new Promise<T>((resolve, reject) => {
    thread.pending.set(id, { resolve: resolve as Pending['resolve'], reject });
    if (thread.pending.size === 1) watch(thread);
    // The source bytes are handed over, not copied.
    thread.worker.postMessage({ ...task, id } as TransformTask, [task.source.buffer as ArrayBuffer]);
  });
}

/** Stops every thread (tests and the benchmark, when they are done). */
export async function stopTransformThreads(): Promise<void> {
  const all = threads.splice(0);
  await Promise.all(all.map((t) => t.worker.terminate()));
}

// ---------------------------------------------------------------------------------------------
// Reading source rows as COPY text

export interface SourceRowsText {
  fields: SourceField[];
  /** rangeRowsCopySql's output, in bytes of its own (to be handed to a thread). */
  text: Uint8Array;
}

/** The columns of rangeRowsSql's rows after the key: a query that reads no row says. */
export async function describeSourceRows(sourcePool: pg.Pool, spec: Pick<CopySpec, 'source' | 'filter'>): Promise<SourceField[]> {
  const described = rangeRowsSql(spec, { after: null, upTo: null }, 0);
  const result = await readOnly(sourcePool, (client) => client.query(oneStatement(described)));
  return result.fields.slice(1).map((f) => ({ name: f.name, oid: f.dataTypeID }));
}

/** Bytes of their own (Buffers may share Node's pool), so they can be handed to a thread. */
function ownBytes(chunks: readonly Buffer[], length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk.subarray(0, Math.min(chunk.length, length - offset)), offset);
    offset += chunk.length;
    if (offset >= length) break;
  }
  return bytes;
}

/** Source rows are handed to threads in parts of whole lines of about this many bytes. */
const PART_BYTES = 256 * 1024;
/** The first part of a range is smaller, so that its target rows start to flow sooner. */
const FIRST_PART_BYTES = 32 * 1024;

/**
 * Reads a key range's source rows (rangeRowsCopySql) and hands them to `onPart` as they arrive,
 * in parts of whole lines, so that transforming can start before reading ends.
 */
export async function readSourceParts(
  sourcePool: pg.Pool,
  spec: Pick<CopySpec, 'source' | 'filter'>,
  range: KeyRange,
  onPart: (part: Uint8Array) => void,
  partBytes = PART_BYTES,
  limit?: number,
): Promise<void> {
  // COPY goes over the simple protocol: the plan's SQL was checked to hold one expression, and
  // the read runs in a READ ONLY transaction.
  await readOnly(sourcePool, async (client) => {
    let held: Buffer[] = [];
    let heldBytes = 0;
    let nextPartBytes = Math.min(FIRST_PART_BYTES, partBytes);
    for await (const data of client.query(copyTo(rangeRowsCopySql(spec, range, limit)))) {
      const chunk = data as Buffer;
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes < nextPartBytes) continue;
      // Up to the last whole line; the rest starts the next part.
      const lastNewline = chunk.lastIndexOf(10);
      if (lastNewline < 0) continue;
      const partLength = heldBytes - (chunk.length - lastNewline - 1);
      onPart(ownBytes(held, partLength));
      nextPartBytes = partBytes;
      const rest = chunk.subarray(lastNewline + 1);
      held = rest.length ? [rest] : [];
      heldBytes = rest.length;
    }
    if (heldBytes > 0) onPart(ownBytes(held, heldBytes));
  });
}

/** The source rows of a key range (the first `limit` of them, when given) as COPY text, and the columns that describe them. */
export async function readSourceRows(sourcePool: pg.Pool, spec: Pick<CopySpec, 'source' | 'filter'>, range: KeyRange, limit?: number): Promise<SourceRowsText> {
  const parts: Uint8Array[] = [];
  const [fields] = await Promise.all([describeSourceRows(sourcePool, spec), readSourceParts(sourcePool, spec, range, (part) => parts.push(part), Infinity, limit)]);
  return { fields, text: parts.length === 1 ? parts[0]! : ownBytes(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)), parts.reduce((n, p) => n + p.length, 0)) };
}

/** A batch through the module transform on a thread: the target rows' COPY text, and the rows refused. */
export function encodeOnThread(module: string, rows: SourceRowsText, columns: string[], kinds: EncodeTask['kinds']): Promise<EncodeResult> {
  return run<EncodeResult>({ kind: 'encode', module, fields: rows.fields, source: rows.text, columns, kinds });
}

/** The count and digest of a batch through the module transform, on a thread; null when the worker cannot tell. */
export function digestOnThread(module: string, rows: SourceRowsText, types: DigestTask['types']): Promise<DigestResult> {
  return run<DigestResult>({ kind: 'digest', module, fields: rows.fields, source: rows.text, types });
}

/** Verification's row-by-row read through the module transform, on a thread: see InputTextsResult. */
export function inputTextsOnThread(module: string, rows: SourceRowsText, columns: string[], kinds: InputTextsTask['kinds']): Promise<InputTextsResult> {
  return run<InputTextsResult>({ kind: 'input-texts', module, fields: rows.fields, source: rows.text, columns, kinds });
}

/** How long a dry run's sample may take on its thread. */
const SAMPLE_TIMEOUT_MS = 60_000;

/**
 * A dry run's sample through the module transform, on a thread of its own that ends with it: a
 * module that ends its thread (process.exit), or never returns, fails the sample and never the
 * worker, whose event loop and other work go on.
 */
export async function sampleOnThread(
  module: string,
  rows: SourceRowsText,
  task: Pick<SampleTask, 'columns' | 'kinds' | 'traceColumn'>,
  timeoutMs = SAMPLE_TIMEOUT_MS,
): Promise<SampleResult> {
  const thread = startThread();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the transform did not return within ${timeoutMs / 1000} s on the sample`)), timeoutMs);
  });
  try {
    return await Promise.race([runOn<SampleResult>(thread, { kind: 'sample', module, fields: rows.fields, source: rows.text, ...task }), timedOut]);
  } finally {
    clearTimeout(timer);
    await thread.worker.terminate();
  }
}
