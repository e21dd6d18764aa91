/**
 * The ways a row can travel through Ferry (SQL in one database, SQL across databases, a
 * JavaScript module one-to-one or one-to-many), with the tables each needs and the SQL that
 * computes, on the source, what the target must hold.
 */
import { quote } from './comparator';
import { sqlTypeOf, type KeyType, type PartitionType, type TableSpec } from './table-spec';

export type TransformPath = 'sql-same-db' | 'sql-across-dbs' | 'js-one-to-one' | 'js-one-to-many';

export const TRANSFORM_PATHS: TransformPath[] = ['sql-same-db', 'sql-across-dbs', 'js-one-to-one', 'js-one-to-many'];

/** The plan fields that name a one-to-many transform's lineage: the target column holding the source key its rows came from. */
export const LINEAGE_PLAN_FIELDS = (column: string): Record<string, unknown> => ({ sourceKey: column });

export interface TargetColumn {
  name: string;
  sqlType: string;
  /** The column's value as SQL over the source row (the SQL transform itself, on SQL paths). */
  sql: string;
}

export interface TargetShape {
  key: string;
  columns: TargetColumn[];
  /** FROM clause over the source (one-to-many joins the rows each source row makes). */
  from: (sourceTable: string) => string;
  /** JavaScript module source, for the module paths. */
  module: string | null;
  /** The source key column in the target, for one-to-many. */
  lineageColumn: string | null;
}

export const KEY_SQL_TYPES: Record<KeyType, string> = { int4: 'int4', int8: 'int8', text: 'text', uuid: 'uuid' };
export const PARTITION_SQL_TYPES: Record<PartitionType, string> = { int4: 'int4', text: 'text', enum: 'mood' };

export const columnName = (index: number, spec: TableSpec) => `c${index}_${spec.columns[index]}`;

/** The source table's columns: key, partition column, then the generated ones. */
export function sourceColumns(spec: TableSpec): { name: string; sqlType: string }[] {
  return [
    { name: 'k', sqlType: KEY_SQL_TYPES[spec.keyType] },
    { name: 'part', sqlType: PARTITION_SQL_TYPES[spec.partType] },
    ...spec.columns.map((type, i) => ({ name: columnName(i, spec), sqlType: sqlTypeOf(type) })),
  ];
}

const ONE_TO_ONE_MODULE = `
module.exports = function transform(row) {
  const derived = row.k === null ? null : String(row.k) + '/' + (row.part === null ? '-' : String(row.part));
  return { ...row, derived };
};`;

/** Each source row makes 1 + (length of its key's text mod 3) rows; keys are int8 or uuid, whose text JS and SQL count alike. */
const ONE_TO_MANY_MODULE = `
module.exports = function transform(row) {
  if (row.k === null) return [];
  const { k, ...payload } = row;
  const count = 1 + (String(k).length % 3);
  return Array.from({ length: count }, (_, ordinal) => ({ tk: String(k) + '#' + ordinal, source_k: k, ordinal, ...payload }));
};`;

export function targetShape(path: TransformPath, spec: TableSpec): TargetShape {
  const passThrough = sourceColumns(spec).map((c) => ({ name: c.name, sqlType: c.sqlType, sql: quote(c.name) }));
  if (path === 'js-one-to-many') {
    return {
      key: 'tk',
      columns: [
        { name: 'tk', sqlType: 'text', sql: `k::text || '#' || ordinal` },
        { name: 'source_k', sqlType: KEY_SQL_TYPES[spec.keyType], sql: 'k' },
        { name: 'ordinal', sqlType: 'int4', sql: 'ordinal' },
        ...passThrough.filter((c) => c.name !== 'k'),
      ],
      from: (source) => `${source} AS s CROSS JOIN LATERAL generate_series(0, length(s.k::text) % 3) AS ordinal`,
      module: ONE_TO_MANY_MODULE,
      lineageColumn: 'source_k',
    };
  }
  return {
    key: 'k',
    columns: [...passThrough, { name: 'derived', sqlType: 'text', sql: `k::text || '/' || coalesce(part::text, '-')` }],
    from: (source) => source,
    module: path === 'js-one-to-one' ? ONE_TO_ONE_MODULE : null,
    lineageColumn: null,
  };
}

/** `SELECT key, digest` on the source: what the target must hold, row by row, through the transform. */
export function expectedDigestSql(shape: TargetShape, sourceTable: string): string {
  const keyColumn = shape.columns.find((c) => c.name === shape.key)!;
  const row = shape.columns.map((c) => `(${c.sql})::${c.sqlType}`).join(', ');
  return `SELECT ((${keyColumn.sql})::${keyColumn.sqlType})::text AS key, md5(ROW(${row})::text) AS digest FROM ${shape.from(sourceTable)}`;
}

/** The target table, with the source's key constraint (UNIQUE when keys may be NULL). */
export function targetDdl(shape: TargetShape, table: string, nullableKey: boolean): string {
  const columns = shape.columns.map((c) => `${quote(c.name)} ${c.sqlType}${c.name === shape.key ? (nullableKey ? ' UNIQUE' : ' PRIMARY KEY') : ''}`);
  return `CREATE TABLE ${table} (${columns.join(', ')})`;
}
