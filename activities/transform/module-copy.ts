/**
 * The module-transform copy path: source rows are read into the worker, mapped by a JavaScript
 * or TypeScript function from the plan (`transform.module`), and written to the target with
 * text COPY through a staging table, so that every value arrives exactly as it left.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { require as tsxRequire } from 'tsx/cjs/api';
import { tsImport } from 'tsx/esm/api';
import type { KeyRange } from '../../lib/key-range';
import { writeBatch } from '../copy/batch-writer';
import type { CopySpec } from '../copy/copy-statements';
import { columnKindOf, postgresInputText, sourceValueParser, type ColumnKind, type ColumnKinds } from './exact-values';
import { qualifiedName, type TableName } from '../sql';
import type { EncodeResult } from './transform-thread';
import { describeSourceRows, encodeOnThread, readSourceParts } from './transform-threads';

/**
 * A source row as the transform sees it: column name to value, each of which prints back as the
 * text it came from (see exact-values.ts). int2, int4 and floats (NaN, Infinity, -0 included)
 * are numbers, bool is boolean, bytea is a Buffer, json and jsonb are parsed (JSON null is
 * `jsonNull`, numbers a JavaScript number cannot hold exactly are LosslessNumbers), arrays of
 * those and of text types are arrays (NULL elements null; an array with explicit bounds stays
 * text); every other type, int8, numeric, dates, times and intervals included, is Postgres's
 * own text. SQL NULL is null.
 */
export type SourceRow = Record<string, unknown>;

/**
 * A target row: column name (one of `transform.columns`) to value. A column left out is NULL.
 * Values: null/undefined, string (Postgres input text), number, bigint, boolean, Date, Buffer,
 * LosslessNumber, or an object or array (JSON; into an array column an array is an array
 * literal). Every value of a json or jsonb column is written as JSON, `jsonNull` as JSON null.
 */
export type TargetRow = Record<string, unknown>;

type TransformResult = TargetRow | TargetRow[] | null;

/** The function a transform module exports. It returns null to skip a row; it may be async. */
export type RowTransform = (row: SourceRow) => TransformResult | Promise<TransformResult>;

// ---------------------------------------------------------------------------------------------
// Loading the module

const loaded = new Map<string, Promise<RowTransform>>();

const ESM_ONLY = new Set(['.mjs', '.mts']);

