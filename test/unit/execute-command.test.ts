/**
 * The line a dry run prints for running it for real: a shell reads it back as the same plan, id
 * and subset the dry run previewed, whatever characters a condition holds.
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { executeCommand } from '../../cli/commands/start';

/** The words `sh` reads from a command line. */
function wordsOf(line: string): string[] {
  const printed = spawnSync('sh', ['-c', `printf '%s\\0' ${line}`], { encoding: 'utf8' });
  expect(printed.status, printed.stderr).toBe(0);
  return printed.stdout.split('\0').slice(0, -1);
}

describe('the command a dry run prints for --execute', () => {
  it('keeps the id and the subset the dry run previewed', () => {
    const line = executeCommand('plans/users v2.yaml', {
      id: 'ferry/users/first',
      where: "created_at > now() - interval '1 day'",
      keyRange: '100..',
      sample: '5%',
      partitionValues: 'eu,us',
      rerun: true,
      apps: false,
    });
    expect(wordsOf(line)).toEqual([
      'ferry', 'start', 'plans/users v2.yaml', '--execute',
      '--id', 'ferry/users/first',
      '--where', "created_at > now() - interval '1 day'",
      '--key-range', '100..',
      '--sample', '5%',
      '--partition-values', 'eu,us',
      '--rerun', '--no-apps',
    ]);
    expect(executeCommand('plan.yaml', { rerun: false, apps: true })).toBe('ferry start plan.yaml --execute');
  });

  it('quotes any condition so that the shell reads it back unchanged', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1 }).filter((s) => !s.includes('\0')), (where) => {
        expect(wordsOf(executeCommand('plan.yaml', { where, rerun: false, apps: true }))).toEqual(['ferry', 'start', 'plan.yaml', '--execute', '--where', where]);
      }),
      { numRuns: 200 },
    );
  });
});
