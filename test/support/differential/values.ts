/**
 * The column types the differential tests generate, each with the values that break naive
 * copiers, written as PostgreSQL input text so that Postgres (not this code) decides their value.
 */
import fc from 'fast-check';

/**
 * A class of values a known defect mishandles today. A case lists the hazards it leaves out, so
 * the rest of its property still runs in CI; `KNOWN_DEFECTS` in cases.ts names the defect.
 */
export type Hazard =
  /** json numbers beyond a double, json `null`, and numbers whose text a double changes (1.0, 1e400). */
  | 'json-exact'
  /** Arrays whose lower bound is not 1 (`[0:1]={5,6}`). */
  | 'array-lower-bound'
  /** A unique but nullable key, with some keys NULL. */
  | 'null-key'
  /** Rows whose partition column is NULL. */
  | 'null-partition'
  /** float4/float8 negative zero. */
  | 'float-negative-zero'
  /**
   * A source key that goes away while the target keeps it: hard deletes and key changes by the
   * application, and (at the gate) rows deleted from the source or added to the target only.
   */
  | 'source-row-gone'
  /** The application moves rows to another partition value during the copy. */
  | 'partition-change'
  /** The application changes only a numeric's scale (0.00 to 0.0): equal numbers, different text. */
  | 'numeric-scale-only'
  /** `ferry verify` on a migration that has ended (aborted at the gate, here). */
  | 'verify-after-finish'
  /** Dates past the last timestamp (year 294276), up to date's own limit. */
  | 'date-beyond-timestamp';

export interface NastyValue {
  text: string;
  hazard?: Hazard;
}

const v = (text: string, hazard?: Hazard): NastyValue => (hazard ? { text, hazard } : { text });

export const ENUM_LABELS = ['sad', 'ok', 'happy', 'with space', `quote's`, 'ünï "x"'];