async function importModule(file: string): Promise<unknown> {
  const parent = path.join(process.cwd(), 'ferry-transform-loader.js');
  if (!ESM_ONLY.has(path.extname(file))) {
    try {
      return tsxRequire(file, parent);
    } catch (error) {
      // A .js file of a "type": "module" package, or one using top-level await: import it.
      const code = (error as { code?: unknown }).code;
      if (code !== 'ERR_REQUIRE_ESM' && code !== 'ERR_REQUIRE_ASYNC_MODULE') throw error;
    }
  }
  const url = pathToFileURL(file).href;
  try {
    // Under tsx (the worker) the native import already understands TypeScript.
    return await import(url);
  } catch (error) {
    // Elsewhere (plain node, test runners) a .mts file needs tsx's loader, scoped to this import.
    if ((error as { code?: unknown }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error;
    return tsImport(url, pathToFileURL(parent).href);
  }
}

/** The transform function of a loaded module: its default export, or its `transform` export. */
function transformExportOf(mod: unknown): RowTransform | null {
  const candidates: unknown[] = [mod];
  for (let i = 0; i < candidates.length && i < 8; i++) {
    const value = candidates[i];
    if (typeof value === 'function') return value as RowTransform;
    if (value && typeof value === 'object') {
      // ESM namespaces and transpiled CJS wrap the default export once or twice.
      const record = value as Record<string, unknown>;
      candidates.push(record.default, record.transform);
    }
  }
  return null;
}

function describeExports(mod: unknown): string {
  if (mod === null || mod === undefined) return 'it exports nothing';
  if (typeof mod !== 'object') return `its export is a ${typeof mod}`;
  const names = Object.keys(mod);
  // Names only, and only those that read as identifiers: never a piece of the file's content.
  const shown = names.filter((name) => /^[A-Za-z_$][\w$]{0,63}$/.test(name)).slice(0, 10);
  const others = names.length - shown.length;
  if (names.length === 0) return 'it exports nothing';
  return `its exports are: ${[...shown, ...(others > 0 ? [`${others} other${others === 1 ? '' : 's'}`] : [])].join(', ')}`;
}

/**
 * Why a module did not load, without quoting it: the error's class and, for a syntax error, the
 * line. Loader messages quote the offending source, and the file may not be a module at all (a
 * file of secrets given by mistake, or on purpose).
 */
function loadErrorSummary(error: unknown): string {
  const name = error instanceof Error ? error.name : typeof error;
  const code = (error as { code?: unknown } | null)?.code;
  const line = /:(\d+):\d+/.exec(error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : '')?.[1];
  return `${name}${typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? ` [${code}]` : ''}${line ? ` near line ${line}` : ''} (the loader's message is withheld: it may quote the file)`;
}

/** Where a worker may load transform modules from: FERRY_TRANSFORM_DIR, when set. */
export function transformDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const dir = env.FERRY_TRANSFORM_DIR?.trim();
  return dir ? dir : null;
}

/**
 * The real path of the module at `modulePath` (relative paths are resolved against the
 * worker's working directory), once checked to be a file inside `directory` after resolving
 * every link, so a link that points outside is refused. Without a directory the worker loads no
 * module at all. Fails with a non-retryable ApplicationFailure saying what to change.
 */
export async function resolveTransformModule(modulePath: string, directory: string | null): Promise<string> {
  if (!directory) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${modulePath} is refused: this worker loads transform modules only from a directory it is given; ` +
        'start it with --transform-dir DIR (or FERRY_TRANSFORM_DIR=DIR) and put the module there',
      'TransformModuleRefused',
    );
  }
  const root = await realpath(path.resolve(process.cwd(), directory)).catch(() => null);
  if (!root) {
    throw ApplicationFailure.nonRetryable(
      `the worker's transform directory ${directory} does not exist; create it or start the worker with another --transform-dir`,
      'TransformModuleRefused',
    );
  }
  const file = path.resolve(process.cwd(), modulePath);
  const real = await realpath(file).catch(() => null);
  if (!real) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${file} does not exist on this worker (relative paths are resolved against the worker's ` +
        `working directory, ${process.cwd()}); deploy the module with the worker into ${root}`,
      'TransformModuleNotFound',
    );
  }
  const inside = path.relative(root, real);
  if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${file} is refused: it is not inside the worker's transform directory ${root} (links are followed ` +
        'before this check); put the module there, or start the worker with another --transform-dir',
      'TransformModuleRefused',
    );
  }
  const info = await stat(real);
  if (!info.isFile()) {
    throw ApplicationFailure.nonRetryable(`transform module ${file} is not a file`, 'TransformModuleNotFound');
  }
  return real;
}

