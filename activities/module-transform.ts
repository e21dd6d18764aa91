/**
 * The module-transform copy path: source rows are read into the worker, mapped by a JavaScript
 * or TypeScript function from the plan (`transform.module`), and written to the target with
 * text COPY through a staging table, so that every value arrives exactly as it left.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { require as tsxRequire } from 'tsx/cjs/api';
import { tsImport } from 'tsx/esm/api';
import type { KeyRange } from '../lib/key-range';
import { writeBatch } from './batch-writer';
import { rangeRowsSql, type CopySpec } from './copy-statements';
import { qualifiedName, type TableName } from './sql';

/**
 * A source row as the transform sees it: column name to value. Values keep their exact content:
 * date, time and interval types are Postgres's own text (microseconds and zone as printed),
 * int8 and numeric are strings, int2, int4 and floats are numbers, bool is boolean, json and
 * jsonb are parsed, bytea is a Buffer, arrays are arrays (of strings for int8, numeric, date and
 * time types), text is a string, NULL is null.
 */
export type SourceRow = Record<string, unknown>;

/**
 * A target row: column name (one of `transform.columns`) to value. A column left out is NULL.
 * Values: null/undefined, string (Postgres input text), number, bigint, boolean, Date, Buffer,
 * or an object or array (JSON; into an array column an array is an array literal). Every value
 * of a json or jsonb column is written as JSON.
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
  return names.length ? `its exports are: ${names.join(', ')}` : 'it exports nothing';
}

async function load(file: string): Promise<RowTransform> {
  const info = await stat(file).catch(() => null);
  if (!info) {
    throw ApplicationFailure.nonRetryable(
      `transform module ${file} does not exist on this worker (relative paths are resolved against the worker's ` +
        `working directory, ${process.cwd()}); deploy the module with the worker or give an absolute path`,
      'TransformModuleNotFound',
    );
  }
  if (!info.isFile()) {
    throw ApplicationFailure.nonRetryable(`transform module ${file} is not a file`, 'TransformModuleNotFound');
  }
  let mod: unknown;
  try {
    mod = await importModule(file);
  } catch (error) {
    throw ApplicationFailure.create({
      message: `transform module ${file} failed to load: ${messageOf(error)}`,
      type: 'TransformModuleInvalid',
      nonRetryable: true,
      cause: error instanceof Error ? error : undefined,
    });
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
 * The row transform of the module at `modulePath` (relative paths are resolved against the
 * worker's working directory). Loaded once per path and process, so a changed module takes
 * effect when the worker restarts; a module that failed to load is tried again on the next call. Fails with a non-retryable ApplicationFailure when the file
 * is missing, does not load, or exports no function.
 */
export function loadTransform(modulePath: string): Promise<RowTransform> {
  const file = path.resolve(process.cwd(), modulePath);
  let transform = loaded.get(file);
  if (!transform) {
    transform = load(file);
    loaded.set(file, transform);
    transform.catch(() => loaded.delete(file));
  }
  return transform;
}

// ---------------------------------------------------------------------------------------------
// Reading source rows

const OID = {
  int8: 20,
  numeric: 1700,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  textArray: 1009,
  int8Array: 1016,
  numericArray: 1231,
  timestampArray: 1115,
  dateArray: 1182,
  timeArray: 1183,
  timestamptzArray: 1185,
  intervalArray: 1187,
  timetzArray: 1270,
} as const;

const asIs = (value: string) => value;
const builtinParser = pg.types.getTypeParser as (oid: number, format: 'text' | 'binary') => (value: string) => unknown;
const textArray = builtinParser(OID.textArray, 'text');

/**
 * Per-query type parsers for source rows. pg's defaults lose information in some types (Date
 * drops microseconds and the original zone; numeric[] becomes floats), so those stay text.
 */
const exactTextOverrides = new Map<number, (value: string) => unknown>([
  [OID.int8, asIs],
  [OID.numeric, asIs],
  [OID.date, asIs],
  [OID.time, asIs],
  [OID.timestamp, asIs],
  [OID.timestamptz, asIs],
  [OID.interval, asIs],
  [OID.timetz, asIs],
  [OID.int8Array, textArray],
  [OID.numericArray, textArray],
  [OID.timestampArray, textArray],
  [OID.dateArray, textArray],
  [OID.timeArray, textArray],
  [OID.timestamptzArray, textArray],
  [OID.intervalArray, textArray],
  [OID.timetzArray, textArray],
]);

