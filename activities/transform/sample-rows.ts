/**
 * What a dry run shows of a module transform's output, made on the transform thread that ran it:
 * each target row's values as they would read in a table, the text the copy would write, and
 * the value verification traces back to the source key.
 */
import { stringify as stringifyLosslessJson } from 'lossless-json';
import { postgresInputText, type ColumnKinds } from './exact-values';
import type { TargetRow } from './rows';

/** One target row of the sample: its columns for display, their COPY input text, and its trace value. */
export interface SampledTargetRow {
  shown: (string | null)[];
  texts: Record<string, string | null>;
  /** The trace column's value (the target key, or target.sourceKey) as displayed. */
  trace: string | null;
}

/** The sample's source rows in key order, each with what the transform made of it, up to the first that threw. */
export interface SampleResult {
  rows: { key: string; produced: SampledTargetRow[] }[];
  /** The first source row whose transform threw, with the error's summary (never its message). */
  threw: { key: string; error: string } | null;
}

/** How a value a module transform returned would read in a table. */
export function displayValue(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (typeof value === 'object') return stringifyLosslessJson(value) ?? String(value);
  return String(value);
}

/**
 * A module's output row as the copy writes it into COPY text: the text each column's input
 * function gets. A value with no database form is left out here; the copy names it.
 */
function inputTexts(row: TargetRow, columns: readonly string[], kinds: ColumnKinds): Record<string, string | null> {
  const texts: Record<string, string | null> = {};
  for (const column of columns) {
    try {
      texts[column] = postgresInputText((row as Record<string, unknown>)[column], column, kinds[column]);
    } catch {
      // Not checked by the cast: the copy refuses such a value with its own message.
    }
  }
  return texts;
}

export function sampledTargetRow(row: TargetRow, columns: readonly string[], kinds: ColumnKinds, traceColumn: string): SampledTargetRow {
  const values = row as Record<string, unknown>;
  return {
    // A row that is no object fails here as it would in the copy, naming the column read.
    shown: columns.map((column) => displayValue(values[column])),
    texts: inputTexts(row, columns, kinds),
    trace: displayValue(values[traceColumn]),
  };
}
