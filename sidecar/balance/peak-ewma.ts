import { LB_POLICY } from '../../src/common/contract.js';
import { LATENCY_FLOOR_MS, type EndpointStats } from './endpoint-stats.js';
import type { PickLog, WeightParts } from './pick-log.js';
import type { EndpointScore, Policy, PolicyOptions } from './policy.js';

/**
 * Latencies up to this multiple of the fastest endpoint's, plus LATENCY_NOISE_MS, count as equal:
 * estimates of equal Pods differ by about that much on a shared node, and treating that noise as
 * signal is what starves Pods under classic peak-EWMA.
 */
export const LATENCY_NOISE_FACTOR = 2;
/**
 * Jitter of a few milliseconds is noise at any latency (loopback, a busy node): with 1 ms, the
 * estimates of equal endpoints at 1-4 ms left a 3 ms band.
 */
export const LATENCY_NOISE_MS = 2;
/**
 * Beyond the noise band, weight falls with the 8th power of the latency ratio: 1.2× the band is
 * 0.23, 1.5× is 0.04. Steep because under saturation every measured latency includes the proxy's
 * own queueing, which brings the ratios closer (with exponent 3, a 20 ms slower endpoint of 4 got
 * 4.9% of saturated load in the balance bench).
 */
export const LATENCY_PENALTY_EXPONENT = 8;
/** The failure ratio is capped here so the failure factor stays finite (1 / 0.01² = 10,000). */
const MAX_FAILURE_RATIO = 0.99;
/**
 * No candidate's weight falls below this fraction of the heaviest one's, so an endpoint with a
 * stale bad estimate keeps being sampled (about 0.3% of picks beside three healthy peers) and its
 * estimate can recover.
 */
export const MIN_WEIGHT_FRACTION = 0.01;
/**
 * Costs within this fraction of the lowest count as equal, and credit decides among them: 4 vs 5
 * requests in flight is not worth breaking a fair rotation for, and one 503 (failures ×1.23) is
 * not worth losing every comparison for.
 */
export const COST_TIE_FRACTION = 0.25;
/**
 * A candidate lighter than this fraction of the heaviest (slow, failing, ramping up) gets its share
 * by weight: it is picked whenever its credit reaches a whole pick, however its cost compares.
 */
export const LIGHT_WEIGHT_FRACTION = 0.8;
/**
 * Credit stays within this many whole picks either way, so an endpoint avoided for hours for its
 * requests in flight (long streams) does not then win every tie for as long.
 */
export const CREDIT_LIMIT_PICKS = 2;
/** A new endpoint's weight at the start of its slow start. */
export const SLOW_START_MIN_WEIGHT = 0.1;
/** While slower than its peers, a new endpoint's ramp runs at this fraction of its pace (it stretches up to 4×). */
export const SLOW_START_SLOWER_PACE = 0.25;
/** A new endpoint whose estimate matches its peers' after this many responses ends its ramp early. */
export const SLOW_START_MATCHING_RESPONSES = 20;

interface RampState {
  progress: number;
  at: number;
}

/**
 * The default policy. Each endpoint gets a weight from its evidence:
 *
 *   weight = latency factor × ramp / failure factor
 *
 * - latency factor: 1 within the noise band of the fastest candidate, else (band / latency)⁸;
 * - failure factor: 1 / (1 − failure ratio)²: one 503 in ten responses is ×1.23, every response
 *   failing is ×10,000 (and N in a row eject it, see ejection.ts);
 * - ramp: SLOW_START_MIN_WEIGHT → 1 over the slow-start window for an endpoint that joined a target
 *   already in use; its latency is judged by the ramp, not the latency factor, so a cold endpoint
 *   keeps getting the traffic that warms it.
 *
 * Every pick, each candidate earns its weight in credit (smooth weighted round-robin) and the
 * chosen one pays the total back. The pick is a candidate markedly lighter than the heaviest whose
 * credit reached a whole pick (so slow, failing and ramping endpoints get their share by weight,
 * never nothing), else the one with the lowest cost = (in flight + 1) / weight, as peak-EWMA and
 * least-request would choose, where costs within COST_TIE_FRACTION of the lowest are a tie that
 * credit decides. In flight counts until the response or stream ends. Deterministic: equal
 * endpoints take turns exactly, long streams spread by in-flight.
 */
export class PeakEwmaPolicy implements Policy {
  readonly name = LB_POLICY.peakEwma;
  private readonly credit = new Map<EndpointStats, number>();
  private readonly ramps = new Map<EndpointStats, RampState>();
  /** The latency that still counts as equal to the fastest, as of the last pick (ms). */
  private bandMs = LATENCY_FLOOR_MS * LATENCY_NOISE_FACTOR + LATENCY_NOISE_MS;
  private weights: number[] = [];
  private credits: number[] = [];
  private readonly parts: WeightParts = { latencyMs: 0, latencyFactor: 1, failureFactor: 1, ramp: 1, inFlight: 0 };
  private seenCandidates: readonly EndpointStats[] | undefined;

  constructor(private readonly options: PolicyOptions) {}

