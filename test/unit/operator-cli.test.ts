/** The CLI's verdicts from pure inputs: outcome and exit code of a report, SDK errors in one line. */
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../cli/exit-codes';
import { outcomeOf, statusExitCode } from '../../cli/outcome';
import { sdkErrorLine } from '../../cli/temporal-health';
import type { MigrationStatus } from '../../lib/status';

const withPhase = (phase: MigrationStatus['phase']) => ({ phase }) as MigrationStatus;

describe('outcomeOf and statusExitCode', () => {
  it('calls a run that completed in the aborted phase aborted, with exit 5', () => {
    expect(outcomeOf({ runState: 'completed', status: withPhase('aborted') })).toBe('aborted');
    expect(statusExitCode({ runState: 'completed', status: withPhase('aborted') })).toBe(ExitCode.aborted);
    expect(statusExitCode({ runState: 'completed', status: withPhase('completed') })).toBe(ExitCode.ok);
    expect(statusExitCode({ runState: 'running', status: withPhase('backfilling') })).toBe(ExitCode.ok);
    expect(statusExitCode({ runState: 'failed', status: null })).toBe(ExitCode.failed);
    expect(statusExitCode({ runState: 'terminated', status: null })).toBe(ExitCode.failed);
  });
});

describe('sdkErrorLine', () => {
  const wrapped = (message: string, code: number, cause: string) => Object.assign(new Error(message), { cause: Object.assign(new Error(`${code} X: ${cause}`), { code }) });
  it('gives the root cause in one line, and exit 4 when Temporal is unavailable', () => {
    expect(sdkErrorLine(wrapped('Failed to list workflows', 14, 'No connection established\nmore'))).toEqual({
      message: 'could not list workflows: No connection established; is Temporal up at the address given (--address / TEMPORAL_ADDRESS)?',
      exitCode: ExitCode.unreachable,
      redact: true,
    });
    expect(sdkErrorLine(wrapped('Failed to query Workflow', 13, 'internal error'))).toEqual({ message: 'could not query Workflow: internal error', exitCode: ExitCode.failed, redact: true });
  });
  it('leaves Ferry’s own errors alone', () => {
    expect(sdkErrorLine(new Error('no migration with id "x"'))).toBeNull();
  });
});
