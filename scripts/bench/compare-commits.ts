/**
 * `npx tsx scripts/bench/compare-commits.ts`: did a change slow Ferry down? Runs the bench's paths
 * (same database, across databases, JavaScript transform, both verifications) on several
 * checkouts of Ferry, each with its own worker and code, on one Postgres and one Temporal server,
 * with identical copies of one generated table, a pinned throttle and once more each checkout's
 * defaults; rounds interleave the checkouts, in turns that reverse every round (A, B, C, C, B, A,
 * ...: in five of seven one-round runs of two identical checkouts, the one run second was 6 to
 * 14% slower), and every figure is quoted as the median with its spread, beside the ratios of
 * each checkout to the first. Give an even number of rounds.
 *
 *   git worktree add --detach ../old <commit>    # link node_modules and .tools; `npm run build` if it has one
 *   npx tsx scripts/bench/compare-commits.ts --checkout old=../old --checkout new=. [--rows N] [--rounds N] [--paths P,...] [--cpu]
 *
 * --cpu also prints, for each checkout, the CPU its runs used per row (median over rounds): the
 * worker's event loop, its other threads, and Postgres by database (see cpu-split.ts).
 */
import { Client, Connection } from '@temporalio/client';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startPostgres } from '../services/postgres';
import { startTemporal } from '../services/temporal';
import { PATHS, PINNED, type PathName, type RoundResult } from './compare-paths';
import { cpuBetween, cpuSnapshot } from './cpu-split';
import { createSource, createTarget } from './dataset';
import { formatSpread, spreadOf } from './stats';

interface Checkout {
  label: string;
  root: string;
}

const RUNNER = path.join(__dirname, 'commit-runner.ts');
const TSX = path.join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx');
const READY_TIMEOUT_MS = 180_000;

const LABELS: Record<PathName, string> = {
  sameDb: 'same database',
  crossDb: 'across databases',
  jsTransform: 'JavaScript transform',
  verify: 'verify, SQL transform',
  verifyJsTransform: 'verify, JS transform',
  sameDbDefaults: 'same database, defaults',
  crossDbDefaults: 'across databases, defaults',
  jsTransformDefaults: 'JavaScript, defaults',
};

function options() {
  const { values } = parseArgs({
    options: { checkout: { type: 'string', multiple: true }, rows: { type: 'string' }, rounds: { type: 'string' }, paths: { type: 'string' }, json: { type: 'boolean', default: false }, cpu: { type: 'boolean', default: false } },
    strict: true,
  });
  const checkouts = (values.checkout ?? []).map((spec): Checkout => {
    const [label, dir] = spec.split('=');
    if (!label || !dir) throw new Error(`--checkout takes label=folder, not ${spec}`);
    const root = path.resolve(dir);
    if (!existsSync(path.join(root, 'bin', 'ferry.js'))) throw new Error(`${root} is not a Ferry checkout (no bin/ferry.js)`);
    return { label, root };
  });
  if (checkouts.length < 2) throw new Error('give at least two --checkout label=folder');
  const paths = values.paths ? values.paths.split(',') : [...PATHS];
  for (const p of paths) if (!(PATHS as readonly string[]).includes(p)) throw new Error(`--paths takes a comma-separated list of ${PATHS.join(', ')}; not ${p}`);
  return { checkouts, rows: Number(values.rows ?? 300_000), rounds: Number(values.rounds ?? 4), paths: paths as PathName[], json: values.json, cpu: values.cpu };
}

/** A checkout's worker (its own `bin/ferry.js worker`), ready once it polls both task queue kinds. */
async function startWorker(checkout: Checkout, env: Record<string, string>, logFile: string, client: Client, namespace: string): Promise<ChildProcess> {
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, [path.join(checkout.root, 'bin', 'ferry.js'), 'worker'], { cwd: checkout.root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  process.once('exit', () => child.kill('SIGKILL'));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${checkout.label}'s worker exited with code ${child.exitCode}; see ${logFile}`);
    const polled = await Promise.all(
      [1, 2].map(async (taskQueueType) => {
        const response = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: env.FERRY_TASK_QUEUE }, taskQueueType });
        return (response.pollers?.length ?? 0) > 0;
      }),
    );
    if (polled.every(Boolean)) return child;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${checkout.label}'s worker did not poll within ${READY_TIMEOUT_MS / 1000} s; see ${logFile}`);
}

