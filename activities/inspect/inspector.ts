/**
 * Inspector reads both databases before anything is written: tables, key, the transform run
 * on a sample, the size of the job. It never writes, which is what makes a dry run safe.
 */
import type pg from 'pg';
import type { Inspection, TableInspection, TransformSample } from '../../lib/inspection';
import { captureOf } from '../../lib/capture';
import { captureShapeProblem } from './capture-shape';
import { captureSetupProblems } from './capture-setup';
import { rowSecurityProblem } from './row-security';
import { keyOrdersDiffer, keyRangeOrderProblem, nondeterministicTargetProblem } from './key-order';
import { inheritanceProblem } from './inheritance';
import { estimateRows, timedCount } from './row-estimate';
import { partitionKeyAdvice } from './partition-key';
import { partitionValueProblems } from './partition-values';
import { lineageColumn, type Plan } from '../../lib/plan';
import type { Databases } from '../connections';
import { asText } from '../connections';
import { redactErrorText } from '../../lib/errors';
import { sqlFragmentProblem } from '../../lib/sql-fragment';
import { oneStatement, planSqlFragments, readOnly } from '../plan-sql';
import { copySpecOf, sampleSql, type CopySpec } from '../copy/copy-statements';
import { resolveTransformModule, transformDirFromEnv } from '../transform/load';
import type { ColumnKinds } from '../transform/exact-values';
import { targetColumnKinds } from '../transform/copy-text';
import { readSourceRows, sampleOnThread } from '../transform/transform-threads';
import { displayName, ferrySql, ident, planSql, qualifiedName, sql, SOURCE_ALIAS, tableName, type TableName } from '../sql';
import { assignmentProblems, castProblems, expressionProblems, type SampledRow } from '../transform/transform-fit';

const SAMPLE_ROWS = 5;

async function inspectTable(pool: pg.Pool, table: TableName, key: string): Promise<TableInspection> {
  const regclass = qualifiedName(table);
  const columns = await pool.query<{ name: string; type: string; not_null: boolean; has_default: boolean }>(
    sql`SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
               (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS has_default
          FROM pg_attribute a
         WHERE a.attrelid = to_regclass(${regclass}) AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum`,
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
    sql`SELECT EXISTS (
          SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = to_regclass(${regclass}) AND i.indisunique AND i.indnkeyatts = 1
             AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = ${key}) AS unique`,
  );
  inspection.keyIsUnique = unique.rows[0]?.unique ?? false;
  inspection.estimatedRows = await estimateRows(pool, regclass);
  return inspection;
}

/**
 * Keyset batches (`key > $cursor`) and key ranges never reach a NULL key: a key column that can
 * hold NULL would let rows vanish from the copy and from verification alike, so it is refused.
 */
async function nullKeyProblem(pool: pg.Pool, table: TableName, keyName: string, inspection: TableInspection): Promise<string | null> {
  const key = inspection.columns.find((c) => c.name === keyName);
  if (!key || key.notNull) return null;
  const counted = await pool.query<{ rows: string }>(
    sql`SELECT count(*)::text AS rows FROM ${tableName(table)} WHERE ${ident(key.name)} IS NULL`,
  );
  const rows = Number(counted.rows[0]?.rows ?? 0);
  const found =
    rows > 0
      ? `${rows} row${rows === 1 ? ' has' : 's have'} a NULL key and would never be copied`
      : 'no row has a NULL key now, but one written during the migration would never be copied';
  return `source key column "${key.name}" allows NULL; ${found}; add NOT NULL to it or choose another key`;
}

/**
 * What tells a table from every other table, whichever connection reaches it: the server's start
 * time, the database and the table's oid; null when there is no such table.
 */
async function tableIdentity(pool: pg.Pool, table: TableName): Promise<string | null> {
  const { rows } = await pool.query<{ identity: string | null }>(
    sql`SELECT pg_postmaster_start_time()::text || '/' || (SELECT oid FROM pg_database WHERE datname = current_database())::text || '/' || to_regclass(${qualifiedName(table)})::oid::text AS identity`,
  );
  return rows[0]?.identity ?? null;
}

/**
 * The rows a subset selects, as the copier applies it (the plan's subset.where, keyRange,
 * samplePercent, partitionValues): counted, given a few seconds, else the planner's estimate;
 * null when neither answers. Progress and the ETA measure against it, not the whole table.
 */
