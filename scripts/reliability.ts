/**
 * Reliability run: injects every fault of the lab (worker SIGKILLs, a Temporal restart, a
 * Postgres restart, killed connections, statement timeouts) into migrations in their backfill
 * and in their verification, the same faults into trigger-capture migrations in their backfill
 * and while they apply changes with a writer running, and a Postgres outage into an abort and into a cutover, round
 * after round, and checks every row with SQL of its own. Measures how long a SIGKILLed
 * worker's activities take to go on elsewhere. Prints a table and, last, one JSON line. Exits 1
 * when a row was lost, duplicated or wrong, or a migration did not end as it should.
 *
 *   npm run reliability -- [--rounds N] [--seed S] [--faults worker-kill,outage-abort] [--rows N] [--outage-seconds S]
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startLab, seededRandom } from './reliability/lab';
import { runCaptureRound } from './reliability/capture';
import { runOutageRound } from './reliability/outages';
import { FAULTS, isCaptureFault, isOutageFault, runRound, type Fault, type RoundResult } from './reliability/scenarios';
import { takeoverSummary } from './reliability/takeover';

interface Args {
  rounds: number;
  seed: number;
  faults: Fault[];
  rows: number;
  outageSeconds: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rounds: 3, seed: 1, faults: [...FAULTS], rows: 12_000, outageSeconds: 120 };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = argv[i + 1];
    const whole = (name: string) => {
      if (!value || !/^\d+$/.test(value) || Number(value) < 1) throw new Error(`${name} needs a whole number above 0, not "${value ?? ''}"`);
      i += 1;
      return Number(value);
    };
    if (flag === '--rounds') args.rounds = whole('--rounds');
    else if (flag === '--seed') args.seed = whole('--seed');
    else if (flag === '--rows') args.rows = whole('--rows');
    else if (flag === '--outage-seconds') args.outageSeconds = whole('--outage-seconds');
    else if (flag === '--faults') {
      const names = (value ?? '').split(',').map((f) => f.trim());
      const unknown = names.filter((f) => !(FAULTS as readonly string[]).includes(f));
      if (unknown.length || names.length === 0) throw new Error(`--faults takes a comma-separated list of ${FAULTS.join(', ')}; unknown: ${unknown.join(', ')}`);
      args.faults = names as Fault[];
      i += 1;
    } else throw new Error(`unknown argument ${flag}; usage: npm run reliability -- [--rounds N] [--seed S] [--faults a,b] [--rows N] [--outage-seconds S]`);
  }
  return args;
}

interface Totals {
  rounds: number;
  faults: number;
  migrations: number;
  /** Migrations that ended as they should: completed, or aborted when the round aborts them. */
  endedAsExpected: number;
  rowsChecked: number;
  lost: number;
  duplicated: number;
  extra: number;
  differing: number;
}

const endedAsExpected = (m: RoundResult['migrations'][number]) => m.problem === null && m.finalPhase === (m.expectedPhase ?? 'completed');
/** Rows a completed migration did not copy; an aborted one leaves rows behind by design. */
const lostRows = (m: RoundResult['migrations'][number]) => ((m.expectedPhase ?? 'completed') === 'completed' ? m.comparison.lost : 0);

