/**
 * The activities the migration workflow calls, each with the timeouts and retries its kind of
 * work needs. One set for every part of the migrator, so each call is configured once.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { FerryActivities } from '../../activities';

/**
 * Every activity heartbeats every 2 s from a timer, whatever it is doing: silence for this long
 * means its worker is gone, and another worker takes it over.
 */
const HEARTBEAT_TIMEOUT = '10 seconds';

export const { inspect, planShards, prepareTarget, claimTarget, gateFigures } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection', 'TargetBusy', 'TargetFinished'] },
});

/**
 * What the lifecycle must finish once begun: flag changes (a rollback above all), the wait for
 * applications to follow them, and the record of how the migration ended. They retry until the
 * database answers again, however long an outage lasts; `ferry status` shows each retry and
 * its reason (the pending activity's last failure). Only a worker that lacks the connection
 * cannot heal by waiting.
 */
const UNTIL_DONE = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds', nonRetryableErrorTypes: ['MissingConnection'] };

export const { setFlags, releaseTarget } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: UNTIL_DONE,
});

/** Releasing the target of a migration that failed: best effort, it must not hold up the failure. */
export const { releaseTarget: releaseFailedTarget } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 minute',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

export const { recheckOpenMismatches, beginVerificationRun, finishVerificationRun, mismatchReport, repairMismatches } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});

export const { verifyCoverage } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', nonRetryableErrorTypes: ['MissingConnection'] },
});

export const { awaitFlagAcks } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: UNTIL_DONE,
});

export const { retryFailedRecords } = proxyActivities<FerryActivities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['MissingConnection'] },
});
