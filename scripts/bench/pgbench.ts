/**
 * pgbench as the foreground application: its TPC-B tables set up at a scale, and timed runs
 * whose tps comes from pgbench's summary and whose p99 latency is computed here from its
 * per-transaction log (--log), so no percentile is taken on trust.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { runPipeline } from './limits';
import { percentile } from './stats';

export interface PgbenchLoad {
  label: string;
  clients: number;
  /** Transactions a second for a rate-limited (-R) load; null runs as fast as it can. */
  rate: number | null;
}

export interface PgbenchRun {
  tps: number;
  p50Ms: number;
  p99Ms: number;
  transactions: number;
  /** Transactions pgbench logged as failed or skipped. */
  failed: number;
}

/** `pgbench -i -s scale`: the TPC-B tables (pgbench_accounts has 100,000 rows a unit of scale). */
export async function initPgbench(pgbench: string, url: string, scale: number): Promise<void> {
  await runPipeline(`"$BENCH_PGBENCH" -i -q -s ${scale} "$BENCH_DB"`, { BENCH_PGBENCH: pgbench, BENCH_DB: url });
}

/**
 * Latencies (ms) from pgbench's log lines: `client transaction latency_us script epoch epoch_us
 * [schedule_lag_us]`. With -R the latency counts from the scheduled start, as the application
 * would feel it; failed and skipped transactions have no number and are counted apart.
 */
export function parsePgbenchLog(text: string): { latenciesMs: number[]; failed: number } {
  const latenciesMs: number[] = [];
  let failed = 0;
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 3) continue;
    const latency = Number(fields[2]);
    if (Number.isFinite(latency) && /^\d+$/.test(fields[2]!)) latenciesMs.push(latency / 1000);
    else failed += 1;
  }
  return { latenciesMs, failed };
}

/** pgbench's "tps = N (without initial connection time)" line. */
export function parseTps(stdout: string): number {
  const match = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!match) throw new Error(`pgbench printed no tps: ${stdout.trim().slice(-300)}`);
  return Number(match[1]);
}

let runs = 0;

/** One TPC-B run of `seconds`, its per-transaction log written under `dir` and removed after. */
export async function runPgbench(pgbench: string, url: string, load: PgbenchLoad, seconds: number, dir: string): Promise<PgbenchRun> {
  runs += 1;
  const prefix = `pgbench-${process.pid}-${runs}`;
  const rate = load.rate === null ? '' : `-R ${load.rate}`;
  const stdout = await runPipeline(
    `cd "$BENCH_DIR" && "$BENCH_PGBENCH" -n -c ${load.clients} -j ${load.clients} -T ${seconds} ${rate} --log --log-prefix=${prefix} "$BENCH_DB"`,
    { BENCH_PGBENCH: pgbench, BENCH_DB: url, BENCH_DIR: dir },
  );
  const latenciesMs: number[] = [];
  let failed = 0;
  for (const file of readdirSync(dir).filter((name) => name.startsWith(`${prefix}.`))) {
    const parsed = parsePgbenchLog(readFileSync(path.join(dir, file), 'utf8'));
    latenciesMs.push(...parsed.latenciesMs);
    failed += parsed.failed;
    rmSync(path.join(dir, file));
  }
  if (latenciesMs.length === 0) throw new Error(`pgbench logged no transactions: ${stdout.trim().slice(-300)}`);
  return { tps: parseTps(stdout), p50Ms: percentile(latenciesMs, 50), p99Ms: percentile(latenciesMs, 99), transactions: latenciesMs.length, failed };
}

/**
 * TPC-B with 4 clients until `stop` (at most 10 minutes): an unmodified application writing
 * throughout a test, at `tps` transactions a second (pgbench -R), or as fast as it can without.
 * `builtin` 'simple-update' leaves out the updates of tellers and branches (pgbench -N): one
 * account changed a transaction for less CPU, where a test needs a fast writer on a busy machine.
 */
export function startPgbench(
  pgbench: string,
  url: string,
  tps?: number,
  builtin: 'tpcb-like' | 'simple-update' = 'tpcb-like',
): { process: ChildProcess; output: () => string; stop: () => Promise<string> } {
  const rate = tps === undefined ? [] : ['-R', String(tps)];
  const child = spawn(pgbench, ['-n', '-b', builtin, '-c', '4', '-j', '4', ...rate, '-T', '600', url], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    output: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      await exited;
      return output;
    },
  };
}
