/**
 * The texts a verification hashes for a value of each type: canonical ones, equal for equal
 * values whatever the session (a worker can compute them too), and the cheaper native ones only
 * Postgres computes, which tell apart exactly the same values.
 */

/** A target column and its type, as pg_attribute and format_type tell. */
export interface ColumnType {
  name: string;
  /** format_type(atttypid, atttypmod), e.g. `numeric(12,2)`, `timestamp with time zone`. */
  type: string;
  /** The type's name after looking through domains (pg_type.typname), e.g. `timestamptz`. */
  base: string;
  /** pg_type.typcategory of the base type (`A` for arrays). */
  category: string;
  /** For a domain, the type it is over as format_type writes it, limit included (`character varying(3)`). */
  domainBase?: string | null;
}

const TIMESTAMP_FORMAT = `'YYYY-MM-DD HH24:MI:SS.US BC'`;

/**
 * A text that is equal for equal values of `column`'s type, whatever the session's settings and
 * however the value was written: timestamps in UTC to the microsecond (in arrays and ranges
 * too), json as jsonb's text (key order does not count), bytea as hex. Other types, numeric
 * among them with its scale (1.50 is not 1.5: Postgres keeps them apart, so Ferry does too),
 * are their own text, which Ferry's sessions print in fixed styles (ISO dates, postgres
 * intervals, exact floats, see connections.ts). NULL stays
 * NULL (callers keep it apart from every text). `value` is SQL of that type, evaluated more than
 * once: pass a column reference.
 */
export function canonicalText(value: string, column: Pick<ColumnType, 'base' | 'category'>): string {
  const finite = (text: string) => `CASE WHEN isfinite(${value}) THEN ${text} ELSE (${value})::text END`;
  if (column.base === '_timestamptz') return utcArrayText(value);
  if (column.category === 'A') return `(${value})::text`;
  switch (column.base) {
    case 'timestamptz':
      return utcText(value);
    case 'tstzrange':
      return utcRangeText(value);
    case 'timestamp':
      return finite(`to_char(${value}, ${TIMESTAMP_FORMAT})`);
    case 'date':
      // As a timestamp, not the session's timestamptz (4714-11-24 BC is out of range east of UTC);
      // past the last timestamp (294276 AD) to_char cannot go, and such a date is its ISO text.
      return finite(`CASE WHEN (${value}) < '294277-01-01' THEN to_char((${value})::timestamp, 'YYYY-MM-DD BC') ELSE (${value})::text END`);
    case 'json':
      return `(${value})::jsonb::text`;
    case 'bytea':
      return `encode(${value}, 'hex')`;
    default:
      return `(${value})::text`;
  }
}

/** A timestamptz in UTC to the microsecond; infinity as itself. */
function utcText(value: string): string {
  return `CASE WHEN isfinite(${value}) THEN to_char((${value}) AT TIME ZONE 'UTC', ${TIMESTAMP_FORMAT}) ELSE (${value})::text END`;
}

/**
 * A timestamptz[] without the session's zone (its text has one): its dimensions and bounds,
 * then its elements in UTC, NULLs kept.
 */
function utcArrayText(value: string): string {
  const elements = `(SELECT array_agg(${utcText('e')} ORDER BY n) FROM unnest(${value}) WITH ORDINALITY AS u(e, n))`;
  return `CASE WHEN (${value}) IS NULL THEN NULL ELSE coalesce(array_dims(${value}), '') || coalesce(${elements}::text, '{}') END`;
}

/** A tstzrange without the session's zone: its bounds in UTC. */
function utcRangeText(value: string): string {
  const bound = (b: string) => `coalesce(${utcText(`${b}(${value})`)}, '')`;
  return (
    `CASE WHEN (${value}) IS NULL THEN NULL WHEN isempty(${value}) THEN 'empty' ELSE ` +
    `CASE WHEN lower_inc(${value}) THEN '[' ELSE '(' END || ${bound('lower')} || ',' || ${bound('upper')} || ` +
    `CASE WHEN upper_inc(${value}) THEN ']' ELSE ')' END END`
  );
}

/**
 * How a chunk's rows are written before they are hashed. `canonical`: as canonicalText writes
 * them, which a worker can compute too (see worker-checksum.ts). `native`: each value as it
 * prints itself wherever that text is already canonical under Ferry's session settings, which
 * saves a cast per value and to_char per timestamp; it tells apart exactly the values
 * `canonical` does, but only Postgres computes it. Both sides of a comparison use one form.
 */
export type DigestForm = 'canonical' | 'native';

/**
 * Base types whose cast to text is their output function (pg_cast holds no cast function for
 * them, unlike bool, bpchar, "char", name, inet and cidr): a record prints such a value exactly
 * as canonicalText's `(value)::text`.
 */
const PRINTS_CANONICAL = new Set(['int2', 'int4', 'int8', 'numeric', 'float4', 'float8', 'text', 'varchar', 'jsonb', 'uuid', 'interval', 'time', 'timetz']);

/**
 * A value for ROW(...) in the `native` form. Timestamps and dates print in ISO (Ferry's
 * DateStyle) to the microsecond, without a zone (a timestamptz is shifted to UTC first), as the
 * text of arrays of timestamps already does in canonicalText: a lossless text, so equal exactly
 * when to_char's is. Every other value is its canonical text.
 */
export function nativeValue(value: string, column: Pick<ColumnType, 'base' | 'category'>): string {
  if (column.base === 'timestamptz') return `timezone(interval '0', ${value})`;
  if (column.base === 'timestamp' || column.base === 'date') return value;
  if (PRINTS_CANONICAL.has(column.base) || (column.category === 'A' && column.base !== '_timestamptz')) return value;
  return canonicalText(value, column);
}
