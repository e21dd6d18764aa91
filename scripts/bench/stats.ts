/**
 * Repeated measurements summed up as the median and the spread (min..max), the only honest way
 * to quote figures from a noisy machine.
 */

export interface Spread {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/** The median and range of `values`, or null when there are none. */
export function spreadOf(values: readonly number[]): Spread | null {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: sorted.length };
}

/** The p-th percentile (0..100) of `values`, nearest rank; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

const fmt = (n: number, digits: number) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** "0.82 (0.79..0.85)", or "no figure". */
export function formatSpread(spread: Spread | null, digits = 0): string {
  if (!spread) return 'no figure';
  return formatPresentSpread(spread, digits);
}

/** A multiple ("1.25 (1.1..1.4)x"): nothing is appended to "no figure". */
export function formatTimes(spread: Spread | null, digits = 2): string {
  return spread ? `${formatPresentSpread(spread, digits)}x` : 'no figure';
}

function formatPresentSpread(spread: Spread, digits: number): string {
  if (spread.runs === 1) return `${fmt(spread.median, digits)} (one run)`;
  return `${fmt(spread.median, digits)} (${fmt(spread.min, digits)}..${fmt(spread.max, digits)})`;
}

/** The spread rounded for the JSON line. */
export function jsonSpread(spread: Spread | null, digits = 0): { median: number; min: number; max: number; runs: number } | null {
  if (!spread) return null;
  const round = (n: number) => Number(n.toFixed(digits));
  return { median: round(spread.median), min: round(spread.min), max: round(spread.max), runs: spread.runs };
}

/** One path's measurements over the rounds: its limit's rate, Ferry's rate, and their ratio, per round. */
export class PathFigures {
  readonly limits: number[] = [];
  readonly ferry: number[] = [];
  readonly ratios: number[] = [];
  constructor(readonly limitTool: string) {}
  add(limitRowsPerSec: number, ferryRowsPerSec: number | null): void {
    this.limits.push(limitRowsPerSec);
    if (ferryRowsPerSec === null) return;
    this.ferry.push(ferryRowsPerSec);
    this.ratios.push(ferryRowsPerSec / limitRowsPerSec);
  }
  spreads(): { limit: Spread | null; ferry: Spread | null; ratio: Spread | null } {
    return { limit: spreadOf(this.limits), ferry: spreadOf(this.ferry), ratio: spreadOf(this.ratios) };
  }
  json() {
    const { limit, ferry, ratio } = this.spreads();
    return { limitTool: this.limitTool, limitRowsPerSec: jsonSpread(limit), ferryRowsPerSec: jsonSpread(ferry), ratio: jsonSpread(ratio, 3) };
  }
}
