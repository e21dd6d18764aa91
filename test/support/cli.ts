/** Runs the real `ferry` command in a child process, as an operator would. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { TemporalSettings } from '../../lib/settings';

const ferryBin = path.join(__dirname, '..', '..', 'bin', 'ferry.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function ferry(args: string[], temporal: TemporalSettings, env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [ferryBin, ...args],
      {
        env: { ...process.env, TEMPORAL_ADDRESS: temporal.address, FERRY_TASK_QUEUE: temporal.taskQueue, ...env },
        timeout: 120_000,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
