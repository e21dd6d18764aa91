/** Reads a source table's shape for `ferry init`: columns, their types, and a key to walk. Read-only. */
import type { Databases } from '../connections';
import { qualifiedName, sql } from '../sql';

export interface SourceColumn {
  name: string;
  /** As Postgres writes it (format_type), e.g. `character varying(80)`, `timestamp with time zone`. */
  type: string;
  notNull: boolean;
}

export interface SourceDescription {
  schema: string;
  table: string;
  exists: boolean;
  columns: SourceColumn[];
  /** Single NOT NULL columns with a unique index of their own, primary key first. */
  keyCandidates: string[];
}

export function createSourceDescriber(databases: Databases) {
  return {
    async describeSource({ connection, schema, table }: { connection: string; schema: string; table: string }): Promise<SourceDescription> {
      const pool = databases.pool(connection);
      const regclass = qualifiedName({ schema, table });
      const columns = await pool.query<SourceColumn & { not_null: boolean }>(
        sql`SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
              FROM pg_attribute a
             WHERE a.attrelid = to_regclass(${regclass}) AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum`,
      );
      const keys = await pool.query<{ name: string }>(
        sql`SELECT a.attname AS name
              FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = to_regclass(${regclass}) AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL
               AND i.indexprs IS NULL AND a.attnotnull
             ORDER BY i.indisprimary DESC, a.attnum`,
      );
      return {
        schema,
        table,
        exists: columns.rowCount !== 0,
        columns: columns.rows.map((c) => ({ name: c.name, type: c.type, notNull: c.not_null })),
        keyCandidates: keys.rows.map((k) => k.name),
      };
    },
  };
}
