/** A Ferry worker in a process of its own, so a test can kill it the way a machine dies. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { TemporalSettings } from '../../lib/settings';

const ferryBin = path.join(__dirname, '..', '..', 'bin', 'ferry.js');

export interface WorkerProcess {
  process: ChildProcess;
  output(): string;
  /** SIGKILL: no shutdown, no last heartbeat. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** `args` go after `ferry worker` (e.g. TLS flags). */
export async function startWorkerProcess(temporal: TemporalSettings, env: Record<string, string>, args: string[] = []): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [ferryBin, 'worker', ...args], {
    env: { ...process.env, ...env, TEMPORAL_ADDRESS: temporal.address, FERRY_TASK_QUEUE: temporal.taskQueue },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-50_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // The worker logs its state once it polls the task queue.
  const deadline = Date.now() + 90_000;
  while (!/state: 'RUNNING'|Worker state changed.*RUNNING|"state":"RUNNING"/s.test(output)) {
    if (child.exitCode !== null) throw new Error(`worker exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`worker did not start:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    process: child,
    output: () => output,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