async function load(file: string): Promise<RowTransform> {
  let mod: unknown;
  try {
    mod = await importModule(file);
  } catch (error) {
    // No cause attached: it would carry the loader's message, and so the file, into the history.
    throw ApplicationFailure.nonRetryable(`transform module ${file} failed to load: ${loadErrorSummary(error)}`, 'TransformModuleInvalid');
  }
  const transform = transformExportOf(mod);
  if (!transform) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${file} has no function to call: ${describeExports(mod)}; ` +
        'export the row transform as its default export (export default (row) => ...) or as `transform`',
      'TransformModuleInvalid',
    );
  }
  return transform;
}

/**
 * The row transform of a module whose path resolveTransformModule returned. Loaded once per
 * path and process, so a changed module takes effect when the worker restarts; a module that
 * failed to load is tried again on the next call.
 */
export function loadResolvedTransform(file: string): Promise<RowTransform> {
  let transform = loaded.get(file);
  if (!transform) {
    transform = load(file);
    loaded.set(file, transform);
    transform.catch(() => loaded.delete(file));
  }
  return transform;
}

/**
 * The row transform of the module at `modulePath`, allowed only inside `directory` (see
 * resolveTransformModule). Fails with a non-retryable ApplicationFailure when the module is
 * refused, missing, does not load, or exports no function.
 */
export async function loadTransform(modulePath: string, directory: string | null): Promise<RowTransform> {
  return loadResolvedTransform(await resolveTransformModule(modulePath, directory));
}

// ---------------------------------------------------------------------------------------------
// Reading source rows

export { columnKindOf, postgresInputText, sourceRowTypes, type ColumnKind, type ColumnKinds } from './exact-values';

/** A source row read with rowMode 'array' from rangeRowsSql (key first) as the transform sees it. */
export function sourceRowOf(names: readonly string[], values: readonly unknown[]): SourceRow {
  const row: SourceRow = {};
  for (let i = 0; i < names.length; i++) row[names[i]!] = values[i + 1];
  return row;
}

/**
 * Whether a transform returned a promise. Only then is it awaited: awaiting a plain value costs
 * a turn of the microtask queue (and the activity context's async hooks) per row.
 */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === 'function';
}

/** A source column as a query describes it: its name and its type's oid. */
export interface SourceField {
  name: string;
  oid: number;
}

const COPY_ESCAPE = /\\(.)/g;
const COPY_UNESCAPED: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** A field of COPY's text format as its text: COPY TO escapes backslash and control characters. */
function unescapeCopyText(field: string): string {
  return field.includes('\\') ? field.replace(COPY_ESCAPE, (_, c: string) => COPY_UNESCAPED[c] ?? c) : field;
}

/**
 * Source rows from rangeRowsCopySql's output (COPY text format: the key as text, then the row's
 * columns) as the transform sees them, parsed by the same type parsers as a query's rows.
 */
export function decodeSourceRows(text: string, fields: readonly SourceField[]): { key: string; row: SourceRow }[] {
  const parsers = fields.map((f) => sourceValueParser(f.oid));
  const rows: { key: string; row: SourceRow }[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const values = text.slice(start, end).split('\t');
    start = end + 1;
    if (values.length !== fields.length + 1) {
      throw new Error(`a source row has ${values.length - 1} columns where ${fields.length} were described: did the table change?`);
    }
    const row: SourceRow = {};
    for (let i = 0; i < fields.length; i++) {
      const value = values[i + 1]!;
      row[fields[i]!.name] = value === '\\N' ? null : parsers[i]!(unescapeCopyText(value));
    }
    rows.push({ key: unescapeCopyText(values[0]!), row });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Encoding target rows as COPY text

const COPY_SPECIAL = /[\\\t\n\r]/;

function escapeCopyText(text: string): string {
  // Most values have nothing to escape, and a test is cheaper than a replace.
  if (!COPY_SPECIAL.test(text)) return text;
  return text.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

function encodeValue(value: unknown, column: string, kind: ColumnKind | undefined): string {
  const text = postgresInputText(value, column, kind);
  return text === null ? '\\N' : escapeCopyText(text);
}

/**
 * An encoder of one target row into one line of COPY text format (columns in `columns` order,
 * ending in a newline). Throws, naming the key, for a row with a key not in `columns`, and for
 * values that have no database form (functions, symbols, invalid Dates).
 */
export function copyTextEncoder(columns: readonly string[], kinds: ColumnKinds = {}): (row: TargetRow) => string {
  const known = new Set(columns);
  return (row) => {
    if (row === null || typeof row !== 'object' || Array.isArray(row)) {
      throw new TypeError(`a target row must be an object of column: value, not ${Array.isArray(row) ? 'an array' : row === null ? 'null' : `a ${typeof row}`}`);
    }
    for (const key in row) {
      if (!known.has(key) && Object.prototype.hasOwnProperty.call(row, key)) {
        throw new TypeError(`target row has column "${key}", which is not one of transform.columns (${columns.join(', ')})`);
      }
    }
    let line = '';
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      line += (i > 0 ? '\t' : '') + encodeValue(row[column], column, kinds[column]);
    }
    return line + '\n';
  };
}

/** Target rows as COPY text format, for `COPY table (columns) FROM STDIN`. */
export function encodeCopyText(columns: readonly string[], rows: readonly TargetRow[], kinds?: ColumnKinds): string {
  const encode = copyTextEncoder(columns, kinds);
  return rows.map(encode).join('');
}

/** The kinds of the target table's columns (json, integer, numeric, arrays of them; domains looked through). */
export async function targetColumnKinds(pool: pg.Pool, target: TableName): Promise<ColumnKinds> {
  const result = await pool.query<{ name: string; base: string; is_array: boolean }>(
    `SELECT a.attname AS name, coalesce(e.typname, b.typname) AS base, b.typcategory = 'A' AS is_array
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
       LEFT JOIN pg_type el ON el.oid = b.typelem AND b.typcategory = 'A'
       LEFT JOIN pg_type e ON e.oid = CASE WHEN el.typtype = 'd' THEN el.typbasetype ELSE el.oid END
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [qualifiedName(target)],
  );
  return Object.fromEntries(result.rows.map((row) => [row.name, columnKindOf(row.base, row.is_array)]));
}

