/**
 * Chunk checksums of a module transform's rows, computed in the worker. The rows a JavaScript
 * transform makes exist only in the worker; rather than send them to Postgres to be made
 * canonical, the worker writes the same canonical texts that verify-statements' canonicalText
 * makes in SQL, the same record text, and the same digest (see rowDigestSum), so a clean chunk
 * costs one SQL checksum on the target and nothing more.
 *
 * The worker knows the canonical text of the common types only, and of their plain input forms.
 * For anything else it answers `undefined` (cannot tell) and the verifier compares the chunk in
 * Postgres. A worker digest that differs is never a verdict either: the verifier then reads the
 * chunk row by row through Postgres, so a gap here costs time, never a wrong answer.
 */
import crypto from 'node:crypto';
import { columnKindOf, postgresInputText } from './exact-values';
import type { ColumnType } from '../verify/verify-statements';
import { jsonRecordText, shiftPoint } from './jsonb-text';

// ---------------------------------------------------------------------------------------------
// Scalars, from their Postgres input text

const INTEGER_RANGE: Record<string, [bigint, bigint]> = {
  int2: [-32768n, 32767n],
  int4: [-2147483648n, 2147483647n],
  int8: [-9223372036854775808n, 9223372036854775807n],
};

const PLAIN_INTEGER = /^-?(0|[1-9]\d{0,14})$/;

function integerText(text: string, base: string): string | undefined {
  if (PLAIN_INTEGER.test(text)) {
    if (text === '-0') return '0';
    if (base === 'int8' || text.length < 5) return text;
  }
  if (!/^[+-]?\d{1,30}$/.test(text)) return undefined;
  const value = BigInt(text);
  const [min, max] = INTEGER_RANGE[base]!;
  return value < min || value > max ? undefined : value.toString();
}

/**
 * numeric's output for its input text, scale kept: Postgres keeps the digits written after the
 * point (1.50 stays 1.50; 1.50e1 is 15.0), and a numeric(p,s) column pads or rounds to s.
 * `scale` is the column's, null for a numeric without one; undefined when Postgres must say
 * (rounding, overflow, NaN, Infinity).
 */
function numericText(text: string, scale: number | null, precision: number | null): string | undefined {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,3}))?$/.exec(text);
  if (!match || (match[2] === '' && !match[3])) return undefined;
  let whole = match[2]!;
  let fraction = match[3] ?? '';
  if (match[4] !== undefined) {
    const exponent = Number(match[4]);
    const [shiftedWhole = '', shiftedFraction = ''] = shiftPoint(whole, fraction, exponent).split('.');
    // numeric_in's display scale: the digits written after the point, less the exponent.
    const displayScale = Math.max(0, fraction.length - exponent);
    [whole, fraction] = [shiftedWhole, shiftedFraction.padEnd(displayScale, '0').slice(0, displayScale)];
  }
  whole = whole.replace(/^0+/, '') || '0';
  if (scale !== null) {
    // Zeros past the column's scale go without rounding; any other digit is Postgres's to round.
    const kept = fraction.slice(0, scale);
    if (/[^0]/.test(fraction.slice(scale))) return undefined;
    fraction = kept.padEnd(scale, '0');
    if (precision !== null && (whole === '0' ? 0 : whole.length) > precision - scale) return undefined;
  }
  const zero = /^0$/.test(whole) && !/[^0]/.test(fraction);
  return (match[1] === '-' && !zero ? '-' : '') + whole + (fraction ? `.${fraction}` : '');
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const TIMESTAMP_INPUT =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?$/;

/** The number written by `count` digits at `start` (already known to be digits). */
function digitsAt(text: string, start: number, count: number): number {
  let n = 0;
  for (let i = start; i < start + count; i++) n = n * 10 + text.charCodeAt(i) - 48;
  return n;
}

const UTC_MICROSECONDS = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}\+00$/;

const pad = (n: number, width: number) => String(n).padStart(width, '0');

/**
 * to_char(value, 'YYYY-MM-DD HH24:MI:SS.US BC') of a timestamp's input text, in UTC for
 * timestamptz (the zone is required: without one, the session's decides) and as written for
 * timestamp (which ignores a zone). `precision` is the column's, e.g. 3 for timestamptz(3).
 */
