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

function checked(name: string, value: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new Error(`ferry: compare.retries.${name} must be a number of 0 or more, not ${String(value)}`);
  }
  return value;
}

export class RetryAllowance {
  private readonly perWindow: number;
  private readonly windowMs: number;
  private windowStart = -Infinity;
  private used = 0;

  constructor(options: RetryAllowanceOptions = {}) {
    this.perWindow = checked('perWindow', options.perWindow ?? 10);
    this.windowMs = checked('windowMs', options.windowMs ?? 60_000);
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
