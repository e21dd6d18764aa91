/** Output into a slow pipe arrives whole: the CLI exits only once stdout and stderr drained. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');

/** Runs `command` with its stdout and stderr into a reader that starts a second late, and counts the bytes it got. */
function bytesThroughSlowPipe(command: string): number {
  const counted = execFileSync('sh', ['-c', `${command} 2>&1 | (sleep 1; wc -c)`], { cwd: root, encoding: 'utf8' });
  return Number(counted.trim());
}

describe('ferry output into a pipe', () => {
  it('is not cut at the pipe buffer when the process exits', () => {
    const script = `require('tsx/cjs'); process.stdout.write('x'.repeat(1_000_000)); require('./cli/exit.ts').exitWhenFlushed(0)`;
    expect(bytesThroughSlowPipe(`node -e "${script}"`)).toBe(1_000_000);
  });

  it('carries every line of a long error from the real command', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-pipe-'));
    const unknown = Array.from({ length: 3000 }, (_, i) => `colour${i}: red`);
    const plan = ['name: big', 'source: { connection: A_URL, table: t, key: id }', 'target: { connection: A_URL, table: u }', 'transform: { sql: { id: id } }', ...unknown];
    writeFileSync(path.join(dir, 'big.yaml'), `${plan.join('\n')}\n`);
    const lines = execFileSync('sh', ['-c', `node bin/ferry.js start ${path.join(dir, 'big.yaml')} 2>&1 | (sleep 1; grep -c 'is not a known setting')`], { cwd: root, encoding: 'utf8' });
    expect(Number(lines.trim())).toBe(3000);
  });
});

describe('ferry --version', () => {
  it('prints the package version and exits 0', () => {
    const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    expect(execFileSync('node', ['bin/ferry.js', '--version'], { cwd: root, encoding: 'utf8' }).trim()).toBe(version);
  });
});
