/**
 * Values between Postgres's text and JavaScript, exactly: what a module transform receives for
 * each source value, and the Postgres input text of each value it returns. A value passed
 * through untouched is written with the text it was read with; a value that cannot be written
 * exactly fails its row (the encoder throws) instead of arriving changed.
 */
import { isLosslessNumber, LosslessNumber, parse as parseLosslessJson, stringify as stringifyLosslessJson, type NumberStringifier, type ParseOptions } from 'lossless-json';
import pg from 'pg';
import { isJsonNull, jsonNull } from '../../lib/json-values';

// ---------------------------------------------------------------------------------------------
// JSON

/**
 * A JSON number token as the transform sees it: a JavaScript number when that number prints
 * back as the same text, else a LosslessNumber holding its digits (12345678901234567890123,
 * 1.50, 0.0000001, 1e400).
 */
function exactJsonNumber(token: string): number | LosslessNumber {
  return printsBack(token) ? Number(token) : new LosslessNumber(token);
}

/**
 * Whether every number token of a JSON text prints back as written from a JavaScript number,
 * so that the native parser keeps each exactly. A scan, not a parser: it skips strings and
 * reads number tokens.
 */
function plainNumbersOnly(text: string): boolean {
  const length = text.length;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      let end = text.indexOf('"', i + 1);
      for (;;) {
        if (end < 0) return false;
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 92) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      i = end + 1;
    } else if ((c >= 48 && c <= 57) || c === 45) {
      const start = i;
      // Up to 15 digits, not led by 0 or -, with no exponent and no 0 at the end print back as written.
      let plain = c !== 48 && c !== 45;
      let last = 0;
      let point = false;
      for (; i < length; i++) {
        const d = text.charCodeAt(i);
        if (d >= 48 && d <= 57) last = d;
        else if (d === 46) point = true;
        else if (d === 101 || d === 69 || d === 43 || d === 45) plain = false;
        else break;
      }
      if ((!plain || i - start > 15 || (point && last === 48)) && !printsBack(text.slice(start, i))) return false;
    } else i++;
  }
  return true;
}

const printsBack = (token: string) => String(Number(token)) === token;

/** A json (not jsonb) text may repeat a key: the last one counts, as in jsonb and JSON.parse. */
const LOSSLESS_OPTIONS: ParseOptions = { parseNumber: exactJsonNumber, onDuplicateKey: ({ newValue }) => newValue };

/**
 * A json or jsonb value's text as the transform sees it: objects, arrays, strings, booleans and
 * numbers (see exactJsonNumber); JSON `null` at the top is `jsonNull`, so SQL NULL (null) stays
 * apart from it, and a `null` inside is null.
 */
export function parseJsonExact(text: string): unknown {
  if (text === 'null') return jsonNull;
  if (plainNumbersOnly(text)) return JSON.parse(text);
  return parseLosslessJson(text, null, LOSSLESS_OPTIONS);
}


/**
 * What an object is, when JSON's text of it would not carry what it holds; else null. JSON
 * writes an object's own enumerable properties: a Map's entries, a Set's members, a typed
 * array's or ArrayBuffer's bytes, and whatever an instance of a class without such properties
 * holds (a RegExp, an Error, private fields) would all become `{}` or lose their kind. A plain
 * object, an array, a Date, a LosslessNumber, a boxed primitive, an object with a toJSON of its
 * own choosing and a class instance with fields (written as its fields) are written.
 */
function unwrittenObject(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const prototype = Object.getPrototypeOf(value) as object | null;
  if (prototype === Object.prototype || prototype === null) return null;
  if (value instanceof Date || isLosslessNumber(value) || typeof (value as { toJSON?: unknown }).toJSON === 'function') return null;
  if (value instanceof Boolean || value instanceof Number || value instanceof String) return null;
  if (value instanceof Map) return 'a Map';
  if (value instanceof Set) return 'a Set';
  const name = (prototype as { constructor?: { name?: unknown } }).constructor?.name;
  const what = typeof name === 'string' && name !== '' ? name : 'an unnamed class';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `a ${what}`;
  if (Object.keys(value).length > 0) return null;
  return `an instance of ${what} with no fields`;
}

const REFUSED_IN_JSON: NumberStringifier[] = [
  {
    test: (value) => unwrittenObject(value) !== null,
    stringify: (value) => {
      throw new TypeError(`${unwrittenObject(value)}, which JSON would write without its contents; return a plain object or array`);
    },
  },
  {
    test: (value) => (typeof value === 'number' && !Number.isFinite(value)) || (value instanceof Date && Number.isNaN(value.getTime())),
    stringify: (value) => {
      throw new TypeError(value instanceof Date ? 'an invalid Date' : `${String(value)}, which JSON has no number for`);
    },
  },
];

/**
 * A value as JSON text: LosslessNumber and bigint keep their digits, `jsonNull` is null. NaN,
 * Infinity and invalid Dates, which JSON.stringify would silently turn into null, throw, and so
 * does an object whose contents JSON would drop (see unwrittenObject). A property that is
 * undefined, a function or a symbol is left out, as JSON.stringify leaves it out (null in an array).
 */