async function estimateSubsetRows(pool: pg.Pool, spec: CopySpec & { filter: string }): Promise<number | null> {
  const from = sql`FROM ${tableName(spec.source)} AS ${ferrySql(SOURCE_ALIAS)} WHERE ${ferrySql(spec.filter)}`;
  const counted = await timedCount(pool, sql`SELECT count(*)::text AS rows ${from}`);
  if (counted !== null) return counted;
  try {
    const planned = await readOnly(pool, (client) => client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(oneStatement(sql`EXPLAIN (FORMAT JSON) SELECT ${from}`)));
    return planned.rows[0]?.['QUERY PLAN'][0].Plan['Plan Rows'] ?? null;
  } catch {
    return null;
  }
}

/** A value's shape without its content: enough to spot NULLs and empty splits. */
function redact(value: string | null): string | null {
  if (value === null) return null;
  if (value === '') return '<empty>';
  const length = [...value].length;
  return `<${length} char${length === 1 ? '' : 's'}>`;
}

/**
 * What in a module transform's sample breaks the trace verification (and capture's change apply)
 * follows from target row to source row: without a lineage column, one row per source row with
 * the source key as its key; with one, that column holding the source key. `traces` holds each
 * target row's trace value.
 */
function traceProblem(plan: Plan, spec: CopySpec, sourceKey: string, traces: (string | null)[]): string | null {
  const lineage = lineageColumn(plan);
  const column = lineage ?? spec.target.key;
  const mode = captureOf(plan).mode;
  // Capture refuses target.sourceKey: the module itself must keep to one row per key, the key unchanged.
  const advice =
    mode === 'application'
      ? `verification compares each target row with the source row of the same key; set target.sourceKey to the target column that holds the source key each row came from`
      : `capture: ${mode} writes and deletes a changed key's target row by the source key, so the module must return one row per source row, with the source key unchanged as its key`;
  if (!lineage && traces.length > 1) {
    return `transform made ${traces.length} rows from source key "${sourceKey}": ${advice}`;
  }
  const wrong = traces.findIndex((trace) => trace !== sourceKey);
  if (wrong < 0) return null;
  const found = traces[wrong]!;
  return lineage
    ? `transform made a row whose "${column}" (target.sourceKey) is ${found === null ? 'NULL' : `"${found}"`} from source key "${sourceKey}"; it must hold the source key the row came from`
    : `transform made a row with key ${found === null ? 'NULL' : `"${found}"`} from source key "${sourceKey}": ${advice}`;
}

/**
 * The module transform run on a few source rows, on a thread of its own (a module that ends its
 * thread or never returns fails the sample, not the worker): each output row is shown under its
 * source key. The rows are read in a READ ONLY transaction, as one statement: subset.where cannot write.
 */
async function sampleModuleTransform(
  pool: pg.Pool,
  plan: Plan,
  spec: CopySpec,
  modulePath: string,
  transformDir: string | null,
  showValues: boolean,
  problems: string[],
  sampled: SampledRow[],
  kinds: ColumnKinds,
): Promise<TransformSample> {
  const module = await resolveTransformModule(modulePath, transformDir);
  const columns = Object.keys(spec.columns);
  const source = await readSourceRows(pool, spec, { after: null, upTo: null }, SAMPLE_ROWS);
  const result = await sampleOnThread(module, source, { columns, kinds, traceColumn: lineageColumn(plan) ?? spec.target.key });
  const rows: (string | null)[][] = [];
  let reported = false;
  for (const { key, produced } of result.rows) {
    const untraceable = plan.verify.enabled || captureOf(plan).mode !== 'application' ? traceProblem(plan, spec, key, produced.map((row) => row.trace)) : null;
    // One example is enough: the rest of the sample breaks the trace the same way.
    if (untraceable && !reported) problems.push(untraceable);
    reported ||= untraceable !== null;
    for (const row of produced) {
      sampled.push({ sourceKey: key, values: row.texts });
      rows.push([key, ...(showValues ? row.shown : row.shown.map(redact))]);
    }
  }
  // The transform's own message may quote the row: only its summary leaves the thread.
  if (result.threw) throw new Error(`the transform threw on source key ${result.threw.key}: ${result.threw.error}`);
  return { columns: ['ferry source key', ...columns], rows, redacted: !showValues };
}

