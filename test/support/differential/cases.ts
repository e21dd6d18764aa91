/**
 * The differential cases (every transform path with every shard kind), the known defects whose
 * hazards a case leaves out until they are fixed, and the switch for one-to-many lineage.
 */
import type fc from 'fast-check';
import { TRANSFORM_PATHS, type TransformPath } from './paths';
import { tableSpec, type ShardKind, type TableSpec } from './table-spec';
import type { Hazard } from './values';

/**
 * One-to-many transforms need lineage (issue 12, item 3): off until the plan can name it. To turn
 * it on, set LINEAGE_PLAN_FIELDS in paths.ts to the real setting and this to true.
 */
export const ONE_TO_MANY_LINEAGE = false;

const JS_PATHS: TransformPath[] = ['js-one-to-one', 'js-one-to-many'];

export interface KnownDefect {
  hazard: Hazard;
  /** The paths and shard kinds it breaks (all when absent). */
  paths?: TransformPath[];
  shardKinds?: ShardKind[];
  defect: string;
}

/**
 * Hazards left out of the cases they break, because of a defect not fixed on this branch.
 * Remove an entry once its fix is merged: its cases then run with the hazard in CI.
 */
export const KNOWN_DEFECTS: KnownDefect[] = [
  {
    hazard: 'json-exact',
    paths: JS_PATHS,
    defect: 'issue 12, item 1: a JavaScript transform loses json digits and turns a jsonb null into SQL NULL, and verification agrees',
  },
  {
    hazard: 'float-negative-zero',
    paths: JS_PATHS,
    defect: 'issue 12, item 1: a JavaScript transform writes float4/float8 -0 as 0, and verification agrees',
  },
  {
    hazard: 'array-lower-bound',
    paths: JS_PATHS,
    defect: 'found by these tests: a JavaScript transform drops an array\'s lower bounds ([0:1]={5,6} arrives as {5,6}), and verification agrees',
  },
  { hazard: 'null-key', defect: 'issue 12, item 4: rows with a NULL key are never copied, and verification says clean' },
  {
    hazard: 'source-row-gone',
    shardKinds: ['partition'],
    defect:
      'issue 12, items 2 and "every shard kind": partition shards keep target rows whose source key is gone (hard-deleted, key changed, ' +
      'deleted at the source, or added to the target only), and verification finds none of them',
  },
  {
    hazard: 'partition-change',
    shardKinds: ['partition'],
    defect:
      'issue 12, "every source row is accounted for": a row the application moves to a partition value that had no shard when the ' +
      'shards were planned is never copied, and verification (one shard per planned value) says clean',
  },
  {
    hazard: 'verify-after-finish',
    defect: 'issue 12, item 5: `ferry verify` on a finished or aborted migration is refused ("it takes no more changes"), so damage after the end is never found',
  },
  {
    hazard: 'numeric-scale-only',
    defect:
      'found by these tests: verification compares numeric without its scale (trim_scale), so a source update from 0.00 to 0.0 ' +
      'is never found nor repaired, and the target keeps 0.00 while Ferry says clean',
  },
  {
    hazard: 'date-beyond-timestamp',
    defect: 'found by these tests: verification cannot compare a date past year 294276 (to_char casts it to timestamp: "date out of range for timestamp"), so no pass finishes',
  },
];

export const SHARD_KINDS: ShardKind[] = ['key-range', 'quantile', 'partition'];

export interface DifferentialCase {
  name: string;
  path: TransformPath;
  shardKind: ShardKind;
  /** Hazards this case leaves out. */
  excluded: Hazard[];
  /** The known defect this case shows, for a case that runs with that defect's hazard. */
  knownDefect: KnownDefect | null;
}

const applies = (defect: KnownDefect, path: TransformPath, shardKind: ShardKind) =>
  (!defect.paths || defect.paths.includes(path)) && (!defect.shardKinds || defect.shardKinds.includes(shardKind));

export function pathsInUse(): TransformPath[] {
  return TRANSFORM_PATHS.filter((p) => p !== 'js-one-to-many' || ONE_TO_MANY_LINEAGE);
}

/** Every path with every shard kind, each leaving out the hazards of the known defects that break it. */
export function passingCases(paths: TransformPath[] = pathsInUse()): DifferentialCase[] {
  return paths.flatMap((path) =>
    SHARD_KINDS.map((shardKind) => ({
      name: `${path} / ${shardKind}`,
      path,
      shardKind,
      // NULL partition values are refused by design (one shard per value): a fixed-seed run that is
      // refused checks nothing else, so only the fuzz run lets them in (see allCases).
      excluded: [...KNOWN_DEFECTS.filter((d) => applies(d, path, shardKind)).map((d) => d.hazard), 'null-partition' as const],
      knownDefect: null,
    })),
  );
}

/** For each known defect and each case it breaks: that case with the defect's hazard let in. */
export function knownDefectCases(paths: TransformPath[] = pathsInUse()): DifferentialCase[] {
  return passingCases(paths).flatMap((c) =>
    KNOWN_DEFECTS.filter((d) => applies(d, c.path, c.shardKind)).map((defect) => ({
      ...c,
      name: `${c.name} with ${defect.hazard}`,
      excluded: c.excluded.filter((h) => h !== defect.hazard),
      knownDefect: defect,
    })),
  );
}

export interface Sizes {
  minRows: number;
  maxRows: number;
}

export function specFor(c: DifferentialCase, sizes: Sizes): fc.Arbitrary<TableSpec> {
  return tableSpec({
    shardKind: c.shardKind,
    excluded: c.excluded,
    ...sizes,
    focus: c.knownDefect?.hazard ?? null,
    // One-to-many derives its rows from the key's text length, which JS and SQL count alike for these.
    ...(c.path === 'js-one-to-many' ? { keyTypes: ['int4', 'int8', 'uuid'] as const } : {}),
  });
}
