/**
 * `ferry init`: a plan and the target table's DDL from a source table's shape. The plan copies
 * every column as it is, for a person to reshape; the DDL makes a target that plan fits.
 */
import { stringify } from 'yaml';

export interface ScaffoldColumn {
  name: string;
  type: string;
  notNull: boolean;
}

export interface ScaffoldInput {
  name: string;
  connection: string;
  targetConnection: string;
  schema: string;
  table: string;
  targetSchema: string;
  targetTable: string;
  key: string;
  columns: ScaffoldColumn[];
  /** Where editors find the plan's JSON Schema (the installed package's schema/plan.schema.json). */
  schemaPath: string;
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

export function scaffoldPlan(input: ScaffoldInput): string {
  const plan = {
    name: input.name,
    description: `copy ${input.schema}.${input.table} into ${input.targetSchema}.${input.targetTable}`,
    source: { connection: input.connection, schema: input.schema, table: input.table, key: input.key },
    target: { connection: input.targetConnection, schema: input.targetSchema, table: input.targetTable },
    // Every column as it is; reshape here (target column: SQL expression over the source row).
    transform: { sql: Object.fromEntries(input.columns.map((c) => [c.name, quoteIfNeeded(c.name)])) },
    throttle: { rowsPerSecond: 20000, batchSize: 1000 },
  };
  return [
    `# yaml-language-server: $schema=${input.schemaPath}`,
    `# Made by ferry init from ${input.schema}.${input.table}. Check it with: ferry doctor <this file>`,
    stringify(plan, { lineWidth: 0 }).trimEnd(),
    '',
  ].join('\n');
}

/** An expression naming a column: bare when Postgres reads it back the same, quoted otherwise. */
function quoteIfNeeded(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : quote(name);
}

export function scaffoldTargetDdl(input: ScaffoldInput): string {
  const columns = input.columns.map((c) => `  ${quote(c.name)} ${c.type}${c.notNull ? ' NOT NULL' : ''}`);
  return [
    `-- The target of plan ${input.name}: ${input.schema}.${input.table}'s columns; change it as the plan changes.`,
    `CREATE TABLE ${quote(input.targetSchema)}.${quote(input.targetTable)} (`,
    [...columns, `  PRIMARY KEY (${quote(input.key)})`].join(',\n'),
    ');',
    '',
  ].join('\n');
}
