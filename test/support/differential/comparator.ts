/**
 * The differential tests' own comparator: the md5 of PostgreSQL's text of each row, computed in
 * SQL on both sides, compared key by key. It shares no code with Ferry's verifier on purpose, and
 * it normalises nothing: equal means the same canonical text Postgres gives the value.
 */
import pg from 'pg';

export type Category = 'missing' | 'extra' | 'value';

export interface Difference {
  key: string;
  category: Category;
}

/** How a NULL key shows in differences (Ferry cannot name it; a comparator must). */
export const NULL_KEY = '<NULL key>';

/** Runs SQL in a session whose settings make the row text the same in every database. */
export async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values?: unknown[]): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, application_name: 'differential-comparator' });
  await client.connect();
  try {
    await client.query(`SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, MDY'; SET IntervalStyle TO 'postgres'; SET extra_float_digits TO 1`);
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/**
 * Row digests by key text from a query returning `key` (text) and `digest` (text). Rows that
 * share a key (NULL keys) are kept together as one sorted list.
 */
export async function digests(url: string, select: string): Promise<Map<string, string>> {
  const rows = await query<{ key: string | null; digest: string }>(url, select);
  const byKey = new Map<string, string[]>();
  for (const row of rows) {
    const key = row.key ?? NULL_KEY;
    byKey.set(key, [...(byKey.get(key) ?? []), row.digest]);
  }
  return new Map([...byKey].map(([key, list]) => [key, list.sort().join(',')]));
}

/** `SELECT key, digest` of a table's rows: every column, in order, as one row's text. */
export function tableDigestSql(qualifiedTable: string, keyColumn: string, columns: string[]): string {
  return `SELECT (${quote(keyColumn)})::text AS key, md5(ROW(${columns.map(quote).join(', ')})::text) AS digest FROM ${qualifiedTable}`;
}

/** What differs between the rows expected (through the transform) and the rows found. */
export function differences(expected: Map<string, string>, actual: Map<string, string>): Difference[] {
  const found: Difference[] = [];
  for (const [key, digest] of expected) {
    const other = actual.get(key);
    if (other === undefined) found.push({ key, category: 'missing' });
    else if (other !== digest) found.push({ key, category: 'value' });
  }
  for (const key of actual.keys()) if (!expected.has(key)) found.push({ key, category: 'extra' });
  return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export interface Disagreement {
  key: string;
  comparator: Category | null;
  ferry: Category | null;
}

/** Keys on which two lists of differences disagree (by presence or by category). */
export function disagreements(comparator: Difference[], ferry: Difference[]): Disagreement[] {
  const mine = new Map(comparator.map((d) => [d.key, d.category]));
  const theirs = new Map(ferry.map((d) => [d.key, d.category]));
  const keys = [...new Set([...mine.keys(), ...theirs.keys()])].sort();
  return keys
    .map((key) => ({ key, comparator: mine.get(key) ?? null, ferry: theirs.get(key) ?? null }))
    .filter((d) => d.comparator !== d.ferry);
}

export function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