export const sourceRowTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (format !== 'binary') {
      const override = exactTextOverrides.get(oid);
      if (override) return override;
    }
    return builtinParser(oid, format ?? 'text');
  },
} as unknown as pg.CustomTypesConfig;

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

// ---------------------------------------------------------------------------------------------
// Encoding target rows as COPY text

const COPY_SPECIAL = /[\\\t\n\r]/;

function escapeCopyText(text: string): string {
  // Most values have nothing to escape, and a test is cheaper than a replace.
  if (!COPY_SPECIAL.test(text)) return text;
  return text.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/**
 * What a target column's type changes in how a JavaScript value is written. In a `json` column
 * every value is JSON (a string becomes a JSON string, true a JSON true); in an `array` column
 * a JavaScript array becomes an array literal. Without kinds, objects and arrays are JSON.
 */
export type ColumnKind = 'json' | 'array' | 'other';
export type ColumnKinds = Readonly<Record<string, ColumnKind>>;

function bytesOf(value: object): Buffer | null {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function dateText(value: Date, column: string): string {
  if (Number.isNaN(value.getTime())) throw new TypeError(`column "${column}" is an invalid Date`);
  return value.toISOString();
}

function jsonText(value: unknown, column: string): string {
  let json: unknown;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`column "${column}" cannot be written as JSON: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  if (typeof json !== 'string') throw new TypeError(`column "${column}" has a ${typeof value} that JSON cannot represent`);
  return json;
}

/** A non-null value as Postgres input text (before COPY escaping). */
function valueText(value: unknown, column: string): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
      return value ? 't' : 'f';
    case 'number':
    case 'bigint':
      return String(value);
    case 'object': {
      const bytes = bytesOf(value as object);
      if (bytes) return `\\x${bytes.toString('hex')}`;
      if (value instanceof Date) return dateText(value, column);
      return jsonText(value, column);
    }
    default:
      throw new TypeError(`column "${column}" is a ${typeof value}, which has no database value`);
  }
}

/** A JavaScript array as a Postgres array literal: `{"a","b",NULL,{"nested"}}`. */
function arrayLiteral(values: readonly unknown[], column: string): string {
  const elements = values.map((element) => {
    if (element === null || element === undefined) return 'NULL';
    if (Array.isArray(element)) return arrayLiteral(element, column);
    return `"${valueText(element, column).replace(/["\\]/g, '\\$&')}"`;
  });
  return `{${elements.join(',')}}`;
}

/**
 * A target value as Postgres input text: what a COPY line carries for it, before COPY's own
 * escaping; null for NULL. Verification parses it with the column's type to compare it.
 */
export function postgresInputText(value: unknown, column: string, kind: ColumnKind | undefined): string | null {
  if (value === null || value === undefined) return null;
  if (kind === 'json') return jsonText(value, column);
  if (kind === 'array' && Array.isArray(value)) return arrayLiteral(value, column);
  return valueText(value, column);
}

