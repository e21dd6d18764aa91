/**
 * Quoting for everything Ferry puts into SQL text. Identifiers from a plan are always quoted,
 * so a name with quotes, spaces or SQL in it names an object and never runs.
 */
import { escapeIdentifier, escapeLiteral } from 'pg';
import { tableKey } from '../lib/ids';

export const quoteIdent = escapeIdentifier;
export const quoteLiteral = escapeLiteral;

export interface TableName {
  schema: string;
  table: string;
}

export function qualifiedName({ schema, table }: TableName): string {
  return `${quoteIdent(schema)}.${quoteIdent(table)}`;
}

/** For messages: how a person would write the name. */
export function displayName(name: TableName): string {
  return tableKey(name);
}

/** How every statement refers to the source row, and so how plan expressions may name it. */
export const SOURCE_ALIAS = 's';
