/**
 * Heartbeats from a timer: a long activity beats every few seconds whatever it is doing (a
 * statement that runs for minutes, a wait the plan asks for), so a short heartbeat timeout
 * fires only when the worker is gone, and a cancellation reaches the activity promptly.
 */
import { activityInfo, Context } from '@temporalio/activity';

/** How often a running activity heartbeats: well under the workflows' heartbeat timeouts (10 s). */
export const HEARTBEAT_EVERY_MS = 2000;

export interface Heartbeats {
  /**
   * From now on, beat `details()`: the activity's latest checkpoint (what a retried attempt
   * resumes from), read at every beat, so the timer never sends an older one.
   */
  follow(details: () => unknown): void;
  /** Stops the timer; safe to call twice. */
  stop(): void;
}

/**
 * Heartbeats now and every `everyMs` until stopped, inside the activity that calls it. Until
 * `follow` is called it beats the details the previous attempt left, so a resumption point is
 * never lost. Stop it in a `finally`.
 */
export function startHeartbeats(details: () => unknown = () => activityInfo().heartbeatDetails, everyMs = HEARTBEAT_EVERY_MS): Heartbeats {
  const context = Context.current();
  let latest = details;
  const beat = () => context.heartbeat(latest());
  beat();
  const timer = setInterval(beat, everyMs);
  // A forgotten stop must not keep a worker that is shutting down alive.
  timer.unref();
  return {
    follow(next) {
      latest = next;
      beat();
    },
    stop: () => clearInterval(timer),
  };
}

/** Runs `work` with heartbeats going on underneath, however it ends. */
export async function withHeartbeats<T>(work: (heartbeats: Heartbeats) => Promise<T>): Promise<T> {
  const heartbeats = startHeartbeats();
  try {
    return await work(heartbeats);
  } finally {
    heartbeats.stop();
  }
}
