/**
 * The differential cases (every transform path with every shard kind), the known defects whose
 * hazards a case leaves out until they are fixed, and the switch for one-to-many lineage.
 */
import type fc from 'fast-check';
import { TRANSFORM_PATHS, type TransformPath } from './paths';
import { tableSpec, type ShardKind, type TableSpec } from './table-spec';
import type { Hazard } from './values';

/** One-to-many transforms, verified by their lineage column (target.sourceKey). */
export const ONE_TO_MANY_LINEAGE = true;


export interface KnownDefect {
  hazard: Hazard;
  /** The paths and shard kinds it breaks (all when absent). */
  paths?: TransformPath[];
  shardKinds?: ShardKind[];
  defect: string;
}

/**
 * Hazards left out of the cases they break, because of a defect not fixed yet.
 * Remove an entry once its fix is merged: its cases then run with the hazard in CI.
 */
export const KNOWN_DEFECTS: KnownDefect[] = [];

/**
 * Inputs Ferry refuses by design, left out of every case: a key column with NULLs is refused at
 * inspection (test/integration/null-keys.test.ts), a NULL partition value when shards are planned.
 */
export const REFUSED_BY_DESIGN: Hazard[] = ['null-key', 'null-partition'];

export const SHARD_KINDS: ShardKind[] = ['key-range', 'quantile', 'partition'];

export interface DifferentialCase {
  name: string;
  path: TransformPath;
  shardKind: ShardKind;
  /** Hazards this case leaves out. */
  excluded: Hazard[];
  /** The known defect this case shows, for a case that runs with that defect's hazard. */
  knownDefect: KnownDefect | null;
  /** The hazard every generated table of this case holds (a fixed defect's regression case). */
  focus?: Hazard | null;
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
      excluded: [...KNOWN_DEFECTS.filter((d) => applies(d, path, shardKind)).map((d) => d.hazard), ...REFUSED_BY_DESIGN],
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

/**
 * Defects fixed since the suite found them, each run in CI on the cases named here with its
 * hazard in every generated table, so a regression cannot hide behind a seed that misses it.
 */
export const FIXED_DEFECTS: { hazard: Hazard; cases: string[] }[] = [
  // Verification compared numeric by value, so an update of the scale alone (0.00 to 0.0) passed.
  { hazard: 'numeric-scale-only', cases: ['sql-same-db / key-range', 'js-one-to-one / key-range'] },
];

export function fixedDefectCases(paths: TransformPath[] = pathsInUse()): DifferentialCase[] {
  return FIXED_DEFECTS.flatMap(({ hazard, cases }) =>
    passingCases(paths)
      .filter((c) => cases.includes(c.name))
      .map((c) => ({ ...c, name: `${c.name} with ${hazard}`, focus: hazard })),
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
    focus: c.focus ?? c.knownDefect?.hazard ?? null,
    // One-to-many derives its rows from the key's text length, which JS and SQL count alike for these.
    ...(c.path === 'js-one-to-many' ? { keyTypes: ['int4', 'int8', 'uuid'] as const } : {}),
  });
}