async function sampleTransform(pool: pg.Pool, spec: CopySpec, showValues: boolean, sampled: SampledRow[]): Promise<TransformSample> {
  const sample = sampleSql(spec, SAMPLE_ROWS);
  // Read-only and one statement, so a transform expression cannot write even on a dry run.
  return readOnly(pool, async (client) => {
    const result = await client.query<(string | null)[]>(oneStatement({ ...sample, types: asText, rowMode: 'array' as const }));
    const names = result.fields.map((f) => f.name);
    for (const row of result.rows) {
      sampled.push({ sourceKey: String(row[0]), values: Object.fromEntries(names.slice(1).map((name, i) => [name, row[i + 1] ?? null])) });
    }
    return {
      columns: result.fields.map((f) => f.name),
      rows: result.rows.map((row) =>
        showValues ? row : row.map((value, i) => (i === 0 ? value : redact(value))),
      ),
      redacted: !showValues,
    };
  });
}

/** A failed sample, said without values: a module's own throw is summarised, a database error redacted. */
function transformProblemText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return `${redactErrorText(error)}${typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? ` [${code}]` : ''}`;
}

export interface InspectInput {
  plan: Plan;
  /** Put real sample values into the result (and so into the workflow history). */
  showSampleValues: boolean;
  /** The migration's id: the names of its replication slot and publication. (Default: none yet) */
  migrationId?: string;
}

/**
 * The view of the old shape a swap would make (capture.oldShapeView): its name must be free, and
 * its expressions must run on the new table's row; found now, not hours later at the swap.
 */
async function oldShapeViewProblems(pool: pg.Pool, plan: Plan): Promise<string[]> {
  const view = captureOf(plan).oldShapeView;
  if (!view || !plan.capture?.swap) return [];
  const name: TableName = { schema: plan.source.schema, table: view.name };
  const taken = await pool.query<{ taken: boolean }>(sql`SELECT to_regclass(${qualifiedName(name)}) IS NOT NULL AS taken`);
  if (taken.rows[0]?.taken) return [`capture.oldShapeView.name: ${displayName(name)} exists already; the swap would create it`];
  const problems: string[] = [];
  for (const [column, expression] of Object.entries(view.columns)) {
    try {
      await readOnly(pool, (client) => client.query(oneStatement(sql`SELECT ${planSql(expression, `capture.oldShapeView.columns.${column}`)} FROM ${tableName(plan.target)} LIMIT 0`)));
    } catch (error) {
      problems.push(`capture.oldShapeView.columns.${column} does not run on ${displayName(plan.target)}: ${transformProblemText(error)}`);
    }
  }
  return problems;
}