function timestampText(text: string, withZone: boolean, precision: number | null): string | undefined {
  if (text === 'infinity' || text === '-infinity') return text;
  // Postgres's own output in UTC, as a source row usually carries it: only the suffix changes.
  if (text.length === 29 && (precision === null || precision >= 6) && UTC_MICROSECONDS.test(text)) {
    const year = digitsAt(text, 0, 4);
    const month = digitsAt(text, 5, 2);
    const day = digitsAt(text, 8, 2);
    const valid =
      year >= 1000 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) &&
      digitsAt(text, 11, 2) <= 23 && digitsAt(text, 14, 2) <= 59 && digitsAt(text, 17, 2) <= 59;
    return valid ? text.slice(0, 26) + ' AD' : undefined;
  }
  const m = TIMESTAMP_INPUT.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i]));
  const fraction = (m[7] ?? '').padEnd(6, '0');
  if (precision !== null && precision < 6 && /[1-9]/.test(fraction.slice(precision))) return undefined;
  if (year! < 1000 || month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth(year!, month!)) return undefined;
  if (hour! > 23 || minute! > 59 || second! > 59) return undefined;
  const zoned = m[8] !== undefined || m[9] !== undefined;
  let offsetSeconds = 0;
  if (withZone) {
    if (!zoned) return undefined;
    if (m[9]) offsetSeconds = (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 3600 + Number(m[11] ?? 0) * 60 + Number(m[12] ?? 0));
  }
  const date = `${m[1]}-${m[2]}-${m[3]}`;
  if (offsetSeconds === 0) return `${date} ${m[4]}:${m[5]}:${m[6]}.${fraction} AD`;
  // Date arithmetic on whole seconds is exact; the fraction does not move.
  const utc = new Date(Date.UTC(year!, month! - 1, day!, hour!, minute!, second!) - offsetSeconds * 1000);
  const y = utc.getUTCFullYear();
  if (y < 1000 || y > 9999) return undefined;
  return (
    `${y}-${pad(utc.getUTCMonth() + 1, 2)}-${pad(utc.getUTCDate(), 2)} ` +
    `${pad(utc.getUTCHours(), 2)}:${pad(utc.getUTCMinutes(), 2)}:${pad(utc.getUTCSeconds(), 2)}.${fraction} AD`
  );
}

function dateText(text: string): string | undefined {
  if (text === 'infinity' || text === '-infinity') return text;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return undefined;
  const [year, month, day] = [1, 2, 3].map((i) => Number(m[i]));
  if (year! < 1000 || month! < 1 || month! > 12 || day! < 1 || day! > daysInMonth(year!, month!)) return undefined;
  return `${text} AD`;
}

const BOOLEAN_TEXT: Record<string, string> = { t: 'true', true: 'true', f: 'false', false: 'false' };

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The number in a type's modifier: 6 in `timestamp(6) with time zone`; [12, 2] in `numeric(12,2)`. */
function typeModifier(type: string): number[] {
  const found = /\(([\d,\s]+)\)/.exec(type);
  return found ? found[1]!.split(',').map((n) => Number(n.trim())) : [];
}

/**
 * The canonical text, from a value's Postgres input text (what the copier writes), that
 * canonicalText gives in SQL for a column of this type; null when the worker does not know the
 * type at all.
 */
export function inputTextCanonical(column: Pick<ColumnType, 'base' | 'category' | 'type'>): ((text: string) => string | undefined) | null {
  if (column.category === 'A') return null;
  const modifier = typeModifier(column.type);
  switch (column.base) {
    case 'text':
    case 'varchar':
      // A value Postgres would refuse (NUL) or cut (trailing spaces past varchar(n)) differs from
      // every target text, so the chunk goes to Postgres.
      return (text) => text;
    case 'int2':
    case 'int4':
    case 'int8':
      return (text) => integerText(text, column.base);
    case 'numeric':
      return (text) => numericText(text, modifier.length === 2 ? modifier[1]! : modifier.length === 1 ? 0 : null, modifier[0] ?? null);
    case 'bool':
      return (text) => BOOLEAN_TEXT[text];
    case 'uuid':
      return (text) => (UUID.test(text) ? text.toLowerCase() : undefined);
    case 'bytea':
      return (text) => (/^\\x(?:[0-9a-fA-F]{2})*$/.test(text) ? text.slice(2).toLowerCase() : undefined);
    case 'date':
      return dateText;
    case 'timestamp':
    case 'timestamptz': {
      const precision = modifier.length === 1 ? modifier[0]! : null;
      return (text) => timestampText(text, column.base === 'timestamptz', precision);
    }
    default:
      return null;
  }
}

