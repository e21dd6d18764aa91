/**
 * Inspector reads both databases before anything is written: tables, key, the transform run
 * on a sample, the size of the job. It never writes, which is what makes a dry run safe.
 */
import type pg from 'pg';
import type { Inspection, TableInspection, TransformSample } from '../lib/inspection';
import type { Plan } from '../lib/plan';
import type { Databases } from './connections';
import { asText, withClient } from './connections';
import { copySpecOf, rangeRowsSql, sampleSql, type CopySpec } from './copy-statements';
import { loadTransform, sourceRowTypes } from './module-transform';
import { stringify as stringifyLosslessJson } from 'lossless-json';
import { displayName, qualifiedName, type TableName } from './sql';

const SAMPLE_ROWS = 5;
const COUNT_TIMEOUT_MS = 5_000;

async function inspectTable(pool: pg.Pool, table: TableName, key: string): Promise<TableInspection> {
  const regclass = qualifiedName(table);
  const columns = await pool.query<{ name: string; type: string; not_null: boolean; has_default: boolean }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
            (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [regclass],
  );
  const exists = columns.rowCount !== 0;
  const inspection: TableInspection = {
    name: displayName(table),
    exists,
    columns: columns.rows.map((c) => ({ name: c.name, type: c.type, notNull: c.not_null, hasDefault: c.has_default })),
    estimatedRows: null,
    keyType: columns.rows.find((c) => c.name === key)?.type ?? null,
    keyIsUnique: false,
  };
  if (!exists) return inspection;

  const unique = await pool.query<{ unique: boolean }>(
    `SELECT EXISTS (
       SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1
          AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2) AS unique`,
    [regclass, key],
  );
  inspection.keyIsUnique = unique.rows[0]?.unique ?? false;
  inspection.estimatedRows = await estimateRows(pool, regclass);
  return inspection;
}

/** Planner statistics when there are any; otherwise an exact count, given a few seconds. */
async function estimateRows(pool: pg.Pool, regclass: string): Promise<number | null> {
  const stats = await pool.query<{ estimate: string }>(
    `SELECT reltuples::bigint::text AS estimate FROM pg_class WHERE oid = to_regclass($1)`,
    [regclass],
  );
  const estimate = Number(stats.rows[0]?.estimate ?? -1);
  if (estimate >= 0) return estimate;
  try {
    return await withClient(pool, async (client) => {
      await client.query('BEGIN READ ONLY');
      await client.query(`SET LOCAL statement_timeout = ${COUNT_TIMEOUT_MS}`);
      const counted = await client.query<{ rows: string }>(`SELECT count(*)::text AS rows FROM ${regclass}`);
      await client.query('ROLLBACK');
      return Number(counted.rows[0]?.rows);
    });
  } catch {
    return null;
  }
}

/** A value's shape without its content: enough to spot NULLs and empty splits. */
function redact(value: string | null): string | null {
  if (value === null) return null;
  if (value === '') return '<empty>';
  return `<${[...value].length} chars>`;
}

/** How a value a module transform returned would read in a table. */
function displayValue(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (typeof value === 'object') return stringifyLosslessJson(value) ?? String(value);
  return String(value);
}

/** The module transform run on a few source rows: each output row is shown under its source key. */
async function sampleModuleTransform(pool: pg.Pool, spec: CopySpec, modulePath: string, showValues: boolean): Promise<TransformSample> {
  const transform = await loadTransform(modulePath);
  const { text, values } = rangeRowsSql(spec, { after: null, upTo: null }, SAMPLE_ROWS);
  const result = await pool.query<unknown[]>({ text, values, rowMode: 'array', types: sourceRowTypes });
  const names = result.fields.slice(1).map((f) => f.name);
  const columns = Object.keys(spec.columns);
  const rows: (string | null)[][] = [];
  for (const values of result.rows) {
    const key = String(values[0]);
    const output = await transform(Object.fromEntries(names.map((name, i) => [name, values[i + 1]])));
    for (const row of output === null ? [] : Array.isArray(output) ? output : [output]) {
      const shown = columns.map((column) => displayValue((row as Record<string, unknown>)[column]));
      rows.push([key, ...(showValues ? shown : shown.map(redact))]);
    }
  }
  return { columns: ['ferry source key', ...columns], rows, redacted: !showValues };
}

async function sampleTransform(pool: pg.Pool, spec: CopySpec, showValues: boolean): Promise<TransformSample> {
  const { text, values } = sampleSql(spec, SAMPLE_ROWS);
  return withClient(pool, async (client) => {
    // Read-only, so a transform expression cannot write even on a dry run.
    await client.query('BEGIN READ ONLY');
    const result = await client.query<(string | null)[]>({ text, values, types: asText, rowMode: 'array' });
    await client.query('ROLLBACK');
    return {
      columns: result.fields.map((f) => f.name),
      rows: result.rows.map((row) =>
        showValues ? row : row.map((value, i) => (i === 0 ? value : redact(value))),
      ),
      redacted: !showValues,
    };
  });
}

export interface InspectInput {
  plan: Plan;
  /** Put real sample values into the result (and so into the workflow history). */
  showSampleValues: boolean;
}

export function createInspector(databases: Databases) {
  return {
    async inspect({ plan, showSampleValues }: InspectInput): Promise<Inspection> {
      // The dry run samples what would really be copied, but reads no tombstones: Ferry's
      // schema may not exist before the first real run.
      const spec = { ...copySpecOf(plan), honourTombstones: false };
      const sourcePool = databases.pool(plan.source.connection);
      const targetPool = databases.pool(plan.target.connection);
      const [source, target] = await Promise.all([
        inspectTable(sourcePool, spec.source, spec.source.key),
        inspectTable(targetPool, spec.target, spec.target.key),
      ]);
      const problems: string[] = [];
      const warnings: string[] = [];

      if (!source.exists) problems.push(`source table ${source.name} does not exist`);
      else if (!source.keyType) problems.push(`source key column "${spec.source.key}" is not a column of ${source.name}`);
      else if (!source.keyIsUnique)
        problems.push(`source key column "${spec.source.key}" has no unique index on it alone; keyset batches need a unique key`);

      if (!target.exists) problems.push(`target table ${target.name} does not exist; create it before migrating`);
      else {
        const targetColumns = new Set(target.columns.map((c) => c.name));
        for (const column of Object.keys(spec.columns)) {
          if (!targetColumns.has(column)) problems.push(`transform column "${column}" is not a column of ${target.name}`);
        }
        for (const column of target.columns) {
          if (column.notNull && !column.hasDefault && !(column.name in spec.columns)) {
            problems.push(`target column "${column.name}" is NOT NULL without a default, and the transform does not fill it`);
          }
        }
        if (target.keyType && !target.keyIsUnique) {
          problems.push(
            `target key column "${spec.target.key}" has no unique index on it alone; copies could not be made idempotent`,
          );
        }
        if (target.estimatedRows) {
          warnings.push(`target ${target.name} already holds about ${target.estimatedRows} rows; rows with the same key are kept as they are`);
        }
      }

      let sample: TransformSample | null = null;
      if (problems.length === 0) {
        try {
          sample = plan.transform.module
            ? await sampleModuleTransform(sourcePool, spec, plan.transform.module, showSampleValues)
            : await sampleTransform(sourcePool, spec, showSampleValues);
        } catch (error) {
          problems.push(`transform does not run on ${source.name}: ${(error as Error).message}`);
        }
      }

      return {
        source,
        target,
        sameDatabase: databases.sameDatabase(plan.source.connection, plan.target.connection),
        sample,
        problems,
        warnings,
      };
    },
  };
}
