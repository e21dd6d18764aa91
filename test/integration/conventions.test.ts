/**
 * The conventions every command follows, through the real CLI: --json where a command reports,
 * help with the global options, each default once and an example, shell completion that bash
 * really completes with, and colour only on a terminal and never with NO_COLOR.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { ferry } from '../support/cli';
import { createTestDatabase, sql, startWorker, type TestWorker } from '../support/harness';

const planDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-conventions-'));
const ferryBin = path.join(__dirname, '..', '..', 'bin', 'ferry.js');

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout }),
    );
  });
}

describe('CLI conventions', () => {
  let databaseUrl: string;
  let worker: TestWorker;
  let planFile: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase('conventions');
    await sql(databaseUrl, `
      CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
      INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 2000) i;
      CREATE TABLE items_v2 (id int PRIMARY KEY, name text NOT NULL);`);
    planFile = path.join(planDir, 'items.yaml');
    writeFileSync(planFile, `
name: items
source: { connection: APP_DB, table: items, key: id }
target: { connection: APP_DB, table: items_v2 }
transform: { sql: { id: id, name: name } }
throttle: { rowsPerSecond: 400, batchSize: 100, checkpointSeconds: 1 }
# Waits at the cutover gate once copied, so the abort below always finds it running, however slow the machine.
lifecycle: { dualWrites: true, noApps: true, cutover: true }
`);
    worker = await startWorker({ APP_DB: databaseUrl });
  });
  afterAll(async () => {
    await worker?.stop();
  });

  it('prints JSON with --json from start, throttle, retry and abort', async () => {
    const dryRun = await ferry(['start', planFile, '--json'], worker.temporal);
    expect(dryRun.code, dryRun.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(dryRun.stdout)).toMatchObject({ dryRun: true, inspection: { problems: [] } });

    const started = await ferry(['start', planFile, '--execute', '--json'], worker.temporal);
    expect(started.code, started.stderr).toBe(ExitCode.ok);
    const { migrationId } = JSON.parse(started.stdout) as { migrationId: string };
    expect(migrationId).toMatch(/^ferry\/items\//);

    const throttle = await ferry(['throttle', migrationId, '--rows-per-second', '300', '--json'], worker.temporal);
    expect(throttle.code, throttle.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(throttle.stdout)).toMatchObject({ migrationId, throttle: { rowsPerSecond: 300 } });

    const retry = await ferry(['retry', migrationId, '--json'], worker.temporal);
    expect(retry.code, retry.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(retry.stdout)).toMatchObject({ migrationId, retried: 0, stillFailing: 0 });

    const aborted = await ferry(['abort', migrationId, '--reason', 'enough', '--json'], worker.temporal);
    expect(aborted.code, aborted.stderr).toBe(ExitCode.ok);
    expect(JSON.parse(aborted.stdout)).toMatchObject({ migrationId, aborted: true, abort: { reason: 'enough' } });

    // Colour: on a terminal (a pseudo-terminal from script(1)), never with NO_COLOR, never into a pipe.
    const onTerminal = await run('script', ['-qec', `${process.execPath} ${ferryBin} status ${migrationId}`, '/dev/null'], {
      TEMPORAL_ADDRESS: worker.temporal.address,
      TERM: 'xterm',
    });
    expect(onTerminal.stdout).toContain('\x1b[31mABORTED\x1b[0m');
    const noColour = await run('script', ['-qec', `${process.execPath} ${ferryBin} status ${migrationId}`, '/dev/null'], {
      TEMPORAL_ADDRESS: worker.temporal.address,
      TERM: 'xterm',
      NO_COLOR: '1',
    });
    expect(noColour.stdout).toContain('ABORTED');
    expect(noColour.stdout).not.toContain('\x1b[');
    expect((await ferry(['status', migrationId], worker.temporal)).stdout).not.toContain('\x1b[');
  });

  it('shows the global options, each default once, and examples in every command help', async () => {
    const start = await ferry(['start', '--help'], worker.temporal);
    expect(start.stdout).toContain('Global Options:');
    expect(start.stdout).toContain('--address <host:port>');
    expect(start.stdout).toContain('Examples:\n  $ ferry start plans/users.yaml');
    expect(start.stdout.match(/\(default: dry run\)/g)).toHaveLength(1);
    expect(start.stdout).not.toContain('(default: false)');
    for (const command of ['status', 'throttle', 'approve', 'abort', 'list', 'verify', 'worker', 'completion']) {
      const help = await ferry([command, '--help'], worker.temporal);
      expect(help.code, command).toBe(ExitCode.ok);
      expect(help.stdout, command).toContain('Global Options:');
      expect(help.stdout, command).toContain('Examples:');
      expect(help.stdout, command).not.toMatch(/\(default: [^)]*\)\s*\(default:/);
    }
    const top = await ferry(['--help'], worker.temporal);
    expect(top.stdout).toContain('FERRY_OPERATOR');
  });

  it('completes commands and options in bash, and prints a zsh completion', async () => {
    const script = (await ferry(['completion', 'bash'], worker.temporal)).stdout;
    const complete = async (words: string[]) => {
      const line = `source /dev/stdin <<'EOF'\n${script}\nEOF\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _ferry; echo "\${COMPREPLY[@]}"`;
      return (await run('bash', ['-c', line])).stdout.trim().split(/\s+/);
    };
    expect(await complete(['ferry', 'thr'])).toEqual(['throttle']);
    expect(await complete(['ferry', 'status', 'x', '--j'])).toEqual(['--json']);
    expect(await complete(['ferry', 'throttle', 'x', '--rows'])).toEqual(['--rows-per-second']);
    expect(await complete(['ferry', 'worker', '--metrics-h'])).toEqual(['--metrics-host']);

    const zsh = await ferry(['completion', 'zsh'], worker.temporal);
    expect(zsh.stdout.split('\n')[0]).toBe('#compdef ferry');
    expect(zsh.stdout).toContain("'--rows-per-second[");
    const fish = await ferry(['completion', 'fish'], worker.temporal);
    expect(fish.code).toBe(ExitCode.badInput);
    expect(fish.stderr).toContain('completion is for bash or zsh, not "fish"');
  });
});
