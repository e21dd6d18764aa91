/**
 * Where the machine's CPU went while a runner ran, read from /proc (Linux only): the checkout's
 * worker, its event loop's thread apart from its other threads (transform threads, V8's garbage
 * collection helpers, libuv's pool), and Postgres's processes by the database they serve. A path
 * whose rows are bounded by CPU, as on a 2-core machine, is sped up only by cutting what these
 * show. Backends that exited meanwhile count together: their time is kept by the postmaster.
 */
import { readdirSync, readFileSync } from 'node:fs';

export const TICKS_PER_SECOND = 100;

/** CPU seconds used so far, by group. */
export type CpuSnapshot = Map<string, number>;

/** A /proc stat line's fields after the command name (which may hold spaces and parentheses), from the state on. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User and system time, of the process itself or of its children it waited for. */
export function ticksOf(stat: string, of: 'self' | 'children' = 'self'): number {
  const fields = statFields(stat);
  return of === 'self' ? Number(fields[11]) + Number(fields[12]) : Number(fields[13]) + Number(fields[14]);
}

/** A /proc file's text, or null once its process has gone. */
export function readProcFile(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function add(snapshot: CpuSnapshot, group: string, ticks: number): void {
  snapshot.set(group, (snapshot.get(group) ?? 0) + ticks / TICKS_PER_SECOND);
}

/**
 * The CPU used so far by the worker (process `workerPid`) and by the Postgres server that serves
 * the databases in `databases` (name to the group its backends count under).
 */
export function cpuSnapshot(workerPid: number, databases: Readonly<Record<string, string>>): CpuSnapshot {
  const snapshot: CpuSnapshot = new Map();
  for (const tid of readdirSync(`/proc/${workerPid}/task`)) {
    const stat = readProcFile(`/proc/${workerPid}/task/${tid}/stat`);
    if (stat) add(snapshot, Number(tid) === workerPid ? 'worker: event loop' : 'worker: other threads', ticksOf(stat));
  }
  const backends: { pid: string; parent: string; database: string | null; stat: string }[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const title = readProcFile(`/proc/${pid}/cmdline`)?.replace(/\0/g, ' ').trim();
    const stat = title?.startsWith('postgres:') ? readProcFile(`/proc/${pid}/stat`) : null;
    if (!title || !stat) continue;
    // "postgres: user database host(port) state" for a backend; "postgres: walwriter" and the like otherwise.
    const words = title.split(/\s+/);
    backends.push({ pid, parent: statFields(stat)[1]!, database: words.length >= 4 ? words[2]! : null, stat });
  }
  const server = backends.find((b) => b.database !== null && b.database in databases)?.parent;
  if (!server) return snapshot;
  for (const backend of backends.filter((b) => b.parent === server)) {
    add(snapshot, backend.database !== null && backend.database in databases ? databases[backend.database]! : 'postgres: other', ticksOf(backend.stat));
  }
  const postmaster = readProcFile(`/proc/${server}/stat`);
  if (postmaster) add(snapshot, 'postgres: exited backends', ticksOf(postmaster, 'children'));
  return snapshot;
}

/** CPU seconds by group between two snapshots (groups that used none left out). */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [group, seconds] of after) {
    const delta = seconds - (before.get(group) ?? 0);
    if (delta > 0) used[group] = delta;
  }
  return used;
}
