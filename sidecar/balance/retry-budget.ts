export interface RetryBudgetOptions {
  /** Retries allowed per request made (0.2 = one retry per five requests). */
  ratio: number;
  /** Retries always allowed per second, so a quiet target can still retry. */
  minPerSecond: number;
  /** Cap on saved-up retries. */
  maxTokens: number;
}

export const DEFAULT_RETRY_BUDGET: RetryBudgetOptions = { ratio: 0.2, minPerSecond: 10, maxTokens: 100 };

/**
 * A token bucket shared by one target's requests: each request deposits `ratio` of a retry, time
 * deposits `minPerSecond`, and each retry withdraws one, so retries cannot amplify an outage.
 */
export class RetryBudget {
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly options: RetryBudgetOptions = DEFAULT_RETRY_BUDGET,
    now: number = Date.now(),
  ) {
    this.tokens = options.minPerSecond;
    this.refilledAt = now;
  }

  deposit(): void {
    const next = this.tokens + this.options.ratio;
    this.tokens = next > this.options.maxTokens ? this.options.maxTokens : next;
  }

  tryWithdraw(now: number): boolean {
    const elapsed = now - this.refilledAt;
    if (elapsed > 0) {
      this.tokens = Math.min(this.options.maxTokens, this.tokens + (elapsed / 1000) * this.options.minPerSecond);
      this.refilledAt = now;
    }
    // A hair under one still counts: 5 × 0.2 is 0.9999999999999999 in floating point.
    if (this.tokens < 1 - 1e-9) return false;
    this.tokens -= 1;
    return true;
  }
}
