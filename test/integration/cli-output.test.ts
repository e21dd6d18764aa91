/** The installed `ferry` command (dist/, which the test setup builds): its output and its version. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');

describe('ferry output into a slow pipe', () => {
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
