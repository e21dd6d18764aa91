/**
 * A local Temporal dev server (`temporal server start-dev`) on free ports, for the demo, the
 * tests and the benchmark. The CLI comes from install-temporal.
 */
import { Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import { ferrySearchAttributes } from '../../lib/search-attributes';
import { ensureTemporalCli } from '../install-temporal';
import { freePort } from './ports';

export interface TemporalServer {
  address: string;
  /** The Web UI, when started with one. */
  uiUrl: string | null;
  /** Stops the server; with a dbFile, start again with the same file to keep its state. */
  stop(): Promise<void>;
}

export interface StartTemporalOptions {
  /** Persist state in this SQLite file (so a restart keeps running workflows). */
  dbFile?: string;
  /** Serve the Web UI. (Default: false) */
  ui?: boolean;
  /** The gRPC port. (Default: a free one) */
  port?: number;
  /** Extra `--dynamic-config-value` settings, e.g. a low continue-as-new threshold for tests. */
  dynamicConfig?: Record<string, unknown>;
  /** Search attributes to register, name to type. */
  searchAttributes?: Record<string, string>;
  /** Leave Ferry's own search attributes out, as a server Ferry did not start has them. (Default: false) */
  withoutFerrySearchAttributes?: boolean;
}

const READY_TIMEOUT_MS = 60_000;

async function waitUntilReady(address: string, process: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (process.exitCode !== null) {
      throw new Error(`temporal server exited with code ${process.exitCode}:\n${output()}`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.describeNamespace({ namespace: 'default' });
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw new Error(`temporal server at ${address} not ready after ${READY_TIMEOUT_MS} ms: ${String(lastError)}\n${output()}`);
}

/** How often a start is tried again when a port picked as free was taken meanwhile by another process. */
const PORT_RACE_ATTEMPTS = 4;

export async function startTemporal(options: StartTemporalOptions = {}): Promise<TemporalServer> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startTemporalOnce(options);
    } catch (error) {
      // Free ports are found by binding and releasing them: on a busy machine another process
      // can take one before the server binds it. Fresh ports then, unless the caller chose them.
      const raced = /address already in use/.test((error as Error).message);
      if (!raced || options.port !== undefined || attempt >= PORT_RACE_ATTEMPTS) throw error;
    }
  }
}

async function startTemporalOnce(options: StartTemporalOptions): Promise<TemporalServer> {
  const cli = ensureTemporalCli();
  const port = options.port ?? (await freePort());
  const uiPort = options.ui ? await freePort() : null;
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'warn'];
  args.push('--http-port', String(await freePort()), '--metrics-port', String(await freePort()));
  if (uiPort) args.push('--ui-port', String(uiPort));
  else args.push('--headless');
  if (options.dbFile) args.push('--db-filename', options.dbFile);
  for (const [key, value] of Object.entries(options.dynamicConfig ?? {})) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  for (const [name, type] of Object.entries({ ...(options.withoutFerrySearchAttributes ? {} : ferrySearchAttributes), ...options.searchAttributes })) {
    args.push('--search-attribute', `${name}=${type}`);
  }

  const child = spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const address = `127.0.0.1:${port}`;
  try {
    await waitUntilReady(address, child, () => output);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    address,
    uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : null,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
