/** What `ferry status` says about activities being retried, from a run's pending activities. */
import type { WorkflowExecutionDescription } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { formatRetries } from '../../cli/retries';
import { activityRetries } from '../../operator';

const described = (pendingActivities: unknown[]) => ({ raw: { pendingActivities } }) as unknown as WorkflowExecutionDescription;
const at = (iso: string) => ({ seconds: Date.parse(iso) / 1000, nanos: 0 });

describe('activity retries in status', () => {
  it('shows a rollback retrying with its attempt, the next attempt and the last failure, values redacted', () => {
    const retries = activityRetries(
      described([
        { activityType: { name: 'setFlags' }, attempt: 7, lastFailure: { message: 'connect ECONNREFUSED 127.0.0.1:5432' }, nextAttemptScheduleTime: at('2026-01-01T00:00:10Z') },
        { activityType: { name: 'awaitFlagAcks' }, attempt: 2, lastFailure: { message: `invalid input syntax for type integer: "secret"` } },
        { activityType: { name: 'releaseTarget' }, attempt: 1 },
      ]),
      'aborting',
    );
    expect(retries).toEqual([
      { activity: 'setFlags', doing: 'rolling back flags', attempt: 7, lastFailure: 'connect ECONNREFUSED 127.0.0.1:5432', nextAttemptAt: '2026-01-01T00:00:10.000Z' },
      { activity: 'awaitFlagAcks', doing: 'waiting for applications to follow the flags', attempt: 2, lastFailure: 'invalid input syntax for type integer: "<redacted>"', nextAttemptAt: null },
    ]);
    expect(formatRetries(retries, Date.parse('2026-01-01T00:00:02Z'))).toEqual([
      'RETRYING  rolling back flags: retrying (attempt 7, next in 8 s): connect ECONNREFUSED 127.0.0.1:5432',
      'RETRYING  waiting for applications to follow the flags: retrying (attempt 2): invalid input syntax for type integer: "<redacted>"',
    ]);
  });

  it('calls a flag change outside an abort a change, and shows nothing when no activity failed', () => {
    expect(activityRetries(described([{ activityType: { name: 'setFlags' }, attempt: 3, lastFailure: { message: 'boom' } }]), 'reads-on-new')[0]!.doing).toBe('changing flags');
    expect(activityRetries(described([{ activityType: { name: 'copyBatches' }, attempt: 1 }]), 'backfilling')).toEqual([]);
    expect(activityRetries(described([]), null)).toEqual([]);
  });
});
