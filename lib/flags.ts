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