export function jsonText(value: unknown, column: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    // A bigint: the lossless stringify writes it.
  }
  // Native text is exact unless a value became null (NaN, Infinity, an invalid Date, or a real
  // null or jsonNull), a LosslessNumber became an object, or an object lost its contents (`{}`:
  // a Map, a Set, an instance; `"0":` a typed array): those go the lossless way, which checks.
  if (json !== undefined && !json.includes('null') && !json.includes('isLosslessNumber') && !json.includes('{}') && !json.includes('"0":')) return json;
  try {
    json = stringifyLosslessJson(value, null, undefined, REFUSED_IN_JSON);
  } catch (error) {
    throw new TypeError(`column "${column}" cannot be written as JSON: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (typeof json !== 'string') throw new TypeError(`column "${column}" has a ${typeof value} that JSON cannot represent`);
  return json;
}

// ---------------------------------------------------------------------------------------------
// Source values

const builtinParser = pg.types.getTypeParser as (oid: number, format: 'text' | 'binary') => (value: string) => unknown;
const asIs = (text: string) => text;
const stringArray = builtinParser(1009, 'text');

/**
 * An array parser that keeps an array with explicit bounds (`[0:1]={1,2}`) as its text: a
 * JavaScript array cannot carry the bounds.
 */
function boundsKept(parse: (text: string) => unknown): (text: string) => unknown {
  return (text) => (text.charCodeAt(0) === 91 ? text : parse(text));
}

/**
 * A one-dimensional json or jsonb array as an array of JSON values; one of more dimensions
 * stays text, since a JavaScript array inside could be a dimension or a JSON array.
 */
function jsonArray(text: string): unknown {
  if (text.charCodeAt(0) === 91 || text.startsWith('{{')) return text;
  return (stringArray(text) as (string | null)[]).map((element) => (element === null ? null : parseJsonExact(element)));
}

/**
 * The types a transform receives as JavaScript values, each of which prints back as the text
 * it came from. Every other type arrives as Postgres's text (int8, numeric, dates, times,
 * intervals, uuid, enums, ranges, geometry, ...), and arrays of those as arrays of text.
 */
const SOURCE_PARSERS = new Map<number, (text: string) => unknown>([
  [16, builtinParser(16, 'text')], // bool
  [17, builtinParser(17, 'text')], // bytea: a Buffer
  [21, builtinParser(21, 'text')], // int2
  [23, builtinParser(23, 'text')], // int4
  [26, builtinParser(26, 'text')], // oid
  [700, builtinParser(700, 'text')], // float4: NaN, Infinity, -0 included
  [701, builtinParser(701, 'text')], // float8
  [114, parseJsonExact], // json
  [3802, parseJsonExact], // jsonb
  [1000, boundsKept(builtinParser(1000, 'text'))], // bool[]
  [1001, boundsKept(builtinParser(1001, 'text'))], // bytea[]
  [1005, boundsKept(builtinParser(1005, 'text'))], // int2[]
  [1007, boundsKept(builtinParser(1007, 'text'))], // int4[]
  [1028, boundsKept(builtinParser(1028, 'text'))], // oid[]
  [1021, boundsKept(builtinParser(1021, 'text'))], // float4[]
  [1022, boundsKept(builtinParser(1022, 'text'))], // float8[]
  [199, jsonArray], // json[]
  [3807, jsonArray], // jsonb[]
  // Arrays of types kept as text, whose elements never hold the delimiter unquoted.
  ...[1016, 1231, 1014, 1015, 1008, 1009, 1040, 1041, 651, 1115, 1182, 1185, 1183, 1270, 1187, 2951, 791, 3907].map(
    (oid) => [oid, boundsKept(stringArray)] as [number, (text: string) => unknown],
  ),
]);

/** The parser of a source column's text, by its type's oid (a domain is described as its base type). */
export function sourceValueParser(oid: number): (text: string) => unknown {
  return SOURCE_PARSERS.get(oid) ?? asIs;
}

/** Type parsers for queries that read source rows as a transform sees them (text format only). */
export const sourceRowTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    return format === 'binary' ? builtinParser(oid, format) : sourceValueParser(oid);
  },
} as unknown as pg.CustomTypesConfig;

// ---------------------------------------------------------------------------------------------
// Target values

/**
 * What a target column's type changes in how a JavaScript value is written. In a `json` column
 * every value is JSON (a string becomes a JSON string, true a JSON true); an `integer` column
 * (int2, int4, int8) takes only integral numbers, and neither it nor a `numeric` column takes
 * an integer beyond 2^53 that a JavaScript number does not hold digit for digit; into an array
 * column (`array`, or `json[]`, `integer[]`, `numeric[]` by element type) a JavaScript array
 * becomes an array literal. Without kinds, objects and arrays are JSON.
 */
export type ColumnKind = 'json' | 'integer' | 'numeric' | 'other' | 'array' | 'json[]' | 'integer[]' | 'numeric[]';
export type ColumnKinds = Readonly<Record<string, ColumnKind>>;

/** The kind of a column by its type's name (domains looked through) and whether it is an array of it. */
export function columnKindOf(base: string, isArray: boolean): ColumnKind {
  const scalar = base === 'json' || base === 'jsonb' ? 'json' : ['int2', 'int4', 'int8'].includes(base) ? 'integer' : base === 'numeric' ? 'numeric' : 'other';
  if (!isArray) return scalar;
  return scalar === 'other' ? 'array' : `${scalar}[]`;
}

type ScalarKind = 'json' | 'integer' | 'numeric' | 'other' | undefined;

function bytesOf(value: object): Buffer | null {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function dateText(value: Date, column: string): string {
  if (Number.isNaN(value.getTime())) throw new TypeError(`column "${column}" is an invalid Date`);
  return value.toISOString();
}

/**
 * A number as JavaScript prints it (the shortest text that reads back as the same number; -0
 * as -0). An integer or numeric column refuses what it would not hold exactly: a fraction in an
 * integer column, and an integer beyond 2^53 whose printed digits are not its value (2^60
 * prints as 1152921504606847000); one whose digits are exact is written out in full. A refusal
 * says what kind of number it was, never the number: it is a row's value.
 */
function numberText(value: number, column: string, kind: ScalarKind): string {
  if ((kind === 'integer' || kind === 'numeric') && Number.isInteger(value) && !Number.isSafeInteger(value)) {
    const exact = BigInt(value);
    if (exact !== printedInteger(String(value))) {
      throw new TypeError(`column "${column}" is given an integer beyond 2^53 that JavaScript prints with digits it does not hold; give it as a bigint or a string`);
    }
    return exact.toString();
  }
  if (kind === 'integer' && !Number.isInteger(value)) throw new TypeError(`column "${column}" is an integer column, and is given ${Number.isFinite(value) ? 'a number with a fraction' : String(value)}`);
  return Object.is(value, -0) ? '-0' : String(value);
}

/** The integer a number's printed text (`123`, `1.5e+21`) says, digit for digit. */
function printedInteger(text: string): bigint {
  const [mantissa = '', exponent = '0'] = text.split('e');
  const [whole = '', fraction = ''] = mantissa.split('.');
  return BigInt(whole + fraction) * 10n ** BigInt(Number(exponent) - fraction.length);
}

/** A non-null value as Postgres input text (before COPY escaping), for a column that is not json. */
function valueText(value: unknown, column: string, kind: ScalarKind): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
      return value ? 't' : 'f';
    case 'number':
      return numberText(value, column, kind);
    case 'bigint':
      return value.toString();
    case 'object': {
      const bytes = bytesOf(value as object);
      if (bytes) return `\\x${bytes.toString('hex')}`;
      if (value instanceof Date) return dateText(value, column);
      if (isLosslessNumber(value)) return value.toString();
      if (isJsonNull(value) && kind !== undefined) {
        throw new TypeError(`column "${column}" is not json or jsonb, so it has no JSON null; return null for NULL`);
      }
      return jsonText(value, column);
    }
    default:
      throw new TypeError(`column "${column}" is a ${typeof value}, which has no database value`);
  }
}

/**
 * A JavaScript array as a Postgres array literal: `{"a","b",NULL,{"nested"}}`. In a json array
 * column an array is one dimension of JSON values (an array in it is a JSON array).
 */
function arrayLiteral(values: readonly unknown[], column: string, element: ScalarKind): string {
  let literal = '{';
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (i > 0) literal += ',';
    if (value === null || value === undefined) literal += 'NULL';
    else if (Array.isArray(value) && element !== 'json') literal += arrayLiteral(value, column, element);
    else literal += `"${(element === 'json' ? jsonText(value, column) : valueText(value, column, element)).replace(/["\\]/g, '\\$&')}"`;
  }
  return literal + '}';
}

