/** What one verification run of a migration did and found, in words the CLI, the report and gates share. */
import type { Verdict, VerificationSummary } from './status';

export type VerificationKind = 'lifecycle' | 'on-demand' | 'after-finish';

/** One verification run, as recorded in ferry.verification_runs and returned by a later check. */
export interface VerificationRun {
  migrationId: string;
  /** 1, 2, ... per migration, over its whole life. */
  run: number;
  kind: VerificationKind;
  by: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** The percentage of keys a sampled run compared; null: every row. */
  samplePercent: number | null;
  /** Whether the run repaired what it found (a check after the migration ended repairs only when asked). */
  repair: boolean;
  /** Passes of this run (1..passes); ferry.mismatches records them from firstPass on. */
  passes: number;
  firstPass: number;
  rowsChecked: number;
  missing: number;
  extra: number;
  value: number;
  /** Differences an earlier run left unresolved that this run found again outside what it compared. */
  carried: number;
  repaired: number;
  inFlight: number;
  clean: boolean;
  /** Why the run could not finish, when it could not. */
  problem: string | null;
}

/** What a run or summary found, as counts: "0 missing, 3 extra, 5 differing". */
export function differenceCounts(v: Pick<VerificationSummary, 'missing' | 'extra' | 'value'>): string {
  return `${v.missing} missing, ${v.extra} extra, ${v.value} differing`;
}

/** "every row" or "a sample of 10% of keys". */
export function scopeOf(samplePercent: number | null | undefined): string {
  return samplePercent === null || samplePercent === undefined ? 'every row' : `a sample of ${samplePercent}% of keys`;
}

/**
 * Why a verification is not clean, in words that agree with its counts: a sample that found
 * nothing cannot clear what an earlier full verification found.
 */
export function uncleanReason(v: Pick<VerificationSummary, 'missing' | 'extra' | 'value' | 'samplePercent'>): string {
  const found = v.missing + v.extra + v.value;
  if (v.samplePercent !== null && v.samplePercent !== undefined && found === 0) {
    return `the last check compared ${scopeOf(v.samplePercent)} and found no difference, but a sample cannot make a migration clean; verify every row (ferry verify without --sample)`;
  }
  return `${differenceCounts(v)}${v.samplePercent !== null && v.samplePercent !== undefined ? ` in ${scopeOf(v.samplePercent)}` : ''}`;
}

/** The pass a verification's verdict comes from, numbered among all the migration's passes. */
export function verdictPassId(v: Pick<VerificationSummary, 'passes' | 'lastPassId'>): number {
  return v.lastPassId ?? v.passes;
}

/** The verdict `v` stands for, with the rows verification left out (the status's unresolved failures). */
export function verdictOf(v: VerificationSummary, rowsLeftOut: number): Verdict {
  return {
    pass: verdictPassId(v),
    run: v.run ?? null,
    passInRun: v.passes,
    clean: v.clean,
    rowsChecked: v.rowsChecked,
    missing: v.missing,
    extra: v.extra,
    value: v.value,
    samplePercent: v.samplePercent ?? null,
    rowsLeftOut,
  };
}

/** "pass 5 (run 2, pass 1 of it): NOT clean, 5000 missing, 0 extra, 3 differing in 4000 rows checked, 0 rows left out". */
export function describeVerdict(v: Verdict): string {
  // The first run's passes are numbered as the migration's are: naming the run adds nothing.
  const parts = [v.run !== null && v.run > 1 ? `run ${v.run}, pass ${v.passInRun} of it` : null, v.samplePercent !== null ? scopeOf(v.samplePercent) : null].filter(Boolean);
  const where = parts.length ? ` (${parts.join(', ')})` : '';
  const leftOut = `${v.rowsLeftOut} row${v.rowsLeftOut === 1 ? '' : 's'} with unresolved failed records left out`;
  return `pass ${v.pass}${where}: ${v.clean ? 'clean' : 'NOT clean'}, ${differenceCounts(v)} in ${v.rowsChecked} rows checked, ${leftOut}`;
}
