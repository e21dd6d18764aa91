/**
 * A Ferry worker as a child process (`node bin/ferry.js worker`), so that its memory is its own
 * and can be read from /proc: sampled VmRSS per phase, and VmHWM (the kernel's peak) overall.
 */
import type { Client } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';

const projectRoot = path.resolve(__dirname, '..', '..');
const READY_TIMEOUT_MS = 120_000;
const SAMPLE_EVERY_MS = 100;

export interface WorkerProcess {
  pid: number;
  logFile: string;
  /** Waits until the worker polls both the workflow and the activity task queue. */
  ready(client: Client, namespace: string): Promise<void>;
  /** Resident set now, in MB. */
  rssMb(): number;
  /** Starts a fresh per-phase peak of sampled VmRSS. */
  startPhase(): void;
  /** Peak sampled VmRSS of the phase, in MB. */
  phasePeakMb(): number;
  /** The kernel's peak resident set of the whole run (VmHWM), in MB; read before the process exits. */
  peakMb(): number;
  stop(): Promise<void>;
}

/** A /proc/<pid>/status field in kB, or null when the process is gone. */
function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

export function startWorkerProcess(env: Record<string, string>, logFile: string): WorkerProcess {
  const log = createWriteStream(logFile);
  const child: ChildProcess = spawn(process.execPath, [path.join(projectRoot, 'bin', 'ferry.js'), 'worker'], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const pid = child.pid!;

  let phasePeakKb = 0;
  let peakKb = 0;
  const sampler = setInterval(() => {
    const rss = statusKb(pid, 'VmRSS') ?? 0;
    phasePeakKb = Math.max(phasePeakKb, rss);
    peakKb = Math.max(peakKb, rss, statusKb(pid, 'VmHWM') ?? 0);
  }, SAMPLE_EVERY_MS);
  sampler.unref();

  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  return {
    pid,
    logFile,
    async ready(client, namespace) {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      // temporal.api.enums.v1.TaskQueueType: 1 workflow tasks, 2 activity tasks.
      const types = [1, 2];
      while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`the worker exited with code ${child.exitCode}; see ${logFile}`);
        const polled = await Promise.all(
          types.map(async (taskQueueType) => {
            const response = await client.workflowService.describeTaskQueue({
              namespace,
              taskQueue: { name: env.FERRY_TASK_QUEUE },
              taskQueueType,
            });
            return (response.pollers?.length ?? 0) > 0;
          }),
        );
        if (polled.every(Boolean)) return;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      throw new Error(`the worker did not poll its task queue within ${READY_TIMEOUT_MS / 1000} s; see ${logFile}`);
    },
    rssMb: () => (statusKb(pid, 'VmRSS') ?? 0) / 1024,
    startPhase() {
      phasePeakKb = statusKb(pid, 'VmRSS') ?? 0;
    },
    phasePeakMb: () => phasePeakKb / 1024,
    peakMb() {
      peakKb = Math.max(peakKb, statusKb(pid, 'VmHWM') ?? 0);
      return peakKb / 1024;
    },
    async stop() {
      this.peakMb();
      clearInterval(sampler);
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      }
      log.end();
    },
  };
}
