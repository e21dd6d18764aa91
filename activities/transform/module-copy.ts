/**
 * The module-transform copy path: source rows are read into the worker, mapped by a JavaScript
 * or TypeScript function from the plan (`transform.module`), and written to the target with
 * text COPY through a staging table, so that every value arrives exactly as it left.
 */
import { Readable } from 'node:stream';
import pg from 'pg';
import type { KeyRange } from '../../lib/key-range';
import { writeBatch } from '../copy/batch-writer';
import type { CopySpec } from '../copy/copy-statements';
import { targetColumnKinds } from './copy-text';
import { resolveTransformModule } from './load';
import type { RowFailure } from './rows';
import { sourceKeys, type EncodeResult } from './thread-messages';
import { describeSourceRows, encodeOnThread, readSourceParts } from './transform-threads';

export interface ModuleCopyResult {
  /** Source rows read in the range. */
  read: number;
  /** Target rows inserted; rows already in the target are kept and not counted. */
  written: number;
  /** Source rows whose transform threw or returned no target row, or whose value the target refused. */
  failed: RowFailure[];
  /** The keys of source rows the transform skipped (returned null or no row): they have no target row now. */
  skipped: string[];
}

/** COPY text is sent in chunks of about this many bytes. */
const CHUNK_BYTES = 64 * 1024;

/**
 * Rows the target may refuse in one batch (a value its column type does not accept) before the
 * batch fails as a whole: each refusal costs a new COPY of the batch.
 */
const MAX_REFUSED_ROWS = 10;

/** A batch's target rows as COPY text, and which source row each line came from. */
interface EncodedBatch {
  /** The key of each source row that became target rows, in order, and its number of lines. */
  keys: string[];
  lineCounts: number[];
  copyText: Uint8Array;
}