  pick(candidates: readonly EndpointStats[], now: number, log: PickLog): EndpointStats {
    if (candidates !== this.seenCandidates) this.forgetGone(candidates);
    const n = candidates.length;
    let fastest = Infinity;
    for (let i = 0; i < n; i++) {
      const latency = candidates[i]!.latencyMs;
      if (latency < fastest) fastest = latency;
    }
    this.bandMs = (fastest > LATENCY_FLOOR_MS ? fastest : LATENCY_FLOOR_MS) * LATENCY_NOISE_FACTOR + LATENCY_NOISE_MS;
    if (this.weights.length < n) {
      this.weights = new Array<number>(n).fill(0);
      this.credits = new Array<number>(n).fill(0);
    }
    const weights = this.weights;
    const credits = this.credits;
    let heaviest = 0;
    for (let i = 0; i < n; i++) {
      const stats = candidates[i]!;
      const w = this.rampOrLatencyFactor(stats, now) / failureFactor(stats);
      weights[i] = w;
      if (w > heaviest) heaviest = w;
    }
    const floor = heaviest * MIN_WEIGHT_FRACTION;
    const light = heaviest * LIGHT_WEIGHT_FRACTION;
    let total = 0;
    for (let i = 0; i < n; i++) if (weights[i]! < floor) weights[i] = floor;
    for (let i = 0; i < n; i++) total += weights[i]!;
    const limit = total * CREDIT_LIMIT_PICKS;
    let best = -1;
    let lowestCost = Infinity;
    for (let i = 0; i < n; i++) {
      const stats = candidates[i]!;
      const w = weights[i]!;
      const earned = (this.credit.get(stats) ?? 0) + w;
      const c = earned > limit ? limit : earned;
      this.credit.set(stats, c);
      credits[i] = c;
      if (w < light && c >= total && (best < 0 || c > credits[best]!)) best = i;
      const cost = (stats.inFlight + 1) / w;
      if (cost < lowestCost) lowestCost = cost;
    }
    const isDue = best >= 0;
    if (!isDue) {
      const tie = lowestCost * (1 + COST_TIE_FRACTION);
      for (let i = 0; i < n; i++) {
        if ((candidates[i]!.inFlight + 1) / weights[i]! <= tie && (best < 0 || credits[i]! > credits[best]!)) best = i;
      }
    }
    const chosen = candidates[best]!;
    const bestCredit = credits[best]!;
    const paid = bestCredit - total;
    this.credit.set(chosen, paid < -limit ? -limit : paid);
    const ramp = this.ramps.get(chosen);
    const parts = this.parts;
    parts.latencyMs = chosen.latencyMs;
    parts.latencyFactor = latencyFactorOf(chosen.latencyMs, this.bandMs);
    parts.failureFactor = failureFactor(chosen);
    parts.ramp = ramp === undefined ? 1 : rampWeightOf(ramp);
    parts.inFlight = chosen.inFlight;
    log.recordWeighted(this.name, chosen.key, isDue, bestCredit, weights[best]!, total, lowestCost, parts);
    return chosen;
  }

  score(stats: EndpointStats): EndpointScore {
    const state = this.ramps.get(stats);
    const ramping = stats.slowStartFrom >= 0;
    const ramp = state !== undefined ? rampWeightOf(state) : ramping ? SLOW_START_MIN_WEIGHT : 1;
    const latencyFactor = latencyFactorOf(stats.latencyMs, this.bandMs);
    const failures = failureFactor(stats);
    return {
      latencyMs: stats.latencyMs,
      equalBelowMs: this.bandMs,
      latencyFactor,
      failureRatio: stats.failureRatio,
      failureFactor: failures,
      ramp,
      inFlight: stats.inFlight,
      weight: (ramping ? ramp : latencyFactor) / failures,
      cost: (stats.inFlight + 1) / ((ramping ? ramp : latencyFactor) / failures),
      credit: this.credit.get(stats) ?? 0,
    };
  }

  /**
   * The ramp weight of an endpoint in slow start, else its latency factor. The ramp advances with
   * time at full pace while its latency is within the band, at SLOW_START_SLOWER_PACE while slower,
   * and ends at once when it matches its peers after SLOW_START_MATCHING_RESPONSES responses.
   */
  private rampOrLatencyFactor(stats: EndpointStats, now: number): number {
    const latencyFactor = latencyFactorOf(stats.latencyMs, this.bandMs);
    if (stats.slowStartFrom < 0) return latencyFactor;
    const windowMs = this.options.slowStartMs;
    let ramp = this.ramps.get(stats);
    if (ramp === undefined) {
      ramp = { progress: 0, at: stats.slowStartFrom };
      this.ramps.set(stats, ramp);
    }
    const matching = latencyFactor === 1;
    const elapsed = now - ramp.at;
    ramp.at = now;
    if (windowMs <= 0 || (matching && stats.observations >= SLOW_START_MATCHING_RESPONSES)) {
      ramp.progress = 1;
    } else if (elapsed > 0) {
      ramp.progress += (elapsed / windowMs) * (matching ? 1 : SLOW_START_SLOWER_PACE);
    }
    if (ramp.progress >= 1) {
      stats.slowStartFrom = -1;
      this.ramps.delete(stats);
      return latencyFactor;
    }
    return rampWeightOf(ramp);
  }

  /** Drops credit and ramps of endpoints no longer among the candidates (ejected ones keep theirs). */
  private forgetGone(candidates: readonly EndpointStats[]): void {
    this.seenCandidates = candidates;
    for (const stats of this.credit.keys()) if (stats.removed) this.credit.delete(stats);
    for (const stats of this.ramps.keys()) if (stats.removed) this.ramps.delete(stats);
  }
}

function rampWeightOf(ramp: RampState): number {
  return SLOW_START_MIN_WEIGHT + (1 - SLOW_START_MIN_WEIGHT) * ramp.progress;
}

function latencyFactorOf(latencyMs: number, bandMs: number): number {
  if (latencyMs <= bandMs) return 1;
  const ratio = bandMs / latencyMs;
  return ratio ** LATENCY_PENALTY_EXPONENT;
}

function failureFactor(stats: EndpointStats): number {
  const ratio = stats.failureRatio < MAX_FAILURE_RATIO ? stats.failureRatio : MAX_FAILURE_RATIO;
  const healthy = 1 - ratio;
  return 1 / (healthy * healthy);
}