// ---------------------------------------------------------------------------------------------
// Copying a key range

export interface RowFailure {
  /** The source row's key, as text. */
  key: string;
  error: string;
}

export interface ModuleCopyResult {
  /** Source rows read in the range. */
  read: number;
  /** Target rows inserted; rows already in the target are kept and not counted. */
  written: number;
  /** Source rows whose transform threw or returned no target row, or whose value the target refused. */
  failed: RowFailure[];
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

  private whole: Promise<{ read: number; failed: RowFailure[]; batch: EncodedBatch }> | null = null;

  /** Every part, once the whole range is read and encoded. */
  all(): Promise<{ read: number; failed: RowFailure[]; batch: EncodedBatch }> {
    this.whole ??= this.joined();
    return this.whole;
  }

  private async joined(): Promise<{ read: number; failed: RowFailure[]; batch: EncodedBatch }> {
    await this.reading;
    const parts = await Promise.all(this.parts);
    const texts = parts.map((p) => Buffer.from(p.copyText.buffer, p.copyText.byteOffset, p.copyText.byteLength));
    const copyText = new Uint8Array(texts.reduce((n, t) => n + t.length, 0));
    let offset = 0;
    for (const text of texts) {
      copyText.set(text, offset);
      offset += text.length;
    }
    return {
      read: parts.reduce((n, p) => n + p.read, 0),
      failed: parts.flatMap((p) => p.failed),
      batch: { keys: parts.flatMap((p) => p.keys), lineCounts: parts.flatMap((p) => p.lineCounts), copyText },
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
      const { read, failed } = await encoded.all();
      return { read, written, failed: [...failed, ...failedByTarget] };
    } catch (error) {
      const all = await encoded.all();
      remaining ??= all.batch;
      const index = refusedRowIndex(error, remaining);
      if (index === null || failedByTarget.length >= MAX_REFUSED_ROWS) throw error;
      const column = /\bcolumn ([^:]+):/.exec((error as pg.DatabaseError).where ?? '')?.[1];
      failedByTarget.push({ key: remaining.keys[index]!, error: `the target refused a value${column ? ` of column ${column}` : ''}: ${messageOf(error)}` });
      remaining = withoutRow(remaining, index);
      if (remaining.keys.length === 0) return { read: all.read, written: 0, failed: [...all.failed, ...failedByTarget] };
    }
  }
}
