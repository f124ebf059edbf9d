import { createHash } from 'node:crypto';
import type { Logger } from '../common/logger.js';
import { KubeApiError, type KubeClient } from '../../sidecar/discovery/kube-client.js';

/** What a bearer token is worth: a tagged value, never a throw. */
export type TokenVerdict =
  | { kind: 'authenticated'; user: string; /** When the token stops being valid (ms since epoch; its JWT `exp`), when it says. */ expiresAt?: number }
  | { kind: 'refused'; reason: string }
  | { kind: 'unavailable'; reason: string };

export interface TokenReviewerOptions {
  audience: string;
  /** How long an answer is reused. */
  cacheTtlMs?: number;
  /** How long a refusal is reused (short: a token may be mounted before it is valid). */
  refusalTtlMs?: number;
  /** Distinct tokens remembered at most; the oldest are forgotten first. */
  maxCachedTokens?: number;
}

export const DEFAULT_TOKEN_CACHE_TTL_MS = 60_000;
export const DEFAULT_TOKEN_REFUSAL_TTL_MS = 5_000;
export const DEFAULT_MAX_CACHED_TOKENS = 10_000;
const TOKEN_REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
const TOKEN_REVIEW_TIMEOUT_MS = 5_000;

interface TokenReviewStatus {
  status?: { authenticated?: boolean; user?: { username?: string }; audiences?: string[]; error?: string };
}

/**
 * Checks sidecars' bearer tokens with a TokenReview for one audience (needs `create tokenreviews`),
 * caching answers by the token's SHA-256 (never the token) for a bounded number of tokens and time;
 * concurrent checks of one token share one review.
 */
export class TokenReviewer {
  private readonly cache = new Map<string, { verdict: TokenVerdict; until: number }>();
  private readonly inFlight = new Map<string, Promise<TokenVerdict>>();
  private readonly cacheTtlMs: number;
  private readonly refusalTtlMs: number;
  private readonly maxCachedTokens: number;
  /** The last review failed (said once until one succeeds). */
  private isFailing = false;

  constructor(
    private readonly client: KubeClient,
    private readonly options: TokenReviewerOptions,
    private readonly log: Logger,
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_TOKEN_CACHE_TTL_MS;
    this.refusalTtlMs = options.refusalTtlMs ?? DEFAULT_TOKEN_REFUSAL_TTL_MS;
    this.maxCachedTokens = options.maxCachedTokens ?? DEFAULT_MAX_CACHED_TOKENS;
  }

  async review(token: string): Promise<TokenVerdict> {
    const id = createHash('sha256').update(token).digest('hex');
    const cached = this.cache.get(id);
    if (cached && cached.until > Date.now()) return cached.verdict;
    const pending = this.inFlight.get(id);
    if (pending) return pending;
    if (this.inFlight.size >= this.maxCachedTokens) return { kind: 'unavailable', reason: `more than ${this.maxCachedTokens} token reviews in flight` };
    const review = this.ask(token).finally(() => this.inFlight.delete(id));
    this.inFlight.set(id, review);
    const verdict = await review;
    if (verdict.kind !== 'unavailable') {
      this.cache.delete(id);
      while (this.cache.size >= this.maxCachedTokens) this.cache.delete(this.cache.keys().next().value!);
      const ttlUntil = Date.now() + (verdict.kind === 'authenticated' ? this.cacheTtlMs : this.refusalTtlMs);
      // An answer is never reused past the token's own expiry.
      const until = verdict.kind === 'authenticated' && verdict.expiresAt !== undefined ? Math.min(ttlUntil, verdict.expiresAt) : ttlUntil;
      this.cache.set(id, { verdict, until });
    }
    return verdict;
  }

  private async ask(token: string): Promise<TokenVerdict> {
    const { audience } = this.options;
    let answer: TokenReviewStatus;
    try {
      answer = await this.client.create<TokenReviewStatus>(
        TOKEN_REVIEW_PATH,
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } },
        TOKEN_REVIEW_TIMEOUT_MS,
      );
    } catch (err) {
      const statusCode = err instanceof KubeApiError ? err.statusCode : undefined;
      if (this.isFailing) this.log.debug({ err, statusCode }, 'token review still failing');
      else if (statusCode === 403) this.log.error({ err, statusCode }, 'missing RBAC permission: allow create tokenreviews.authentication.k8s.io (a ClusterRole bound to this Pod\'s service account)');
      else this.log.warn({ err, statusCode }, 'token review failed; sidecars are answered 503 and retry');
      this.isFailing = true;
      return { kind: 'unavailable', reason: `the token could not be reviewed (${(err as Error).message})` };
    }
    if (this.isFailing) this.log.info('token reviews work again');
    this.isFailing = false;
    const status = answer.status ?? {};
    if (status.authenticated !== true) return { kind: 'refused', reason: status.error ? `not authenticated: ${status.error}` : 'not authenticated' };
    if (status.audiences && !status.audiences.includes(audience)) return { kind: 'refused', reason: `issued for ${JSON.stringify(status.audiences)}, not for audience "${audience}"` };
    const expiresAt = jwtExpiry(token);
    return { kind: 'authenticated', user: status.user?.username ?? 'unknown', ...(expiresAt !== undefined ? { expiresAt } : {}) };
  }
}

/**
 * The `exp` claim of a JWT as ms since epoch; undefined for anything else. Read only after the API
 * server authenticated the token, so the claim is the API server's own.
 */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const exp = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
