/**
 * `ferry dev` as a person runs it: it comes up, prints what to export, the commands work against
 * it from another process (a real migration of its sample table, checked with SQL), and Ctrl-C
 * takes it all down.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { eventually, sqlRow, uniqueName } from '../support/harness';

const root = path.join(__dirname, '..', '..');

describe('ferry dev', () => {
  let dev: ChildProcess | null = null;
  afterAll(() => {
    if (dev && dev.exitCode === null) dev.kill('SIGKILL');
  });

  it('runs Temporal, PostgreSQL and a worker until Ctrl-C, and says what to export', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, FERRY_TASK_QUEUE: uniqueName('dev') };
    delete env.DATABASE_URL;
    delete env.TEMPORAL_ADDRESS;
    const child = spawn(process.execPath, [path.join(root, 'bin', 'ferry.js'), 'dev', '--rows', '3000'], { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    dev = child;
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

    await eventually(async () => output.includes('Ctrl-C stops'), 120_000, `ferry dev to be ready:\n${output}`);
    const exported = Object.fromEntries([...output.matchAll(/^ {2}export (\w+)='?([^'\n]+)'?$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(Object.keys(exported).sort()).toEqual(['DEMO_DATABASE_URL', 'FERRY_TASK_QUEUE', 'TEMPORAL_ADDRESS']);
    expect(output).toContain('ferry start examples/split-full-name.yaml --execute');

    const temporal = { address: exported.TEMPORAL_ADDRESS!, namespace: 'default', taskQueue: exported.FERRY_TASK_QUEUE! };
    const run = await ferry(['start', path.join(root, 'examples', 'split-full-name.yaml'), '--execute', '--wait'], temporal, exported);
    expect(run.code, run.stdout + run.stderr).toBe(ExitCode.ok);
    const { copied, differing } = await sqlRow(
      exported.DEMO_DATABASE_URL!,
      `SELECT (SELECT count(*) FROM users_v2)::int AS copied,
              (SELECT count(*) FROM users u JOIN users_v2 v USING (id) WHERE u.email <> v.email)::int AS differing`,
    );
    expect([copied, differing]).toEqual([3000, 0]);

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(output).toContain('stopping ...');
  });
});