/** No lone surrogate: Postgres stores UTF-8, which cannot hold one. */
const wellFormed = (s: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

/** Strings Postgres accepts as text: no NUL, no lone surrogate. */
const textUnit = fc.string({ unit: 'binary', maxLength: 24 }).filter((s) => !s.includes('\0') && wellFormed(s));

const nastyStrings = [
  '', 'NULL', '\\N', '\\', 'tab\there', 'line\nbreak\r\n', '"quoted"', `it's`, '{a,b}', '(1,2)', ' leading', 'trailing ',
  '𝄞 ☃ é', 'e\u0301', '👩‍👩‍👧', 'ünïcødé', ',', 'a"b\\c',
];

const textValue = fc.oneof(fc.constantFrom(...nastyStrings), textUnit);

/** A double's text as Postgres reads it back exactly (String() drops the sign of -0). */
function floatText(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  return Object.is(x, -0) ? '-0' : String(x);
}

function numericText(digits: bigint, scale: number): string {
  const sign = digits < 0n ? '-' : '';
  const body = (digits < 0n ? -digits : digits).toString().padStart(scale + 1, '0');
  return scale === 0 ? `${sign}${body}` : `${sign}${body.slice(0, -scale)}.${body.slice(-scale)}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/** A timestamp between years 1 and 9999, to the microsecond. */
const timestampText = fc
  .record({ y: fc.integer({ min: 1, max: 9999 }), mo: fc.integer({ min: 1, max: 12 }), d: fc.integer({ min: 1, max: 28 }), s: fc.integer({ min: 0, max: 86_399 }), us: fc.integer({ min: 0, max: 999_999 }) })
  .map(({ y, mo, d, s, us }) => `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)} ${pad(Math.floor(s / 3600), 2)}:${pad(Math.floor(s / 60) % 60, 2)}:${pad(s % 60, 2)}.${pad(us, 6)}`);

function arrayLiteral(elements: (string | null)[]): string {
  return `{${elements.map((e) => (e === null ? 'NULL' : `"${e.replace(/[\\"]/g, (c) => `\\${c}`)}"`)).join(',')}}`;
}

/** One- or two-dimensional (rectangular) arrays, with NULL elements. */
function arrayOf(element: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const item = fc.option(element, { freq: 4 });
  const oneDim = fc.array(item, { maxLength: 5 }).map(arrayLiteral);
  const twoDim = fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }))
    .chain(([rows, cols]) => fc.array(fc.array(item, { minLength: cols, maxLength: cols }), { minLength: rows, maxLength: rows }))
    .map((rows) => `{${rows.map(arrayLiteral).join(',')}}`);
  return fc.oneof(oneDim, twoDim);
}

const hex = (bytes: Uint8Array) => `\\x${Buffer.from(bytes).toString('hex')}`;

const jsonText = fc
  .jsonValue({ maxDepth: 2 })
  .map((value) => JSON.stringify(value))
  .filter((text) => text !== undefined && !text.includes('\\u0000') && wellFormed(text));

export const COLUMN_TYPE_NAMES = [
  'bool', 'int4', 'int8', 'numeric', 'float4', 'float8', 'text', 'jsonb', 'timestamptz', 'date', 'interval', 'uuid', 'bytea', 'enum', 'int4_array', 'text_array',
] as const;
export type ColumnTypeName = (typeof COLUMN_TYPE_NAMES)[number];

/** Every generated type: its SQL type, the values known to break copiers, and random ones (never NULL; rows add NULLs). */
export const COLUMN_TYPES: Record<ColumnTypeName, { sql: string; nasty: NastyValue[]; random: fc.Arbitrary<NastyValue> }> = {
  bool: { sql: 'boolean', nasty: [v('t'), v('f')], random: fc.constantFrom(v('t'), v('f')) },
  int4: {
    sql: 'int4',
    nasty: [v('-2147483648'), v('2147483647'), v('0'), v('-1')],
    random: fc.integer().map((n) => v(String(n))),
  },
  int8: {
    sql: 'int8',
    nasty: [v('-9223372036854775808'), v('9223372036854775807'), v('9007199254740993'), v('-9007199254740993'), v('0')],
    random: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((n) => v(String(n))),
  },
  numeric: {
    sql: 'numeric',
    nasty: [
        v('NaN'), v('Infinity'), v('-Infinity'), v('0.000000000000000000000000000001'), v('12345678901234567890123456789.123456789'),
        v('1.50'), v('-0.0'), v('100'), v('1e-20'), v('0.00'),
      ],
    random: fc.tuple(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.integer({ min: 0, max: 30 })).map(([d, s]) => v(numericText(d, s))),
  },
  float4: {
    sql: 'float4',
    nasty: [v('NaN'), v('Infinity'), v('-Infinity'), v('-0', 'float-negative-zero'), v('1.1754944e-38'), v('3.4028235e+38'), v('1e-45'), v('0.1')],
    random: fc.float().map((x) => v(floatText(x), Object.is(x, -0) ? 'float-negative-zero' : undefined)),
  },
  float8: {
    sql: 'float8',
    nasty: [v('NaN'), v('Infinity'), v('-Infinity'), v('-0', 'float-negative-zero'), v('5e-324'), v('1.7976931348623157e+308'), v('0.30000000000000004')],
    random: fc.double().map((x) => v(floatText(x), Object.is(x, -0) ? 'float-negative-zero' : undefined)),
  },
  text: { sql: 'text', nasty: nastyStrings.map((t) => v(t)), random: textUnit.map((t) => v(t)) },
  jsonb: {
    sql: 'jsonb',
    nasty: [
        v('{"big": 12345678901234567890123}', 'json-exact'),
        v('{"pi": 3.14159265358979323846264338327950288}', 'json-exact'),
        v(`{"n": ${'123456789'.repeat(5)}123456}`, 'json-exact'),
        v('null', 'json-exact'),
        v('[1.0, 1e400, -0.0]', 'json-exact'),
        v('{"a": null, "b": [null, {"c": "\\u00e9\\n\\"q\\""}]}'),
        v('{}'), v('[]'), v('"just a string"'), v('true'), v('0.1'),
      ],
    random: // A JSON null at the top is jsonb's null, which is not SQL NULL.
      jsonText.map((t) => v(t, t === 'null' ? 'json-exact' : undefined)),
  },
  timestamptz: {
    sql: 'timestamptz',
    nasty: [
        v('infinity'), v('-infinity'), v('2024-02-29 23:59:59.999999+00'), v('1970-01-01 00:00:00.000001+00'), v('0001-01-01 00:00:00+00'),
        v('2000-01-01 00:00:00+14'), v('0044-03-15 12:00:00.5+00 BC'), v('294276-12-31 23:59:59.999999+00'),
      ],
    random: fc.tuple(timestampText, fc.integer({ min: -12, max: 14 })).map(([t, zone]) => v(`${t}${zone < 0 ? '-' : '+'}${pad(Math.abs(zone), 2)}`)),
  },
  date: {
    sql: 'date',
    nasty: [v('infinity'), v('-infinity'), v('2000-02-29'), v('0001-01-01'), v('4713-01-01 BC'), v('5874897-12-31', 'date-beyond-timestamp')],
    random: timestampText.map((t) => v(t.slice(0, 10))),
  },
  interval: {
    sql: 'interval',
    nasty: [
        v('1 year 2 mons 3 days 04:05:06.789012'), v('-1 days +02:00:00'), v('00:00:00'), v('178000000 years'), v('-00:00:00.000001'),
        v('1 mon -1 days'), v('infinity'), v('-infinity'),
      ],
    random: fc.tuple(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: -400, max: 400 }), fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }))
        .map(([months, days, us]) => v(`${months} mons ${days} days ${us} microseconds`)),
  },
  uuid: {
    sql: 'uuid',
    nasty: [v('00000000-0000-0000-0000-000000000000'), v('ffffffff-ffff-ffff-ffff-ffffffffffff')],
    random: fc.uuid().map((u) => v(u)),
  },
  bytea: {
    sql: 'bytea',
    nasty: [v('\\x'), v('\\x00'), v('\\x5c78')],
    random: fc.uint8Array({ maxLength: 32 }).map((b) => v(hex(b))),
  },
  enum: { sql: 'mood', nasty: ENUM_LABELS.map((l) => v(l)), random: fc.constantFrom(...ENUM_LABELS.map((l) => v(l))) },
  int4_array: {
    sql: 'int4[]',
    nasty: [v('{}'), v('{NULL}'), v('{{1,NULL},{NULL,4}}'), v('[0:1]={5,6}', 'array-lower-bound'), v('[-2:-1][3:3]={{7},{8}}', 'array-lower-bound')],
    random: arrayOf(fc.integer().map(String)).map((t) => v(t)),
  },
  text_array: {
    sql: 'text[]',
    nasty: [v('{}'), v('{NULL,"NULL",""}'), v('{{"a b","{c}"},{NULL,"\\\\"}}')],
    random: arrayOf(textValue).map((t) => v(t)),
  },
} as const;


/**
 * Values of `type` that avoid `excluded` hazards, or NULL about one time in `nullEvery`. With a
 * `focus` hazard, the values that carry it come up often, so a run shows the defect it is about.
 */
export function valueOf(type: ColumnTypeName, excluded: readonly Hazard[], nullEvery = 6, focus: Hazard | null = null): fc.Arbitrary<string | null> {
  const { nasty, random } = COLUMN_TYPES[type];
  const allowed = (value: NastyValue) => !value.hazard || !excluded.includes(value.hazard);
  const focused = nasty.filter((value) => focus !== null && value.hazard === focus);
  const choices: fc.WeightedArbitrary<NastyValue>[] = [{ arbitrary: random.filter(allowed), weight: 2 }];
  if (nasty.some(allowed)) choices.push({ arbitrary: fc.constantFrom(...nasty.filter(allowed)), weight: 2 });
  if (focused.length > 0) choices.push({ arbitrary: fc.constantFrom(...focused), weight: 3 });
  return fc.option(fc.oneof(...choices).map((value) => value.text), { freq: nullEvery });
}
