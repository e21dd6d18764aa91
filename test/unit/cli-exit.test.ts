/** Output into a slow pipe arrives whole: the CLI exits only once stdout and stderr drained. */
import { execFileSync } from 'node:child_process';
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
});