/** record_out quotes a field that is empty or has a quote, backslash, parenthesis, comma or (ASCII) space. */
const NEEDS_QUOTES = /["\\(), \t\n\r\v\f]/;

/** A canonical column text as a field of a record's text (see rowText): NULL is nothing, '' is "". */
export function recordField(text: string | null): string {
  if (text === null) return '';
  if (text !== '' && !NEEDS_QUOTES.test(text)) return text;
  return `"${text.replace(/["\\]/g, '$&$&')}"`;
}

/** recordField, for the types whose canonical texts are known to need quotes or not. */
function fieldOfCanonical(base: string): (text: string) => string {
  switch (base) {
    case 'int2':
    case 'int4':
    case 'int8':
    case 'numeric':
    case 'bool':
    case 'uuid':
      // Digits, signs, points, hex and words: never quoted.
      return (text) => text;
    case 'date':
    case 'timestamp':
    case 'timestamptz':
      // ' AD' has a space; infinity has none.
      return (text) => (text.endsWith(' AD') ? `"${text}"` : text);
    default:
      return recordField;
  }
}

/**
 * A column's field in a row's record text, made by the worker from the value a transform
 * returned for it (the value the copier writes); undefined when the worker cannot tell.
 */
export type WorkerField = (value: unknown) => string | undefined;

/** How the worker writes a target column's record field; null when it does not know the column's type. */
export function workerFieldOf(column: ColumnType): WorkerField | null {
  const kind = columnKindOf(column.base, column.category === 'A');
  if (column.base === 'json' || column.base === 'jsonb') {
    return (value) => {
      if (value === null || value === undefined) return '';
      const json = jsonRecordText(value);
      if (json === undefined || json === null) return undefined;
      // Written with doubled quotes already: only the record's own quotes are missing. An object
      // with a member has a quote (and testing it would copy the text once more).
      return (json.length > 2 && json.charCodeAt(0) === 123) || NEEDS_QUOTES.test(json) ? `"${json}"` : json;
    };
  }
  const canonical = inputTextCanonical(column);
  if (!canonical) return null;
  const field = fieldOfCanonical(column.base);
  return (value) => {
    // Throws for a value the copier refuses, so the row is left out as the copier leaves it out.
    const text = postgresInputText(value, column.name, kind);
    if (text === null) return '';
    const found = canonical(text);
    return found === undefined ? undefined : field(found);
  };
}

// ---------------------------------------------------------------------------------------------
// Chunks

/** crypto.hash (Node 20.12 on) is the one-shot form, and the quickest. */
const md5Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('md5', text, 'hex')
    : (text) => crypto.createHash('md5').update(text).digest('hex');

/**
 * The count and digest of a set of rows, as chunkChecksumSql computes them: the sum of the first
 * 64 bits of the md5 of each row's record text (`(field,field,...)`), as signed integers.
 */
export class ChunkDigest {
  rows = 0;
  // Two 32-bit halves summed apart stay exact in doubles up to 2^21 rows; then they are folded.
  private high = 0;
  private low = 0;
  private folded = 0n;

  add(recordText: string): void {
    const hex = md5Hex(recordText);
    this.high += parseInt(hex.slice(0, 8), 16) | 0;
    this.low += parseInt(hex.slice(8, 16), 16);
    this.rows += 1;
    if (this.rows % 1_000_000 === 0) this.fold();
  }

  /** The digest as Postgres prints it. */
  digest(): string {
    this.fold();
    return this.folded.toString();
  }

  private fold(): void {
    this.folded += BigInt(this.high) * 4294967296n + BigInt(this.low);
    this.high = 0;
    this.low = 0;
  }
}
