/**
 * The benchmark's command line: its options, their bounds and defaults, and the usage text.
 */
import { parseArgs } from 'node:util';

/** Foreground updates a second with --with-load, and how long the quiet baseline lasts. */
export const LOAD_PER_SECOND = 300;
export const LOAD_BASELINE_MS = 10_000;

const USAGE = `usage: npm run bench -- [--rows N] [--rounds N] [--json] [--peers] [--with-load]
       npm run bench -- --foreground [--statements] [--rows N] [--rounds N] [--seconds S] [--scale N] [--json]
       npm run bench -- --capture [--capture-mode M] [--statements] [--rounds N] [--seconds S] [--scale N] [--json]

  --rows N       rows in the source table (Default: 1000000)
  --rounds N     rounds of interleaved measurements, at least 3 (Default: 3)
  --json         also print the figures as one JSON object on the last line
  --peers        also time pgcopydb's table-data copy and pgroll's backfill (built with Go from the
                 Go module proxy), or say why one cannot run here
  --with-load    run ${LOAD_PER_SECOND} single-row UPDATEs a second on the source during the rounds
  --foreground   instead: pgbench TPC-B and a light -R load, quiet and during a Ferry copy at the
                 default throttle, interleaved; tps and p99 as ratios of quiet; and TPC-B while
                 INSERT ... SELECT copies at half Ferry's unthrottled rate (the machine's own cost),
                 and at the rate Ferry's controller kept (what copying that fast costs anyone)
  --capture      instead: pgbench TPC-B quiet, during a capture migration of pgbench_accounts
                 at the default throttle (its backfill), and at its gate after the catch-up, interleaved;
                 tps and p99 as ratios of quiet, and the change-apply rate against pgbench's writes
                 (--rounds may be 1 here)
  --capture-mode M  trigger or logical, with --capture (Default: trigger)
  --statements   load pg_stat_statements in the bench's server, so the pacing controller reads the
                 application's own statement latency instead of its canary commits
  --seconds S    length of each foreground or capture window (Default: 15)
  --scale N      pgbench -i scale for --foreground and --capture (Default: 10, 1,000,000 accounts)`;

export interface Options {
  rows: number;
  rounds: number;
  json: boolean;
  peers: boolean;
  withLoad: boolean;
  foreground: boolean;
  capture: boolean;
  captureMode: 'trigger' | 'logical';
  statements: boolean;
  seconds: number;
  scale: number;
}

export class UsageError extends Error {}

function wholeNumber(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  const n = value === undefined ? fallback : Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not ${value}`);
  return n;
}

export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string' },
      rounds: { type: 'string' },
      json: { type: 'boolean', default: false },
      peers: { type: 'boolean', default: false },
      'with-load': { type: 'boolean', default: false },
      foreground: { type: 'boolean', default: false },
      capture: { type: 'boolean', default: false },
      'capture-mode': { type: 'string' },
      statements: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      scale: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.foreground && (values.peers || values['with-load'])) throw new UsageError('--foreground runs alone: drop --peers and --with-load');
  if (values.capture && (values.foreground || values.peers || values['with-load'])) throw new UsageError('--capture runs alone: drop --foreground, --peers and --with-load');
  const captureMode = values['capture-mode'] ?? 'trigger';
  if (captureMode !== 'trigger' && captureMode !== 'logical') throw new UsageError(`--capture-mode must be trigger or logical, not ${captureMode}`);
  if (values['capture-mode'] !== undefined && !values.capture) throw new UsageError('--capture-mode goes with --capture');
  return {
    rows: wholeNumber('rows', values.rows, 1_000_000, 10_000, 100_000_000),
    // A capture round is one whole migration: a single round is a fair quick look.
    rounds: wholeNumber('rounds', values.rounds, 3, values.capture ? 1 : 3, 20),
    json: values.json,
    peers: values.peers,
    withLoad: values['with-load'],
    foreground: values.foreground,
    capture: values.capture,
    captureMode,
    statements: values.statements,
    seconds: wholeNumber('seconds', values.seconds, 15, 3, 600),
    scale: wholeNumber('scale', values.scale, 10, 1, 1000),
  };
}