function* chunked(bytes: Uint8Array): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) {
    yield Buffer.from(bytes.buffer, bytes.byteOffset + offset, Math.min(CHUNK_BYTES, bytes.length - offset));
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The index of the source row whose COPY line the target refused, for a data error (SQLSTATE
 * class 22: a value its type does not accept) that Postgres located at a line; otherwise null.
 */
function refusedRowIndex(error: unknown, batch: EncodedBatch): number | null {
  if (!(error instanceof pg.DatabaseError) || !error.code?.startsWith('22')) return null;
  const line = /\bline (\d+)\b/.exec(error.where ?? '')?.[1];
  if (line === undefined) return null;
  let remaining = Number(line);
  for (let i = 0; i < batch.lineCounts.length; i++) {
    remaining -= batch.lineCounts[i]!;
    if (remaining <= 0) return i;
  }
  return null;
}

/** The batch without source row `index`'s lines. */
function withoutRow(batch: EncodedBatch, index: number): EncodedBatch {
  const lines = Buffer.from(batch.copyText.buffer, batch.copyText.byteOffset, batch.copyText.byteLength).toString('utf8').split('\n');
  const first = batch.lineCounts.slice(0, index).reduce((n, c) => n + c, 0);
  lines.splice(first, batch.lineCounts[index]!);
  return {
    keys: batch.keys.filter((_, i) => i !== index),
    lineCounts: batch.lineCounts.filter((_, i) => i !== index),
    copyText: new TextEncoder().encode(lines.join('\n')),
  };
}

/**
 * A batch's target rows, encoded once on transform threads while the source is still being
 * read, and streamed into the target as often as the batch is written (a straight COPY that
 * falls back to staging writes it twice).
 */
class EncodedRange {
  private readonly parts: Promise<EncodeResult>[] = [];
  private readonly reading: Promise<void>;
  private finished = false;
  private wake: () => void = () => {};

  constructor(sourcePool: pg.Pool, spec: CopySpec, range: KeyRange, encodePart: (part: Uint8Array) => Promise<EncodeResult>) {
    this.reading = readSourceParts(sourcePool, spec, range, (part) => {
      const encoded = encodePart(part);
      encoded.catch(() => {});
      this.parts.push(encoded);
      this.wake();
    }).finally(() => {
      this.finished = true;
      this.wake();
    });
    this.reading.catch(() => {});
  }

  /** The target rows' COPY text, part after part, as soon as each is encoded. */
  async *copyText(): AsyncGenerator<Buffer> {
    for (let i = 0; ; ) {
      if (i < this.parts.length) {
        const { copyText } = await this.parts[i++]!;
        yield* chunked(copyText);
        continue;
      }
      if (this.finished) {
        await this.reading;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** The range's counts, once it is read and encoded. */
  async counts(): Promise<{ read: number; failed: RowFailure[]; skipped: string[] }> {
    await this.reading;
    const parts = await Promise.all(this.parts);
    return { read: parts.reduce((n, p) => n + p.read, 0), failed: parts.flatMap((p) => p.failed), skipped: parts.flatMap((p) => sourceKeys(p.skipped)) };
  }

  private whole: Promise<EncodedBatch> | null = null;

  /** Every part as one batch, once the whole range is read and encoded (to write again without a refused row). */
  batch(): Promise<EncodedBatch> {
    this.whole ??= this.joined();
    return this.whole;
  }

  private async joined(): Promise<EncodedBatch> {
    await this.reading;
    const parts = await Promise.all(this.parts);
    const texts = parts.map((p) => Buffer.from(p.copyText.buffer, p.copyText.byteOffset, p.copyText.byteLength));
    const keys = parts.map((p) => sourceKeys(p.keys));
    return {
      keys: keys.flat(),
      lineCounts: parts.flatMap((p, i) => p.lineCounts ?? new Array<number>(keys[i]!.length).fill(1)),
      copyText: Buffer.concat(texts),
    };
  }
}

/**
 * Copies one key range through the module transform at `modulePath` (which must be inside
 * `transformDir`, see resolveTransformModule): reads the range's source
 * rows in key order (as COPY text), maps them with the transform on transform threads while
 * they are read, and inserts the results into the target in one transaction (straight in when
 * the range is empty there, else through a staging table with the plan's conflict policy). A
 * row whose transform throws, or returns something that is not a target row, or a value the
 * target's column type refuses, is reported in `failed`, and the others go on; a row is written
 * whole or not at all. Safe to run twice: rows already in the target are kept. Batches are
 * meant to be bounded (at most 100k rows): the range's rows are kept until it is written.
 */
export async function copyRangeThroughModule(
  sourcePool: pg.Pool,
  targetPool: pg.Pool,
  spec: CopySpec,
  range: KeyRange,
  modulePath: string,
  transformDir: string | null,
): Promise<ModuleCopyResult> {
  const module = await resolveTransformModule(modulePath, transformDir);
  const [fields, kinds] = await Promise.all([describeSourceRows(sourcePool, spec), targetColumnKinds(targetPool, spec.target)]);
  const columns = Object.keys(spec.columns);
  const encoded = new EncodedRange(sourcePool, spec, range, (part) => encodeOnThread(module, { fields, text: part }, columns, kinds));
  // The first write streams rows as they are encoded; a write after a refused row sends what is left.
  let remaining: EncodedBatch | null = null;
  const failedByTarget: RowFailure[] = [];
  for (;;) {
    try {
      const rows = remaining;
      const written = await writeBatch(targetPool, spec, range, (send) => send(Readable.from(rows ? chunked(rows.copyText) : encoded.copyText())));
      const { read, failed, skipped } = await encoded.counts();
      return { read, written, failed: [...failed, ...failedByTarget], skipped };
    } catch (error) {
      const { read, failed, skipped } = await encoded.counts();
      remaining ??= await encoded.batch();
      const index = refusedRowIndex(error, remaining);
      if (index === null || failedByTarget.length >= MAX_REFUSED_ROWS) throw error;
      const column = /\bcolumn ([^:]+):/.exec((error as pg.DatabaseError).where ?? '')?.[1];
      failedByTarget.push({ key: remaining.keys[index]!, error: `the target refused a value${column ? ` of column ${column}` : ''}: ${messageOf(error)}` });
      remaining = withoutRow(remaining, index);
      if (remaining.keys.length === 0) return { read, written: 0, failed: [...failed, ...failedByTarget], skipped };
    }
  }
}
