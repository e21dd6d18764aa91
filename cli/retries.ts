/** Retries under way, as `ferry status` and `ferry status --watch` show them. */
import type { ActivityRetry } from '../operator';

/** One status line per retry: "rolling back flags: retrying (attempt 4): connect ECONNREFUSED ...". */
export function formatRetries(retries: ActivityRetry[], now = Date.now()): string[] {
  return retries.map((retry) => {
    const next = retry.nextAttemptAt ? Math.max(0, Math.round((Date.parse(retry.nextAttemptAt) - now) / 1000)) : null;
    return `RETRYING  ${retry.doing}: retrying (attempt ${retry.attempt}${next === null ? '' : `, next in ${next} s`})${retry.lastFailure ? `: ${retry.lastFailure}` : ''}`;
  });
}
