/**
 * RetryAllowance caps how many mismatches are read again, per fixed window, so a burst of
 * replication lag cannot double the load on either store.
 */

export interface RetryAllowanceOptions {
  /** Retries allowed per window. (Default: 10) */
  perWindow?: number;
  /** The window's length; the count starts again at each new window. (Default: 60000) */
  windowMs?: number;
}

export class RetryAllowance {
  private readonly perWindow: number;
  private readonly windowMs: number;
  private windowStart = -Infinity;
  private used = 0;

  constructor(options: RetryAllowanceOptions = {}) {
    this.perWindow = Math.max(0, options.perWindow ?? 10);
    this.windowMs = options.windowMs ?? 60_000;
  }

  /** Takes one retry if the current window has one left. */
  take(): boolean {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used >= this.perWindow) return false;
    this.used += 1;
    return true;
  }

  remaining(): number {
    return Date.now() - this.windowStart >= this.windowMs ? this.perWindow : this.perWindow - this.used;
  }
}