async function cloneDatabase(adminUrl: string, template: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

const fmt = (n: number, digits = 2) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const load = () => os.loadavg().map((n) => n.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const { checkouts, rows, rounds, paths, json, cpu } = options();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-compare-'));
  console.log(`compare-commits: ${checkouts.map((c) => `${c.label}=${c.root}`).join(', ')}; ${rows} rows, ${rounds} rounds; load ${load()}; logs in ${workDir}`);
  console.log(`pinned: shards ${PINNED.shards}, concurrency ${PINNED.concurrency}, batch ${PINNED.batchSize}, no rows/s limit, pacing off where the checkout has it`);
  const [postgres, temporalServer] = await Promise.all([startPostgres({ fsync: true, local: true }), startTemporal()]);
  const workerOf = new Map<string, ChildProcess>();
  const cpuGroups = (label: string) => ({
    [`compare_source_${label}`.toLowerCase()]: 'postgres: source',
    [`compare_target_${label}`.toLowerCase()]: 'postgres: target',
  });
  let connection: Connection | null = null;
  try {
    const seedUrl = await postgres.createDatabase('compare_seed');
    await createSource(seedUrl, rows);
    await createTarget(seedUrl);
    const databases = new Map<string, { source: string; target: string }>();
    for (const checkout of checkouts) {
      // Every checkout reads the same bytes, and keeps its own Ferry schema in its own databases.
      const source = await cloneDatabase(postgres.url(), 'compare_seed', `compare_source_${checkout.label}`.toLowerCase());
      const target = await postgres.createDatabase(`compare_target_${checkout.label}`.toLowerCase());
      await createTarget(target);
      databases.set(checkout.label, { source, target });
    }
    connection = await Connection.connect({ address: temporalServer.address });
    const client = new Client({ connection, namespace: 'default' });
    for (const checkout of checkouts) {
      const { source, target } = databases.get(checkout.label)!;
      const env = {
        TEMPORAL_ADDRESS: temporalServer.address,
        TEMPORAL_NAMESPACE: 'default',
        FERRY_TASK_QUEUE: `compare-${checkout.label}`,
        BENCH_SOURCE_URL: source,
        BENCH_TARGET_URL: target,
        FERRY_TRANSFORM_DIR: path.join(checkout.root, 'scripts'),
      };
      const worker = await startWorker(checkout, env, path.join(workDir, `worker-${checkout.label}.log`), client, 'default');
      workerOf.set(checkout.label, worker);
    }
    console.log(`workers polling; load ${load()}`);

    const results = new Map<string, RoundResult[]>(checkouts.map((c) => [c.label, []]));
    const cpuPerRow = new Map<string, Record<string, number>[]>(checkouts.map((c) => [c.label, []]));
    const loads: string[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      for (const checkout of round % 2 === 1 ? checkouts : [...checkouts].reverse()) {
        const { source, target } = databases.get(checkout.label)!;
        const before = load();
        const cpuBefore = cpu ? cpuSnapshot(workerOf.get(checkout.label)!.pid!, cpuGroups(checkout.label)) : null;
        const run = spawnSync(
          TSX,
          [RUNNER, '--root', checkout.root, '--address', temporalServer.address, '--queue', `compare-${checkout.label}`, '--source', source, '--target', target, '--rows', String(rows), '--paths', paths.join(',')],
          { cwd: checkout.root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
        );
        const last = run.stdout.trim().split('\n').pop() ?? '';
        let result: RoundResult = {};
        try {
          result = JSON.parse(last) as RoundResult;
        } catch {
          console.log(`  ${checkout.label} round ${round}: runner failed: ${run.stderr.trim().split('\n').slice(-5).join(' | ')}`);
        }
        results.get(checkout.label)!.push(result);
        if (cpuBefore) {
          // Per row of each path the runner ran.
          const used = cpuBetween(cpuBefore, cpuSnapshot(workerOf.get(checkout.label)!.pid!, cpuGroups(checkout.label)));
          cpuPerRow.get(checkout.label)!.push(Object.fromEntries(Object.entries(used).map(([group, seconds]) => [group, (seconds * 1e6) / (rows * paths.length)])));
        }
        loads.push(`${before} -> ${load()}`);
        const line = paths.map((p) => `${p} ${result[p]?.rowsPerSec ? Math.round(result[p]!.rowsPerSec!) : `FAILED (${result[p]?.error ?? 'no result'})`}`).join(', ');
        console.log(`  round ${round} ${checkout.label} (load ${before} -> ${load()}): ${line}`);
      }
    }

    const rates = (label: string, p: PathName) => results.get(label)!.map((r) => r[p]?.rowsPerSec ?? Number.NaN);
    console.log(`\nrows/s, median (min..max) of ${rounds} rounds; ratios: of medians, and the median (min..max) of the same round's ratios`);
    const base = checkouts[0]!;
    const summary: Record<string, unknown> = {};
    for (const p of paths) {
      const cells = checkouts.map((c) => `${c.label} ${formatSpread(spreadOf(rates(c.label, p)))}`);
      const ratios: string[] = [];
      const pairs: [Checkout, Checkout][] = [];
      for (let i = 1; i < checkouts.length; i += 1) pairs.push([checkouts[i]!, base]);
      for (let i = 2; i < checkouts.length; i += 1) pairs.push([checkouts[i]!, checkouts[i - 1]!]);
      for (const [a, b] of pairs) {
        const ma = spreadOf(rates(a.label, p))?.median;
        const mb = spreadOf(rates(b.label, p))?.median;
        const perRound = rates(a.label, p).map((v, i) => v / rates(b.label, p)[i]!);
        ratios.push(`${a.label}/${b.label} ${ma && mb ? fmt(ma / mb) : 'n/a'} [${formatSpread(spreadOf(perRound), 2)}]`);
      }
      console.log(`  ${LABELS[p].padEnd(27)} ${cells.join('  ')}  ${ratios.join('  ')}`);
      summary[p] = Object.fromEntries(checkouts.map((c) => [c.label, rates(c.label, p).map((v) => (Number.isFinite(v) ? Math.round(v) : null))]));
    }
    if (cpu) {
      console.log(`\nCPU µs per row of each path, median (min..max) of ${rounds} rounds (${os.availableParallelism()} cores)`);
      for (const checkout of checkouts) {
        const perRound = cpuPerRow.get(checkout.label)!;
        const groups = [...new Set(perRound.flatMap((r) => Object.keys(r)))].sort();
        const total = formatSpread(spreadOf(perRound.map((r) => Object.values(r).reduce((a, b) => a + b, 0))), 2);
        console.log(`  ${checkout.label}: total ${total}`);
        for (const group of groups) console.log(`    ${group.padEnd(28)} ${formatSpread(spreadOf(perRound.map((r) => r[group] ?? 0)), 2)}`);
      }
    }
    console.log(`load average before -> after each runner: ${loads.join('; ')}`);
    if (json) console.log(JSON.stringify({ rows, rounds, checkouts, rowsPerSec: summary, results: Object.fromEntries(results), loads, ...(cpu ? { cpuMicrosPerRow: Object.fromEntries(cpuPerRow) } : {}) }));
  } finally {
    for (const worker of workerOf.values()) worker.kill('SIGTERM');
    await connection?.close();
    await temporalServer.stop();
    await postgres.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`compare-commits failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
