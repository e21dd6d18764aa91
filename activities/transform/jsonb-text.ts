/**
 * JSON as jsonb prints it, written by the worker: the canonical text worker-checksum.ts needs of a
 * json or jsonb value a transform returned (key order, number forms and escapes as Postgres's).
 */
import { isLosslessNumber } from 'lossless-json';


const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Printable ASCII without a quote or backslash: a JSON string of it is the text in quotes. */
const PLAIN_JSON_STRING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * How JSON text is written: as jsonb prints it, or already as it appears inside a quoted field
 * of a record's text (every quote and backslash doubled), which saves a pass over it.
 */
interface JsonStyle {
  quote: string;
  escaped: (json: string) => string;
}

const AS_JSONB: JsonStyle = { quote: '"', escaped: (json) => json };
const IN_RECORD: JsonStyle = { quote: '""', escaped: (json) => json.replace(/["\\]/g, '$&$&') };

function jsonString(text: string, style: JsonStyle): string | undefined {
  if (PLAIN_JSON_STRING.test(text)) return style.quote + text + style.quote;
  // jsonb refuses NUL (\u0000) and lone surrogates: such a row fails in the copier.
  if (text.includes('\0') || (/[\ud800-\udfff]/.test(text) && LONE_SURROGATE.test(text))) return undefined;
  // JSON.stringify escapes exactly as jsonb's output does (\b \f \n \r \t \" \\ and \u00xx).
  return style.escaped(JSON.stringify(text));
}

/**
 * A JavaScript number as jsonb prints it: JSON.stringify's text read as numeric, so exponents
 * are written out (1e+21 becomes 1000000000000000000000, 1.5e-7 becomes 0.00000015).
 */
export function jsonNumberText(value: number): string {
  if (!Number.isFinite(value)) return 'null';
  const text = String(value);
  if (!text.includes('e')) return text === '-0' ? '0' : text;
  const [, sign = '', whole = '', fraction = '', exponent = '0'] = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text)!;
  return sign + shiftPoint(whole, fraction, Number(exponent));
}

/**
 * A JSON number token (a LosslessNumber's digits) as jsonb prints it: plain decimals as they are
 * (jsonb keeps trailing zeros), a negative zero without its sign; undefined for an exponent.
 */
function jsonbNumberOfDigits(token: string): string | undefined {
  if (!/^-?\d+(?:\.\d+)?$/.test(token)) return undefined;
  const digits = token.replace(/^(-?)0+(?=\d)/, '$1');
  return /^-[0.]+$/.test(digits) ? digits.slice(1) : digits;
}

/** The digits `whole.fraction` times 10^exponent, written out in plain decimal. */
export function shiftPoint(whole: string, fraction: string, exponent: number): string {
  const digits = whole + fraction;
  const point = whole.length + exponent;
  if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return digits + '0'.repeat(point - digits.length);
  return `${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Keys that are plain ASCII sort by length, then as JavaScript compares them: as bytes. */
const byLengthThenCodeUnits = (a: string, b: string) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

/** jsonb's key order: shorter first (in UTF-8 bytes), then bytewise. */
function jsonbKeyOrder(keys: string[], plainAscii: boolean): string[] {
  if (plainAscii) return keys.sort(byLengthThenCodeUnits);
  const bytes = new Map(keys.map((k) => [k, Buffer.from(k)]));
  return keys.sort((a, b) => bytes.get(a)!.length - bytes.get(b)!.length || Buffer.compare(bytes.get(a)!, bytes.get(b)!));
}

/**
 * JSON.stringify's text of a value (with its toJSON calls, and undefined and functions left
 * out of objects and null in arrays) as jsonb prints it; null for what JSON.stringify leaves
 * out; undefined when the worker cannot tell.
 */
function jsonValueText(value: unknown, key: string | number, depth: number, style: JsonStyle): string | undefined | null {
  switch (typeof value) {
    case 'string':
      return jsonString(value, style);
    case 'number':
      // The copier refuses what JSON.stringify would turn into null: so does the digest (see digest()).
      if (!Number.isFinite(value)) throw new TypeError(`${value} has no JSON number`);
      return jsonNumberText(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'undefined':
    case 'function':
    case 'symbol':
      return null;
    case 'bigint':
      return value.toString();
  }
  if (value === null) return 'null';
  if (depth > 100) return undefined;
  if (isLosslessNumber(value)) return jsonbNumberOfDigits(value.toString());
  if (value instanceof Date && Number.isNaN(value.getTime())) throw new TypeError('an invalid Date has no JSON form');
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return jsonValueText((value as { toJSON: (key: string) => unknown }).toJSON(String(key)), key, depth + 1, style);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const item = jsonValueText(value[i], i, depth + 1, style);
      if (item === undefined) return undefined;
      out += i > 0 ? ', ' + (item ?? 'null') : (item ?? 'null');
    }
    return out + ']';
  }
  const prototype = Object.getPrototypeOf(value) as unknown;
  // Boxed primitives and other exotic objects: leave them to Postgres.
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  const record = value as Record<string, unknown>;
  const names = Object.keys(record);
  let plainNames = true;
  for (const name of names) {
    if (!PLAIN_JSON_STRING.test(name)) {
      plainNames = false;
      break;
    }
  }
  let out = '{';
  let first = true;
  for (const name of jsonbKeyOrder(names, plainNames)) {
    const member = jsonValueText(record[name], name, depth + 1, style);
    if (member === undefined) return undefined;
    if (member === null) continue;
    const quoted = plainNames ? style.quote + name + style.quote : jsonString(name, style);
    if (quoted === undefined) return undefined;
    out += (first ? '' : ', ') + quoted + ': ' + member;
    first = false;
  }
  return out + '}';
}

/**
 * The text jsonb prints for JSON.stringify(value), the value the copier writes into a json or
 * jsonb column; undefined when the worker cannot tell (or JSON.stringify gives nothing, which
 * the copier refuses).
 */
export function jsonbText(value: unknown): string | undefined {
  return jsonValueText(value, '', 0, AS_JSONB) ?? undefined;
}

/**
 * jsonbText's text as a field of a record's text, its quotes and backslashes already doubled
 * (only the record's own quotes are missing); undefined or null when the worker cannot tell.
 */
export function jsonRecordText(value: unknown): string | undefined | null {
  return jsonValueText(value, '', 0, IN_RECORD);
}
