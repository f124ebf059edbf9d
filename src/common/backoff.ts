export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Growth factor per attempt. */
  multiplier?: number;
  /** Fraction of the delay that is randomised, 0..1 ("full jitter" at 1). */
  jitter?: number;
  random?: () => number;
}

/**
 * Jittered exponential backoff: `next()` returns the delay before the next attempt and grows it;
 * `reset()` after a success.
 */
export class Backoff {
  private attempt = 0;
  constructor(private readonly options: BackoffOptions) {}

  get attempts(): number {
    return this.attempt;
  }

  next(): number {
    const { initialMs, maxMs, multiplier = 2, jitter = 0.2, random = Math.random } = this.options;
    const base = Math.min(maxMs, initialMs * multiplier ** this.attempt);
    this.attempt++;
    const spread = base * jitter;
    return Math.min(maxMs, Math.max(0, Math.round(base - spread + random() * spread * 2)));
  }

  reset(): void {
    this.attempt = 0;
  }
}
