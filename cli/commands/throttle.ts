/** `ferry throttle`: absolute rows/s, batch size, concurrency, backoff limits and pacing for a running migration. */
import type { Command } from 'commander';
import type { ThrottleChange } from '../../lib/throttle';
import { CliError, decimalNumber, settingsOf, wholeNumber, withClient, withNoteOptions, type NoteOptions } from '../context';
import { ExitCode } from '../exit-codes';
import { requestedBy } from '../identity';
import { operatorModule, renderModule } from '../lazy';
import { say } from '../output';

interface ThrottleOptions extends NoteOptions {
  rowsPerSecond?: string;
  batchSize?: string;
  concurrency?: string;
  maxQuerySeconds?: string;
  maxReplicaLagSeconds?: string;
  maxUnreadSlotWalMb?: string;
  pacing?: string;
  p99Factor?: string;
  maxLockWaits?: string;
  maxActiveBackends?: string;
}

export function addThrottleCommand(program: Command): void {
  withNoteOptions(
    program
      .command('throttle')
      .description('Change how fast a running migration copies, and when it holds off. Values are absolute; each takes effect within seconds.')
      .argument('<migration-id>', 'the migration')
      .option('--rows-per-second <n>', `rows per second across the migration, or "unlimited"`)
      .option('--batch-size <n>', 'the largest batch (the copier adapts below it)')
      .option('--concurrency <n>', 'shards copying at once (lowered, the shards already copying finish their ranges; no new one starts until fewer run)')
      .option('--max-query-seconds <s>', "hold while a query on the source (not Ferry's) runs longer (the plan's backoff.maxQuerySeconds)")
      .option('--max-replica-lag-seconds <s>', "hold while a replica of the source lags further behind (backoff.maxReplicaLagSeconds)")
      .option('--max-unread-slot-wal-mb <mb>', 'hold while a replication slot nothing reads holds more WAL, or "none" (backoff.maxUnreadSlotWalMb)')
      .option('--pacing <on|off>', 'the pacing controller: off leaves the rows/s ceiling and the holds; on uses the plan\'s budget or the defaults')
      .option('--p99-factor <x>', "the pacing budget: keep the foreground's p99 within this multiple of what it was before the copy (throttle.budget.p99Factor)")
      .option('--max-lock-waits <n>', "the pacing budget: sessions that may wait on a lock on the tables involved (throttle.budget.maxLockWaits)")
      .option('--max-active-backends <n>', 'the pacing budget: active sessions not Ferry\'s, or "auto" for 1.5x the most seen before the copy, plus 2')
      .option('--json', 'print the throttle now in force as JSON', false),
  ).action(async (migrationId: string, options: ThrottleOptions & { json: boolean }, command: Command) => {
    const change = throttleChangeOf(options);
    await withClient(settingsOf(command), async (client) => {
      const operator = operatorModule();
      const throttle = await operator.changeThrottle(client, migrationId, change);
      // A lower concurrency stops no shard already copying: say how many still run, so the answer is the whole truth.
      const shardsRunning = await operator.shardsRunning(client, migrationId);
      say(
        options.json,
        { migrationId, throttle, shardsRunning },
        `throttle of ${migrationId} is now: ${renderModule().formatThrottle(throttle, shardsRunning ?? 0)}`,
      );
    });
  });
}

function throttleChangeOf(options: ThrottleOptions): ThrottleChange {
  const change: ThrottleChange = { by: requestedBy(options.by) };
  if (options.reason) change.reason = options.reason;
  if (options.rowsPerSecond !== undefined) {
    change.rowsPerSecond = options.rowsPerSecond === 'unlimited' ? null : wholeNumber('--rows-per-second', options.rowsPerSecond);
  }
  if (options.batchSize !== undefined) change.batchSize = wholeNumber('--batch-size', options.batchSize);
  if (options.concurrency !== undefined) change.concurrency = wholeNumber('--concurrency', options.concurrency);
  if (options.maxQuerySeconds !== undefined) change.maxQuerySeconds = decimalNumber('--max-query-seconds', options.maxQuerySeconds);
  if (options.maxReplicaLagSeconds !== undefined) change.maxReplicaLagSeconds = decimalNumber('--max-replica-lag-seconds', options.maxReplicaLagSeconds);
  if (options.maxUnreadSlotWalMb !== undefined) {
    change.maxUnreadSlotWalMb = options.maxUnreadSlotWalMb === 'none' ? null : decimalNumber('--max-unread-slot-wal-mb', options.maxUnreadSlotWalMb);
  }
  if (options.pacing !== undefined) {
    if (options.pacing !== 'on' && options.pacing !== 'off') throw new CliError(`refused: --pacing must be on or off, not "${options.pacing}"`, ExitCode.badInput);
    change.pacing = options.pacing === 'on';
  }
  if (options.p99Factor !== undefined) change.p99Factor = decimalNumber('--p99-factor', options.p99Factor);
  if (options.maxLockWaits !== undefined) change.maxLockWaits = wholeNumber('--max-lock-waits', options.maxLockWaits);
  if (options.maxActiveBackends !== undefined) {
    change.maxActiveBackends = options.maxActiveBackends === 'auto' ? null : wholeNumber('--max-active-backends', options.maxActiveBackends);
  }
  return change;
}
