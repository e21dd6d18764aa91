/**
 * Copy format decides whether a copy between two databases may stream binary COPY. Binary skips
 * printing and parsing every value (a timestamp, a numeric), but a binary value is read by the
 * target column's own type: it is exact only when the source sends that very type. So binary is
 * chosen only when each transformed column's type on the source is the target column's type,
 * a built-in one (whose OID and binary form every server of the same major version shares);
 * anything else, a domain, an enum, a cast the target would make, goes as text, as before.
 */
import type pg from 'pg';
import type { CopyFormat, CopySpec } from './copy-statements';
import { serverMajorSql, targetColumnTypesSql, transformTypesSql } from './copy-statements';
import { oneStatement, readOnly } from '../plan-sql';

/** OIDs below this are the server's built-in objects (FirstNormalObjectId). */
const FIRST_USER_OID = 16384;

/** What copyFormatFor compares: a type OID per column on each side, and each server's major version. */
export interface ColumnTypes {
  source: { major: number; types: number[] };
  target: { major: number; types: Map<string, number> };
}

/** Whether the source sends column `i` as the target column's very type, a built-in one. */
function sameBuiltInType(name: string, i: number, types: ColumnTypes): boolean {
  const type = types.source.types[i];
  return type !== undefined && type < FIRST_USER_OID && types.target.types.get(name) === type;
}

/** The format that carries every column of `columns` exactly, given both sides' types. */
export function copyFormatOf(columns: readonly string[], types: ColumnTypes): CopyFormat {
  if (types.source.major !== types.target.major) return 'text';
  return columns.every((name, i) => sameBuiltInType(name, i, types)) ? 'binary' : 'text';
}

/**
 * The columns whose values a copy between two databases converts on the way: each goes as the
 * text the source prints and is read by the target column's input, which is not always what a
 * cast would make (a float8 into numeric keeps every printed digit, a bool into text is `t`).
 * A column of the same built-in type on both sides reads back as itself, in either format.
 */
export function convertedColumnsOf(columns: readonly string[], types: ColumnTypes): ConvertedColumn[] {
  return columns.flatMap((name, i) => (sameBuiltInType(name, i, types) ? [] : [{ name, sourceType: types.source.types[i] ?? null }]));
}

/** A column a copy between two databases converts, with the OID of the type the source sends. */
export interface ConvertedColumn {
  name: string;
  sourceType: number | null;
}

/** Asks both databases for the types of a spec's columns and picks its COPY format. */
export async function copyFormatFor(sourcePool: pg.Pool, targetPool: pg.Pool, spec: CopySpec): Promise<CopyFormat> {
  return copyFormatOf(Object.keys(spec.columns), await columnTypesFor(sourcePool, targetPool, spec));
}

/** The columns a copy of `spec` between two databases converts (see convertedColumnsOf). */
export async function convertedColumnsFor(sourcePool: pg.Pool, targetPool: pg.Pool, spec: CopySpec): Promise<ConvertedColumn[]> {
  return convertedColumnsOf(Object.keys(spec.columns), await columnTypesFor(sourcePool, targetPool, spec));
}

/** The types of a spec's columns on both sides, as the databases describe them. */
async function columnTypesFor(sourcePool: pg.Pool, targetPool: pg.Pool, spec: CopySpec): Promise<ColumnTypes> {
  const [source, target] = await Promise.all([
    readOnly(sourcePool, async (client) => {
      const described = await client.query(oneStatement(transformTypesSql(spec)));
      const major = await client.query<{ major: number }>(serverMajorSql);
      return { major: major.rows[0]!.major, types: described.fields.map((field) => field.dataTypeID) };
    }),
    targetPool.query<{ name: string; type: number; major: number }>(targetColumnTypesSql(spec)),
  ]);
  const major = target.rows[0]?.major ?? -1;
  return { source, target: { major, types: new Map(target.rows.map((row) => [row.name, row.type])) } };
}
