/**
 * The one way Ferry builds SQL: the sql`` template, whose interpolated values become bind
 * parameters numbered $1, $2, ... where the statement is built, and whose names are quoted.
 * Identifiers from a plan are always quoted, so a name with quotes, spaces or SQL in it names an
 * object and never runs; SQL text from a plan enters only through planSql, which checks it.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { escapeIdentifier, escapeLiteral } from 'pg';
import { tableKey } from '../lib/ids';
import { sqlFragmentProblem } from '../lib/sql-fragment';

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

type Part = { text: string } | { value: unknown };

/**
 * A statement or a piece of one: text and the values bound into it, in order. pg takes it as it
 * is (it has `text` and `values`): `pool.query(sql`SELECT ${x}`)`. Fragments nest; a fragment's
 * parameters are numbered from $1 in its own text, and again, in order, in every statement that
 * embeds it.
 */
export class Sql {
  readonly text: string;
  readonly values: unknown[];
  // Private, so that a fragment spreads and compares as the plain { text, values } pg takes.
  readonly #parts: readonly Part[];

  /** @internal Use the sql`` template and the helpers below. */
  constructor(parts: readonly Part[]) {
    this.#parts = parts;
    let text = '';
    const values: unknown[] = [];
    for (const part of parts) {
      if ('text' in part) text += part.text;
      else text += `$${values.push(part.value)}`;
    }
    this.text = text;
    this.values = values;
  }

  get parts(): readonly Part[] {
    return this.#parts;
  }
}

/**
 * sql`SELECT * FROM ${ident('ferry', 'flags')} WHERE migration = ${name}`: a Sql fragment goes
 * in as SQL (its parameters renumbered), anything else as a bind parameter, never as text.
 */
export function sql(strings: TemplateStringsArray, ...args: unknown[]): Sql {
  const parts: Part[] = [];
  strings.forEach((text, i) => {
    if (text) parts.push({ text });
    if (i < args.length) {
      const arg = args[i];
      if (arg instanceof Sql) parts.push(...arg.parts);
      else parts.push({ value: arg });
    }
  });
  return new Sql(parts);
}

/** A quoted name, or a qualified one from its parts: ident('ferry', 'audit') is "ferry"."audit". */
export function ident(...names: string[]): Sql {
  return new Sql([{ text: names.map((name) => quoteIdent(name)).join('.') }]);
}

/** A column of one of Ferry's own aliases (s, t, st), the name quoted: column('s', 'id') is s."id". */
export function column(alias: string, name: string): Sql {
  if (!/^[a-z_]+$/.test(alias)) throw new Error(`not one of Ferry's aliases: ${alias}`);
  return new Sql([{ text: `${alias}.${quoteIdent(name)}` }]);
}

/** An integer Ferry computed, written into the text: for statements that take no parameters, and LIMITs kept in the text. */
export function int(value: number): Sql {
  if (!Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
  return new Sql([{ text: String(value) }]);
}

/** A table's quoted, schema-qualified name. */
export function tableName(name: TableName): Sql {
  return ident(name.schema, name.table);
}

/** Fragments one after another, with `separator` (default ', ') between them. */
export function join(fragments: readonly Sql[], separator: Sql = sql`, `): Sql {
  return new Sql(fragments.flatMap((fragment, i) => (i === 0 ? fragment.parts : [...separator.parts, ...fragment.parts])));
}

/**
 * A value as a quoted literal in the text, for the statements that take no bind parameters
 * (COPY, DDL). Everywhere else a value is a parameter: sql`... ${value}`.
 */
export function literal(value: string): Sql {
  return new Sql([{ text: quoteLiteral(value) }]);
}

/**
 * SQL text from a plan (a transform expression, subset.where, a probe), embedded as it is, in
 * parentheses: the only way such text enters a statement. Refused (non-retryable, naming `path`)
 * unless it is one expression that cannot end Ferry's statement, as lib/sql-fragment defines.
 */
export function planSql(text: string, path: string): Sql {
  const problem = sqlFragmentProblem(text);
  if (problem) throw ApplicationFailure.nonRetryable(`the plan's SQL is refused: ${path} ${problem}`, 'UnsafePlanSql');
  return new Sql([{ text: `(${text})` }]);
}

/**
 * SQL text that Ferry itself wrote elsewhere as a string (a column list shared with the client
 * library, a number Ferry computed): never a plan's text, never a value from a row.
 */
export function ferrySql(text: string): Sql {
  return new Sql([{ text }]);
}
