/**
 * Narrowing a differing chunk to the parts of it that differ, by checksums of smaller key ranges,
 * so that a large chunk with one differing row is not read row by row whole.
 */
import type { KeyRange } from '../../lib/key-range';

/** A part of at most this many source rows is read row by row; a larger one is split again. */
export const ROW_READ_ROWS = 1000;
/** Parts a differing range is split into at each step. */
export const DRILL_PARTS = 10;
const MAX_DEPTH = 4;

/** A key range to read row by row, with the source keys its target side is selected by (see chunkKeys). */
export interface DifferingPart {
  range: KeyRange;
  keys: string[] | undefined;
}

export interface PartSums {
  /** The source keys of the part, when the target side is selected by them. */
  keys: string[] | undefined;
  /** Source rows in the part. */
  rows: number;
  equal: boolean;
}

export interface DrillSteps {
  /** The last key of the first `rows` source rows after `range.after` within the range; null when fewer remain. */
  partEnd(range: KeyRange, rows: number): Promise<string | null>;
  /** Both sides' checksums of a part. */
  sums(range: KeyRange): Promise<PartSums>;
}

/**
 * The parts of a range holding `rows` source rows whose checksums differ, each of at most
 * ROW_READ_ROWS source rows (or the whole range when it is that small). Parts are compared one
 * after another: together they cost about one more checksum of the range per level. Rows only
 * in the target land in the part whose keys hold them: the last part runs to the range's end.
 */
export async function differingParts(range: KeyRange, rows: number, keys: string[] | undefined, steps: DrillSteps, depth = 0): Promise<DifferingPart[]> {
  // Each level divides the rows by DRILL_PARTS; the depth bound only guards against a source
  // changing under the split.
  if (rows <= ROW_READ_ROWS || depth >= MAX_DEPTH) return [{ range, keys }];
  const partRows = Math.ceil(rows / DRILL_PARTS);
  const parts: KeyRange[] = [];
  let after = range.after;
  for (let i = 1; i < DRILL_PARTS; i += 1) {
    const end = await steps.partEnd({ after, upTo: range.upTo }, partRows);
    if (end === null || end === range.upTo) break;
    parts.push({ after, upTo: end });
    after = end;
  }
  parts.push({ after, upTo: range.upTo });
  const found: DifferingPart[] = [];
  for (const part of parts) {
    const sums = await steps.sums(part);
    if (!sums.equal) found.push(...(await differingParts(part, sums.rows, sums.keys, steps, depth + 1)));
  }
  return found;
}