function table(results: RoundResult[], faults: Fault[]): string {
  const header = ['fault', 'rounds', 'faults injected', 'phases hit', 'migrations ended as expected', 'rows checked', 'lost', 'duplicated', 'differing', 'takeover after SIGKILL (min / median / max)', 'slowest round'];
  const rows = faults.map((fault) => {
    const mine = results.filter((r) => r.fault === fault);
    const migrations = mine.flatMap((r) => r.migrations);
    const held = [...new Set(migrations.map((m) => m.heldIn))];
    // A capture round faults one migration in two phases: count every phase it was in.
    const hits = (phase: string) =>
      migrations.filter((m) => m.heldIn === phase).flatMap((m) => m.phasesHit).filter((p) => p === phase).length;
    const phasesHit = isCaptureFault(fault)
      ? Object.entries(migrations.flatMap((m) => m.phasesHit).reduce<Record<string, number>>((n, p) => ({ ...n, [p]: (n[p] ?? 0) + 1 }), {})).map(([p, n]) => `${p} ${n}`).join(', ')
      : held.map((phase) => `${phase} ${hits(phase)}`).join(', ');
    const sum = (pick: (c: RoundResult['migrations'][number]['comparison']) => number) => migrations.reduce((n, m) => n + pick(m.comparison), 0);
    const takeover = takeoverSummary(mine.flatMap((r) => r.takeoverSeconds ?? []));
    return [
      fault,
      String(mine.length),
      String(mine.reduce((n, r) => n + r.faultsInjected, 0)),
      phasesHit,
      `${migrations.filter(endedAsExpected).length} of ${migrations.length}`,
      sum((c) => c.sourceRows).toLocaleString('en-US'),
      String(migrations.reduce((n, m) => n + lostRows(m), 0)),
      String(sum((c) => c.duplicated)),
      String(sum((c) => c.differing + c.extra)),
      takeover ? `${takeover.min} / ${takeover.median} / ${takeover.max} s (${takeover.measured} kills)` : '-',
      `${Math.max(...mine.map((r) => r.seconds)).toFixed(1)} s`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const started = Date.now();
  const random = seededRandom(args.seed);
  console.log(`Starting a Postgres cluster, a Temporal dev server (SQLite file) and 2 Ferry worker processes ...`);
  const lab = await startLab({ log: (line) => console.log(line) });
  const results: RoundResult[] = [];
  try {
    for (let round = 1; round <= args.rounds; round += 1) {
      for (const fault of args.faults) {
        const log = (line: string) => console.log(line);
        results.push(
          isCaptureFault(fault)
            ? await runCaptureRound(lab, { fault, round, random, rows: args.rows, log })
            : isOutageFault(fault)
            ? await runOutageRound(lab, { fault, round, rows: args.rows, outageMs: args.outageSeconds * 1000, log })
            : await runRound(lab, { fault, round, random, backfillRows: args.rows, verifyRows: args.rows, log }),
        );
      }
    }
  } finally {
    await lab.close();
  }
  const migrations = results.flatMap((r) => r.migrations);
  const totals: Totals = {
    rounds: args.rounds,
    faults: results.reduce((n, r) => n + r.faultsInjected, 0),
    migrations: migrations.length,
    endedAsExpected: migrations.filter(endedAsExpected).length,
    rowsChecked: migrations.reduce((n, m) => n + m.comparison.sourceRows, 0),
    lost: migrations.reduce((n, m) => n + lostRows(m), 0),
    duplicated: migrations.reduce((n, m) => n + m.comparison.duplicated, 0),
    extra: migrations.reduce((n, m) => n + m.comparison.extra, 0),
    differing: migrations.reduce((n, m) => n + m.comparison.differing, 0),
  };
  console.log(`\n${table(results, args.faults)}\n`);
  for (const m of migrations.filter((m) => m.problem)) console.log(`PROBLEM ${m.migrationId}: ${m.problem}`);
  const seconds = (Date.now() - started) / 1000;
  const takeovers = results.flatMap((r) => r.takeoverSeconds ?? []);
  console.log(
    JSON.stringify({
      seed: args.seed,
      ...totals,
      takeoverSeconds: { ...takeoverSummary(takeovers), all: takeovers },
      outageSeconds: args.faults.some(isOutageFault) ? args.outageSeconds : undefined,
      seconds: Number(seconds.toFixed(1)),
      byFault: Object.fromEntries(args.faults.map((f) => [f, results.filter((r) => r.fault === f).map((r) => ({ round: r.round, faults: r.faultsInjected, felt: r.felt, seconds: Number(r.seconds.toFixed(1)), ...(r.takeoverSeconds ? { takeoverSeconds: r.takeoverSeconds } : {}), phases: r.migrations.map((m) => ({ heldIn: m.heldIn, hit: m.phasesHit, final: m.finalPhase, ...m.comparison })) }))])),
    }),
  );
  const clean = totals.endedAsExpected === totals.migrations && totals.lost + totals.duplicated + totals.extra + totals.differing === 0;
  return clean ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`reliability run failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