function encodeValue(value: unknown, column: string, kind: ColumnKind | undefined): string {
  if (value === null || value === undefined) return '\\N';
  if (kind === 'json') return escapeCopyText(jsonText(value, column));
  if (kind === 'array' && Array.isArray(value)) return escapeCopyText(arrayLiteral(value, column));
  return escapeCopyText(valueText(value, column));
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
      throw new TypeError(`a target row must be an object of column: value, not ${Array.isArray(row) ? 'an array' : String(row)}`);
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

/** The kinds of the target table's columns (json and jsonb, arrays, and domains over them). */
export async function targetColumnKinds(pool: pg.Pool, target: TableName): Promise<ColumnKinds> {
  const result = await pool.query<{ name: string; kind: ColumnKind }>(
    `SELECT a.attname AS name,
            CASE WHEN b.typname IN ('json', 'jsonb') THEN 'json' WHEN b.typcategory = 'A' THEN 'array' ELSE 'other' END AS kind
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [qualifiedName(target)],
  );
  return Object.fromEntries(result.rows.map((row) => [row.name, row.kind]));
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

/** COPY text is sent in chunks of about this many characters. */
const CHUNK_CHARS = 64 * 1024;

/**
 * Rows the target may refuse in one batch (a value its column type does not accept) before the
 * batch fails as a whole: each refusal costs a new COPY of the batch.
 */
const MAX_REFUSED_ROWS = 10;

/** The COPY lines one source row became. */
interface EncodedRow {
  key: string;
  lines: string[];
}

function* chunked(rows: readonly EncodedRow[]): Generator<string> {
  let chunk = '';
  for (const row of rows) {
    for (const line of row.lines) {
      chunk += line;
      if (chunk.length >= CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
  }
  if (chunk) yield chunk;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The index of the source row whose COPY line the target refused, for a data error (SQLSTATE
 * class 22: a value its type does not accept) that Postgres located at a line; otherwise null.
 */
function refusedRowIndex(error: unknown, rows: readonly EncodedRow[]): number | null {
  if (!(error instanceof pg.DatabaseError) || !error.code?.startsWith('22')) return null;
  const line = /\bline (\d+)\b/.exec(error.where ?? '')?.[1];
  if (line === undefined) return null;
  let remaining = Number(line);
  for (let i = 0; i < rows.length; i++) {
    remaining -= rows[i]!.lines.length;
    if (remaining <= 0) return i;
  }
  return null;
}

/**
 * Copies one key range through the transform: reads the range's source rows in key order, maps
 * each with `transform`, and inserts the results into the target in one transaction (COPY into
 * a staging table, then INSERT ... ON CONFLICT DO NOTHING). A row whose transform throws, or
 * returns something that is not a target row, or a value the target's column type refuses, is
 * reported in `failed`, and the others go on; a row is written whole or not at all. Safe to run
 * twice: rows already in the target are kept. Batches are meant to be bounded (at most 100k
 * rows): the range is read in one query.
 */
export async function copyRangeThroughModule(
  sourcePool: pg.Pool,
  targetPool: pg.Pool,
  spec: CopySpec,
  range: KeyRange,
  transform: RowTransform,
): Promise<ModuleCopyResult> {
  const select = rangeRowsSql(spec, range);
  const result = await sourcePool.query<unknown[]>({
    text: select.text,
    values: select.values,
    rowMode: 'array',
    types: sourceRowTypes,
  });
  const names = result.fields.slice(1).map((field) => field.name);

  const columns = Object.keys(spec.columns);
  const encode = copyTextEncoder(columns, await targetColumnKinds(targetPool, spec.target));
  const rows: EncodedRow[] = [];
  const failed: RowFailure[] = [];
  for (const values of result.rows) {
    const key = String(values[0]);
    const row = sourceRowOf(names, values);
    try {
      let output = transform(row);
      if (isThenable(output)) output = await output;
      if (output === undefined) throw new TypeError('the transform returned undefined; return null to skip a row');
      if (output === null) continue;
      const lines = (Array.isArray(output) ? output : [output]).map(encode);
      if (lines.length > 0) rows.push({ key, lines });
    } catch (error) {
      failed.push({ key, error: messageOf(error) });
    }
  }

  const read = result.rows.length;
  for (let refused = 0; ; ) {
    if (rows.length === 0) return { read, written: 0, failed };
    try {
      const written = await writeBatch(targetPool, spec, range, (send) => send(Readable.from(chunked(rows))));
      return { read, written, failed };
    } catch (error) {
      const index = refusedRowIndex(error, rows);
      if (index === null || refused >= MAX_REFUSED_ROWS) throw error;
      refused += 1;
      const [row] = rows.splice(index, 1);
      const column = /\bcolumn ([^:]+):/.exec((error as pg.DatabaseError).where ?? '')?.[1];
      failed.push({ key: row!.key, error: `the target refused a value${column ? ` of column ${column}` : ''}: ${messageOf(error)}` });
    }
  }
}
