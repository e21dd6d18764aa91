/**
 * KillSwitch stops the new side of dual writes or dual reads in one process after too many
 * errors, so a broken new store costs the application neither errors nor latency. It resets
 * after a cool-down, or as soon as the flags change (an operator acted).
 */

export interface KillSwitchOptions {
  /** Errors within `windowMs` that trip the switch. (Default: 5) */
  maxErrors?: number;
  /** The sliding window errors are counted in. (Default: 60000) */
  windowMs?: number;
  /** How long the new side stays off once tripped, unless the flag version changes first. (Default: 300000) */
  coolDownMs?: number;
}

export interface KillSwitchState {
  tripped: boolean;
  /** New-side errors within the current window. */
  recentErrors: number;
  /** When it tripped, while tripped. */
  trippedAt?: Date;
  /** When it resets by itself, while tripped (none for an endless cool-down). */
  until?: Date;
  /** The flag version it tripped under; any other version resets it. */
  version?: number;
}

/** The longest a Node timer waits. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function checked(name: string, value: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new Error(`ferry: killSwitch.${name} must be a number of 0 or more, not ${String(value)}`);
  }
  return value;
}

export class KillSwitch {
  private readonly maxErrors: number;
  private readonly windowMs: number;
  private readonly coolDownMs: number;
  private errors: number[] = [];
  private trippedAt: number | null = null;
  private trippedVersion: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  /** `onChange` hears every trip and reset (for a gauge, a log line). */
  constructor(options: KillSwitchOptions = {}, private readonly onChange: (tripped: boolean) => void = () => {}) {
    this.maxErrors = Math.max(1, checked('maxErrors', options.maxErrors ?? 5));
    this.windowMs = checked('windowMs', options.windowMs ?? 60_000);
    this.coolDownMs = checked('coolDownMs', options.coolDownMs ?? 300_000);
  }

  /** Whether the new side may run under flag version `version`. Never throws. */
  allows(version: number): boolean {
    if (this.trippedAt === null) return true;
    if (version !== this.trippedVersion || Date.now() - this.trippedAt >= this.coolDownMs) {
      this.reset();
      return true;
    }
    return false;
  }

  /** Counts a new-side error under flag version `version`; true when this error tripped the switch. */
  recordError(version: number): boolean {
    const now = Date.now();
    this.errors = this.errors.filter((at) => now - at < this.windowMs);
    this.errors.push(now);
    if (this.trippedAt !== null || this.errors.length < this.maxErrors) return false;
    this.trippedAt = now;
    this.trippedVersion = version;
    this.scheduleReset();
    this.onChange(true);
    return true;
  }

  /**
   * The gauge must fall back at the end of the cool-down even when no call comes to notice it.
   * A timer waits at most MAX_TIMER_MS (Node fires a longer one at once): a longer cool-down
   * (or Infinity, until the flags change) waits in steps.
   */
  private scheduleReset(): void {
    const left = this.trippedAt! + this.coolDownMs - Date.now();
    this.timer = setTimeout(() => (left <= MAX_TIMER_MS ? this.reset() : this.scheduleReset()), Math.min(Math.max(left, 0), MAX_TIMER_MS));
    this.timer.unref?.();
  }

  /** Resets at once (the flags changed, or a person asked). */
  reset(): void {
    this.errors = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.trippedAt === null) return;
    this.trippedAt = null;
    this.trippedVersion = null;
    this.onChange(false);
  }

  state(): KillSwitchState {
    const now = Date.now();
    const recentErrors = this.errors.filter((at) => now - at < this.windowMs).length;
    if (this.trippedAt === null) return { tripped: false, recentErrors };
    return {
      tripped: true,
      recentErrors,
      trippedAt: new Date(this.trippedAt),
      until: Number.isFinite(this.coolDownMs) ? new Date(this.trippedAt + this.coolDownMs) : undefined,
      version: this.trippedVersion ?? undefined,
    };
  }

  /** Stops the cool-down timer (the owner is closing). */
  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