const ELEMENT_KIND: Partial<Record<ColumnKind, ScalarKind>> = { array: 'other', 'json[]': 'json', 'integer[]': 'integer', 'numeric[]': 'numeric' };

/**
 * A target value as Postgres input text: what a COPY line carries for it, before COPY's own
 * escaping; null for NULL. Verification parses it with the column's type to compare it. Throws,
 * naming the column, for a value that has no database form or cannot be written exactly.
 */
export function postgresInputText(value: unknown, column: string, kind: ColumnKind | undefined): string | null {
  return postgresInputTextOf(column, kind)(value);
}

/** postgresInputText for one column, with what its kind decides worked out once (encoders call it per row). */
export function postgresInputTextOf(column: string, kind: ColumnKind | undefined): (value: unknown) => string | null {
  if (kind === 'json') return (value) => (value === null || value === undefined ? null : jsonText(value, column));
  const element = kind === undefined ? undefined : ELEMENT_KIND[kind];
  if (element !== undefined) {
    return (value) => {
      if (value === null || value === undefined) return null;
      if (Array.isArray(value)) return arrayLiteral(value, column, element);
      if (typeof value === 'string') return value;
      throw new TypeError(`column "${column}" is an array column: give it an array (or an array literal as a string), not a ${typeof value}`);
    };
  }
  const scalar = kind as ScalarKind;
  return (value) => (value === null || value === undefined ? null : typeof value === 'string' ? value : valueText(value, column, scalar));
}
