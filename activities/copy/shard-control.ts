/**
 * A copy call's watch on its shard workflow: once a second it asks the shard (a query, so no
 * history grows) for its throttle, pause and limits (backoff and pacing budget), so that a call
 * may run for many seconds and still return within about a second of a change or a pause, for
 * the shard to apply it.
 */
import { Context } from '@temporalio/activity';
import { SHARD_CONTROL_QUERY } from '../../lib/ids';
import { sameLimits, type PlanLimits } from '../../lib/throttle';

/** How often the shard is asked, and how long one answer may take before it is given up on. */
const ASK_EVERY_MS = 1000;
const ANSWER_WITHIN_MS = 5000;

interface ShardControl {
  throttle: { rowsPerSecond: number | null; batchSize: number };
  paused: boolean;
  /** Absent from a shard running older code. */
  limits?: PlanLimits;
}

export interface ShardControlWatch {
  /** The shard's throttle, pause or limits differ from what this call was given. */
  readonly changed: boolean;
  /** Resolves once `changed` turns true (never, if it does not). */
  readonly whenChanged: Promise<void>;
  stop(): void;
}

export interface WatchedShard {
  /** The shard workflow's id. */
  workflowId: string;
  /** The throttle the call was started with. */
  rowsPerSecond: number | null;
  batchSize: number;
  /** The limits (backoff and pacing budget) the call was started with. */
  limits: PlanLimits;
}

/**
 * Watches `shard` in the background; the copy loop reads `changed` between batches and races
 * its waits against `whenChanged`. A shard that cannot be asked (no client, a slow answer) is
 * taken as unchanged: the call still returns after its maxSeconds, as before.
 */
export function watchShardControl(shard: WatchedShard, askEveryMs = ASK_EVERY_MS): ShardControlWatch {
  let changed = false;
  let stopped = false;
  let asking = false;
  let markChanged: () => void = () => {};
  const whenChanged = new Promise<void>((resolve) => (markChanged = resolve));
  let client: Context['client'] | null = null;
  try {
    client = Context.current().client;
  } catch {
    client = null;
  }
  const ask = async () => {
    if (!client || asking || stopped || changed) return;
    asking = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = client.workflow.getHandle(shard.workflowId).query<ShardControl>(SHARD_CONTROL_QUERY);
      const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ANSWER_WITHIN_MS)));
      const control = await Promise.race([answer, late]);
      answer.catch(() => {});
      const limitsChanged = control?.limits !== undefined && !sameLimits(control.limits, shard.limits);
      if (control && !stopped && (control.paused || control.throttle.rowsPerSecond !== shard.rowsPerSecond || control.throttle.batchSize !== shard.batchSize || limitsChanged)) {
        changed = true;
        markChanged();
      }
    } catch {
      // Unanswered: the shard finds out at the end of the call.
    } finally {
      clearTimeout(timer);
      asking = false;
    }
  };
  const timer = client ? setInterval(() => void ask(), askEveryMs) : undefined;
  timer?.unref();
  return {
    get changed() {
      return changed;
    },
    whenChanged,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
