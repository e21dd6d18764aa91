/** Flags: what a migration tells the applications to do, one set per migration (plan name). */

export interface Flags {
  /** Write the old store. */
  writeOld: boolean;
  /** Write the new store too (dual writes). */
  writeNew: boolean;
  /** Which store reads come from. */
  readFrom: 'old' | 'new';
  /** Percentage of reads also made on the other store and compared (0 to 100). */
  comparePercent: number;
  /** Bumped on every change; applications acknowledge the version they follow. */
  version: number;
}

/** Before a migration touches them: the application only knows the old store. */
export const initialFlags: Omit<Flags, 'version'> = { writeOld: true, writeNew: false, readFrom: 'old', comparePercent: 0 };

/** A row of ferry.flags as Postgres returns it (version as text: it is a bigint). */
export interface FlagsRow {
  write_old: boolean;
  write_new: boolean;
  read_from: 'old' | 'new';
  compare_percent: number;
  version: string;
}

export const flagsColumns = 'write_old, write_new, read_from, compare_percent, version::text';

export function flagsFromRow(row: FlagsRow): Flags {
  return {
    writeOld: row.write_old,
    writeNew: row.write_new,
    readFrom: row.read_from,
    comparePercent: row.compare_percent,
    version: Number(row.version),
  };
}