export function createInspector(databases: Databases, transformDir: string | null = transformDirFromEnv()) {
  return {
    async inspect({ plan, showSampleValues, migrationId }: InspectInput): Promise<Inspection> {
      // The dry run samples what would really be copied, but reads no tombstones: Ferry's
      // schema may not exist before the first real run.
      const spec = { ...copySpecOf(plan), honourTombstones: false };
      const sourcePool = databases.pool(plan.source.connection);
      const targetPool = databases.pool(plan.target.connection);
      const [source, target] = await Promise.all([
        inspectTable(sourcePool, spec.source, spec.source.key),
        inspectTable(targetPool, spec.target, spec.target.key),
      ]);
      const problems: string[] = planSqlFragments(plan).flatMap(({ path, text }) => {
        const problem = sqlFragmentProblem(text);
        return problem ? [`${path} ${problem}`] : [];
      });
      const warnings: string[] = [];

      if (!source.exists) problems.push(`source table ${source.name} does not exist`);
      else if (!source.keyType) problems.push(`source key column "${spec.source.key}" is not a column of ${source.name}`);
      else {
        if (!source.keyIsUnique) {
          const advice = await partitionKeyAdvice(sourcePool, spec.source, spec.source.key, 'source');
          problems.push(`source key column "${spec.source.key}" has no unique index on it alone; keyset batches need a unique key${advice ? `; ${advice}` : ''}`);
        }
        const nullKeys = await nullKeyProblem(sourcePool, spec.source, spec.source.key, source);
        if (nullKeys) problems.push(nullKeys);
        const shape = await captureShapeProblem(sourcePool, plan, source.name);
        if (shape) problems.push(shape);
        else problems.push(...(await captureSetupProblems(sourcePool, plan, migrationId)));
        const hidden = await rowSecurityProblem(sourcePool, spec.source);
        if (hidden) problems.push(hidden);
        const children = await inheritanceProblem(sourcePool, spec.source, 'source');
        if (children) problems.push(children);
        const badValues = await partitionValueProblems(sourcePool, plan, source);
        problems.push(...badValues);
        if (spec.filter && !badValues.length) Object.assign(source, { estimatedRows: await estimateSubsetRows(sourcePool, { ...spec, filter: spec.filter }), subset: true });
      }

      if (!target.exists) problems.push(`target table ${target.name} does not exist; create it before migrating`);
      else if (source.exists && (await tableIdentity(sourcePool, spec.source)) === (await tableIdentity(targetPool, spec.target))) {
        // The plan's own check sees variable names only; two of them may reach one database.
        problems.push(
          `target table ${target.name} is the source table itself (${plan.source.connection} and ${plan.target.connection} reach the same database); a migration needs a different target`,
        );
      } else {
        problems.push(...(await oldShapeViewProblems(sourcePool, plan)));
        const hidden = await rowSecurityProblem(targetPool, spec.target);
        if (hidden) problems.push(hidden);
        const children = await inheritanceProblem(targetPool, spec.target, 'target');
        if (children) problems.push(children);
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
          const advice = await partitionKeyAdvice(targetPool, spec.target, spec.target.key, 'target');
          problems.push(`target key column "${spec.target.key}" has no unique index on it alone; copies could not be made idempotent${advice ? `; ${advice}` : ''}`);
        }
        const orders = source.keyType ? await keyOrdersDiffer({ pool: sourcePool, table: spec.source, column: spec.source.key }, { pool: targetPool, table: spec.target, column: spec.lineage ?? spec.target.key }) : null;
        const lumped = orders && nondeterministicTargetProblem(plan, orders);
        if (lumped) problems.push(lumped);
        else if (orders && plan.subset?.keyRange) problems.push(keyRangeOrderProblem(plan, orders));
        else if (orders) warnings.push(`source key column "${spec.source.key}" sorts by ${orders.source.name}, the target's by ${orders.target.name}: verification selects target rows by the source's keys, and reads the whole target once a pass for rows no source key reaches`);
        if (target.estimatedRows) {
          warnings.push(`target ${target.name} already holds about ${target.estimatedRows} rows; rows with the same key are kept as they are`);
        }
      }

      let sample: TransformSample | null = null;
      const sameDatabase = databases.sameDatabase(plan.source.connection, plan.target.connection);
      const sqlColumns = plan.transform.module ? null : spec.columns;
      if (problems.length === 0) {
        const sampled: SampledRow[] = [];
        try {
          sample = plan.transform.module
            ? await sampleModuleTransform(sourcePool, plan, spec, plan.transform.module, transformDir, showSampleValues, problems, sampled, await targetColumnKinds(targetPool, spec.target))
            : await sampleTransform(sourcePool, spec, showSampleValues, sampled);
        } catch (error) {
          problems.push(`transform does not run on ${source.name}: ${transformProblemText(error)}`);
          // Name the column the failure is in, when one expression alone fails.
          if (sqlColumns) problems.push(...(await expressionProblems(sourcePool, spec.source, spec.filter ?? null, sqlColumns)));
        }
        if (sample) {
          // The dry run proves the output fits: within one database, that the copy's INSERT
          // plans; everywhere, that each sampled value casts into its column's type.
          const assignments = sqlColumns && sameDatabase ? await assignmentProblems(targetPool, spec.source, spec.target, sqlColumns) : [];
          problems.push(...assignments);
          if (assignments.length === 0) {
            problems.push(...(await castProblems(targetPool, target.name, target.columns, sampled, sqlColumns, showSampleValues)));
          }
        }
      }

      return {
        source,
        target,
        sameDatabase,
        sample,
        problems,
        warnings,
      };
    },
  };
}
