/**
 * Where the test suite's CPU goes (Linux only): runs `vitest run` with the arguments given (all
 * of it when none) and prints the CPU seconds of each kind of process: vitest's test files (with
 * the workers they start in-process), each `ferry` command the tests run, worker processes, the
 * Temporal servers and the Postgres servers (with their backends), and the peak memory of the
 * largest Node process of each kind (vitest's test-file processes run file after file, so theirs
 * grows with what files leave behind). On a 2-core machine the suite is bound by CPU, so its time
 * is cut only by cutting what this shows.
 *
 *   npx tsx scripts/suite-cpu.ts                                   # the whole suite
 *   npx tsx scripts/suite-cpu.ts test/integration/lifecycle.test.ts
 *
 * Node processes report their own CPU when they end (a preloaded module); servers are read from
 * /proc while they run, with the backends and children they have reaped. What neither saw (psql,
 * pgbench, package installs, the kernel) is the rest of the machine's busy time.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readProcFile, ticksOf, TICKS_PER_SECOND } from './bench/cpu-split';

const root = path.join(__dirname, '..');

/** Appends `{ cpu, rssMb, role }` for the process it is loaded into, when it exits or is stopped. */
const PRELOAD = `
const fs = require('node:fs');
const log = process.env.FERRY_SUITE_CPU_LOG;
const script = process.argv[1] || '';
const role = script.includes('vitest') && script.endsWith('forks.js') ? 'vitest test files'
  : script.endsWith('vitest.mjs') ? 'vitest (its main process)'
  : script.endsWith('bin/ferry.js') ? (process.argv[2] === 'worker' ? 'ferry worker process' : 'ferry ' + (process.argv[2] || ''))
  : 'node ' + require('node:path').basename(script);
let written = false;
function write() {
  if (written || !log) return;
  written = true;
  const used = process.cpuUsage();
  fs.appendFileSync(log, JSON.stringify({ cpu: (used.user + used.system) / 1e6, rssMb: process.resourceUsage().maxRSS / 1024, role }) + '\\n');
}
process.on('exit', write);
// vitest ends its test-file processes with SIGTERM, which skips 'exit': record, then end as
// the signal would have ended them.
if (role === 'vitest test files') process.once('SIGTERM', () => { write(); process.kill(process.pid, 'SIGTERM'); });
`;

/** A server's CPU so far: its own and its reaped children's (Postgres's exited backends). */
function serverTicks(stat: string): number {
  return ticksOf(stat, 'self') + ticksOf(stat, 'children');
}

/** The server kind of a command line, or null for any other process. */
function serverKind(commandLine: string): string | null {
  if (/\btemporal server start-dev\b/.test(commandLine)) return 'Temporal servers';
  if (/\/postgres -D /.test(commandLine) || /^postgres -D /.test(commandLine)) return 'Postgres servers';
  return null;
}

/** Busy CPU seconds of the whole machine so far (all but idle and iowait). */
function machineBusySeconds(): number {
  const fields = readProcFile('/proc/stat')!.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND;
}

async function main(): Promise<void> {
  if (process.platform !== 'linux') throw new Error('suite-cpu reads /proc: it runs on Linux only');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-suite-cpu-'));
  const preload = path.join(dir, 'preload.cjs');
  const log = path.join(dir, 'cpu.jsonl');
  writeFileSync(preload, PRELOAD);
  writeFileSync(log, '');

  const servers = new Map<number, { kind: string; seconds: number }>();
  const look = () => {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      const kind = servers.get(pid)?.kind ?? serverKind(readProcFile(`/proc/${pid}/cmdline`)?.replace(/\0/g, ' ') ?? '');
      const stat = kind ? readProcFile(`/proc/${pid}/stat`) : null;
      if (kind && stat) servers.set(pid, { kind, seconds: serverTicks(stat) / TICKS_PER_SECOND });
    }
  };
  const busyBefore = machineBusySeconds();
  const started = Date.now();
  const sampling = setInterval(look, 1000);
  const nodeOptions = [process.env.NODE_OPTIONS, `--require ${preload}`].filter(Boolean).join(' ');
  const vitestBin = path.join(path.dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
  const vitest = spawn(process.execPath, [vitestBin, 'run', ...process.argv.slice(2)], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, NODE_OPTIONS: nodeOptions, FERRY_SUITE_CPU_LOG: log },
  });
  const code = await new Promise<number>((resolve) => vitest.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0))));
  clearInterval(sampling);
  look();
  const wallSeconds = (Date.now() - started) / 1000;
  const busy = machineBusySeconds() - busyBefore;

  const groups = new Map<string, { processes: number; seconds: number; peakMb: number | null }>();
  const count = (group: string, seconds: number, rssMb: number | null) => {
    const entry = groups.get(group) ?? { processes: 0, seconds: 0, peakMb: null };
    const peakMb = rssMb === null ? entry.peakMb : Math.max(entry.peakMb ?? 0, rssMb);
    groups.set(group, { processes: entry.processes + 1, seconds: entry.seconds + seconds, peakMb });
  };
  for (const line of readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
    const { cpu, rssMb, role } = JSON.parse(line) as { cpu: number; rssMb: number; role: string };
    count(role, cpu, rssMb);
  }
  for (const { kind, seconds } of servers.values()) count(kind, seconds, null);
  rmSync(dir, { recursive: true, force: true });

  const attributed = [...groups.values()].reduce((sum, g) => sum + g.seconds, 0);
  const rows = [...groups.entries()].sort((a, b) => b[1].seconds - a[1].seconds);
  const cores = os.availableParallelism();
  console.log(`\nsuite CPU: ${wallSeconds.toFixed(0)} s of wall time on ${cores} cores; the machine was busy ${busy.toFixed(0)} CPU s (${((100 * busy) / (wallSeconds * cores)).toFixed(0)}%)`);
  // Peak memory is the largest resident set one Node process of the kind reached (servers: not read).
  console.log(`${'CPU s'.padStart(8)} ${'share'.padStart(6)} ${'count'.padStart(6)} ${'peak MB'.padStart(8)}  processes`);
  for (const [group, { processes, seconds, peakMb }] of rows) {
    const peak = peakMb === null ? '' : peakMb.toFixed(0);
    console.log(`${seconds.toFixed(1).padStart(8)} ${`${((100 * seconds) / busy).toFixed(1)}%`.padStart(6)} ${String(processes).padStart(6)} ${peak.padStart(8)}  ${group}`);
  }
  const rest = busy - attributed;
  console.log(`${rest.toFixed(1).padStart(8)} ${`${((100 * rest) / busy).toFixed(1)}%`.padStart(6)} ${''.padStart(6)} ${''.padStart(8)}  the rest (psql, pgbench, installs, the kernel, and anything else)`);
  process.exitCode = code;
}

void main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
