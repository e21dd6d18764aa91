/** `ferry init`: scaffolds a plan and the target table's DDL from a source table a worker reads. */
import type { Client } from '@temporalio/client';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { scaffoldPlan, scaffoldTargetDdl } from '../lib/scaffold';
import { validatePlan } from '../lib/plan';
import { parse } from 'yaml';
import type { TemporalSettings } from '../lib/settings';
import { describeSourceTable } from '../operator';

export interface InitOptions {
  connection: string;
  table: string;
  targetConnection?: string;
  targetTable?: string;
  name?: string;
  key?: string;
  out?: string;
  ddlOut?: string;
  force?: boolean;
}

/** A problem with what was asked (a missing table, no usable key, a file in the way). */
export class InitError extends Error {
  override name = 'InitError';
}

function splitTable(text: string): { schema: string; table: string } {
  const dot = text.indexOf('.');
  return dot > 0 ? { schema: text.slice(0, dot), table: text.slice(dot + 1) } : { schema: 'public', table: text };
}

export async function scaffold(client: Client, temporal: TemporalSettings, options: InitOptions): Promise<{ plan: string; ddl: string }> {
  const source = splitTable(options.table);
  const description = await describeSourceTable(client, temporal, { connection: options.connection, ...source });
  if (!description.exists) throw new InitError(`table ${source.schema}.${source.table} does not exist in ${options.connection} (as the worker sees it)`);
  const key = options.key ?? description.keyCandidates[0];
  if (!key) throw new InitError(`${source.schema}.${source.table} has no NOT NULL column with a unique index of its own; add one, or name a key with --key`);
  if (!description.columns.some((c) => c.name === key)) throw new InitError(`--key ${key}: no such column in ${source.schema}.${source.table}`);
  const target = options.targetTable ? splitTable(options.targetTable) : { schema: source.schema, table: `${source.table}_v2` };
  const input = {
    name: options.name ?? `${source.table}-to-${target.table}`.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63),
    connection: options.connection,
    targetConnection: options.targetConnection ?? options.connection,
    schema: source.schema,
    table: source.table,
    targetSchema: target.schema,
    targetTable: target.table,
    key,
    columns: description.columns,
    schemaPath: path.join(__dirname, '..', ...(path.basename(path.dirname(__dirname)) === 'dist' ? ['..'] : []), 'schema', 'plan.schema.json'),
  };
  const plan = scaffoldPlan(input);
  validatePlan(parse(plan), 'the scaffolded plan');
  const ddl = scaffoldTargetDdl(input);
  const outputs = [[options.out, plan], [options.ddlOut, ddl]] as const;
  // Both paths are checked before either is written: a refusal leaves no file half of a pair.
  for (const [file] of outputs) {
    if (file && existsSync(file) && !options.force) throw new InitError(`${file} exists; choose another path, or --force to overwrite it; nothing was written`);
  }
  for (const [file, text] of outputs) if (file) writeFileSync(file, text);
  return { plan, ddl };
}
