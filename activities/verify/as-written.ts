/**
 * Values as a write into the target takes them, for the source side of a verification: a
 * length-limited type's value whole where a write refuses what a cast would cut, and a column a
 * copy between two databases converts read from the text the source prints.
 */
import type { ColumnType } from './canonical-text';
import { ferrySql, ident, join, quoteIdent, quoteLiteral, sql, type Sql } from '../sql';

/** Converted columns read as a time in the target's zone (see VerifyShape.localTimes). */
export interface LocalTimes {
  zone: string;
  columns: readonly string[];
}

/** A length-limited character or bit type, alone or as an array's element, as format_type writes it. */
const LENGTH_LIMITED = /^(character varying|character|bit varying|bit)\((\d+)\)((?:\[\])*)$/;
/** Each length-limited type without its limit (a bare `character` or `bit` would mean a length of 1). */
const UNLIMITED: Record<string, string> = { 'character varying': 'varchar', character: 'bpchar', 'bit varying': 'varbit', bit: '"bit"' };

/** The limit of a length-limited column's type, or of the type its domain is over; null for any other. */
function limitOf(column: Pick<ColumnType, 'type' | 'domainBase'>): { name: string; length: string; array: string } | null {
  const own = LENGTH_LIMITED.exec(column.type);
  if (own) return { name: own[1]!, length: own[2]!, array: own[3]! };
  const base = column.domainBase ? LENGTH_LIMITED.exec(column.domainBase) : null;
  return base && !base[3] ? { name: base[1]!, length: base[2]!, array: '' } : null;
}

/**
 * The type a value of `column` is first cast to, before castAsWritten: its type, but for a
 * length-limited type (or a domain over one), the same type without its limit, so that nothing
 * is cut yet.
 */
export function unlimitedType(column: Pick<ColumnType, 'type' | 'domainBase'>): string {
  const limit = limitOf(column);
  return limit ? `${UNLIMITED[limit.name]!}${limit.array}` : column.type;
}

/**
 * A value (SQL naming a value already cast to unlimitedType, referenced more than once) as the
 * column's type takes it in an INSERT or COPY. The two differ where an explicit cast to a
 * length-limited type (or a domain over one) cuts or pads what a write refuses: a string longer
 * than varchar(n) or char(n) by more than trailing spaces, a bit string of another length than
 * bit(n) or longer than varbit(n). Such a value keeps its whole self, so it equals nothing the
 * target can hold and shows as a difference, as the copy shows it as a failed row.
 */
function castAsWritten(value: string, column: Pick<ColumnType, 'type' | 'domainBase'>): string {
  const limit = limitOf(column);
  if (!limit) return value;
  const { name, length, array } = limit;
  const refused = (v: string) =>
    name === 'bit' ? `length(${v}) <> ${length}` : name === 'bit varying' ? `length(${v}) > ${length}` : `char_length(rtrim((${v})::text, ' ')) > ${length}`;
  const condition = array ? `EXISTS (SELECT FROM unnest(${value}) AS e(v) WHERE ${refused('e.v')})` : refused(value);
  return `CASE WHEN ${condition} THEN ${value} ELSE (${value})::${column.type} END`;
}

/**
 * Rows of `inner` as `alias`, each value as castAsWritten makes it: `inner`'s columns are the
 * target's, each cast to unlimitedType, but those in `converted`, which are the source's value
 * and are read here from the text it prints (format's `%s` is the type's output, as COPY's).
 * `inner` itself when no column needs either. OFFSET 0 keeps each expression of `inner`
 * evaluated once.
 */
export function asWritten(types: readonly ColumnType[], inner: Sql, alias: string, converted: readonly string[] = [], localTimes?: LocalTimes): Sql {
  if (!types.some((c) => limitOf(c) || converted.includes(c.name))) return sql`(${inner} OFFSET 0) AS ${ferrySql(alias)}`;
  const value = (c: ColumnType) => {
    const name = `w.${quoteIdent(c.name)}`;
    if (localTimes?.columns.includes(c.name)) return `timezone(${quoteLiteral(localTimes.zone)}, (${name})::timestamp)::${unlimitedType(c)}`;
    // num_nulls, not IS NULL, which a composite of NULL fields passes too.
    return converted.includes(c.name) ? `(CASE WHEN num_nulls(${name}) = 1 THEN NULL ELSE format('%s', ${name}) END)::${unlimitedType(c)}` : name;
  };
  const list = join(types.map((c) => sql`${ferrySql(castAsWritten(value(c), c))} AS ${ident(c.name)}`));
  return sql`(SELECT ${list} FROM (${inner} OFFSET 0) AS w) AS ${ferrySql(alias)}`;
}
