import { LB_POLICY } from '../common/contract.js';
/**
 * Per-endpoint shares of requests, their coefficient of variation, and a verdict in plain words.
 * Pure: `meshlet diagnose` feeds it deltas scraped from sidecars, the demo feeds it its own counts.
 */
export interface EndpointTraffic {
  /** "ip:port" (the sidecar's `endpoint` label), or a name the caller chose. */
  endpoint: string;
  /** The Pod behind it, when known. */
  pod?: string;
  /** How the verdict names it; default `pod NAME`, else `endpoint IP:PORT`. */
  label?: string;
  requests: number;
  /** Sum and count of request durations (seconds) over the same window, for a mean latency. */
  durationSumSeconds?: number;
  durationCount?: number;
  /** false: listed by the Service but not ready. undefined: ready, or not listed at all. */
  ready?: boolean;
  /** Started after the endpoints that carry the traffic (a scale-up). */
  isNew?: boolean;
}

export interface EndpointShare extends EndpointTraffic {
  /** 0..1 of all requests in the window. */
  share: number;
  meanLatencyMs?: number;
}

/**
 * balanced: every endpoint gets about its share. latency-weighted: uneven, but only because the
 * endpoints getting less are slower (what peak-ewma is for). imbalanced: one endpoint takes too much,
 * or ready endpoints receive nothing. no-traffic: nothing to judge.
 */
export type VerdictKind = 'balanced' | 'latency-weighted' | 'imbalanced' | 'no-traffic';

export interface ShareAnalysis {
  endpoints: EndpointShare[];
  totalRequests: number;
  /** Standard deviation of per-endpoint requests divided by their mean (0 = perfectly even). */
  cv: number;
  /** 1 / number of endpoints judged. */
  fairShare: number;
  verdict: VerdictKind;
  /** One line in plain words, e.g. "imbalanced: pod web-0 takes 92% (fair share 33%)". */
  summary: string;
}

export interface ShareThresholds {
  /** Above this coefficient of variation the split is uneven. */
  maxCv: number;
  /** A ready endpoint below this fraction of its fair share "receives nothing". */
  idleFraction: number;
  /** Endpoints getting less count as "slower" when their mean latency is this many times the others'. */
  slowerFactor: number;
}

export const DEFAULT_THRESHOLDS: ShareThresholds = { maxCv: 0.3, idleFraction: 0.1, slowerFactor: 2 };

export function describeEndpoint(e: EndpointTraffic): string {
  return e.label ?? (e.pod ? `pod ${e.pod}` : `endpoint ${e.endpoint}`);
}

/** "33%"; a share that is not zero but rounds to it reads "<1%". */
export function formatPercent(share: number): string {
  if (share > 0 && share < 0.005) return '<1%';
  return `${Math.round(share * 100)}%`;
}

export function coefficientOfVariation(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (mean === 0) return 0;
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  return Math.sqrt(variance) / mean;
}

export function analyseShares(traffic: readonly EndpointTraffic[], thresholds: ShareThresholds = DEFAULT_THRESHOLDS): ShareAnalysis {
  const judged = traffic.filter((t) => t.ready !== false || t.requests > 0);
  const totalRequests = judged.reduce((a, t) => a + t.requests, 0);
  const endpoints: EndpointShare[] = judged.map((t) => ({
    ...t,
    share: totalRequests > 0 ? t.requests / totalRequests : 0,
    ...(t.durationCount && t.durationSumSeconds !== undefined ? { meanLatencyMs: (t.durationSumSeconds / t.durationCount) * 1000 } : {}),
  }));
  const fairShare = endpoints.length > 0 ? 1 / endpoints.length : 0;
  const cv = coefficientOfVariation(endpoints.map((e) => e.requests));
  const base = { endpoints, totalRequests, cv, fairShare };
  if (totalRequests === 0) {
    return { ...base, verdict: 'no-traffic', summary: 'no traffic: no requests were seen in the window, nothing to judge' };
  }
  if (endpoints.length === 1) {
    return { ...base, verdict: 'balanced', summary: `balanced: one endpoint (${describeEndpoint(endpoints[0]!)}), nothing to spread` };
  }
  const idle = endpoints.filter((e) => e.ready !== false && e.share < fairShare * thresholds.idleFraction);
  const shares = endpoints.map((e) => e.share);
  if (cv <= thresholds.maxCv && idle.length === 0) {
    return {
      ...base,
      verdict: 'balanced',
      summary: `balanced: ${endpoints.length} endpoints each take ${formatRange(shares)} (CV ${cv.toFixed(2)})`,
    };
  }
  const explained = explainByLatency(endpoints, fairShare, thresholds.slowerFactor);
  if (explained) return { ...base, verdict: 'latency-weighted', summary: explained };
  const hot = endpoints.reduce((a, b) => (b.share > a.share ? b : a));
  const parts: string[] = [];
  if (hot.share > fairShare * 1.5) parts.push(`${describeEndpoint(hot)} takes ${formatPercent(hot.share)} (fair share ${formatPercent(fairShare)})`);
  if (idle.length > 0) {
    const who = idle.every((e) => e.isNew) ? 'new pods' : idle.length === 1 ? 'endpoint' : 'endpoints';
    parts.push(`${who} receiving nothing: ${idle.map((e) => e.pod ?? e.label ?? e.endpoint).join(', ')}`);
  }
  if (parts.length === 0) parts.push(`uneven split, ${formatRange(shares)} (CV ${cv.toFixed(2)})`);
  return { ...base, verdict: 'imbalanced', summary: `imbalanced: ${parts.join('; ')}` };
}

/** A sentence when every endpoint below its fair share is clearly slower than every one above it. */
function explainByLatency(endpoints: readonly EndpointShare[], fairShare: number, slowerFactor: number): string | undefined {
  const below = endpoints.filter((e) => e.share < fairShare);
  const above = endpoints.filter((e) => e.share >= fairShare);
  if (below.length === 0 || above.length === 0) return undefined;
  if (![...below, ...above].every((e) => e.meanLatencyMs !== undefined)) return undefined;
  const fastestBelow = Math.min(...below.map((e) => e.meanLatencyMs!));
  const slowestAbove = Math.max(...above.map((e) => e.meanLatencyMs!));
  if (fastestBelow < slowerFactor * Math.max(slowestAbove, 0.001)) return undefined;
  const names = below.map(describeEndpoint).join(', ');
  const verb = below.length === 1 ? 'is slower' : 'are slower';
  return (
    `balanced for latency: ${names} ${verb} (mean ${formatMs(fastestBelow)} vs ${formatMs(slowestAbove)}) ` +
    `and ${below.length === 1 ? 'gets' : 'get'} less (${below.map((e) => formatPercent(e.share)).join(', ')}), as the ${LB_POLICY.peakEwma} policy intends`
  );
}

/** "31%–35%", or "33%" when every share rounds the same. */
export function formatRange(shares: readonly number[]): string {
  const low = formatPercent(Math.min(...shares));
  const high = formatPercent(Math.max(...shares));
  return low === high ? low : `${low}–${high}`;
}

export function formatMs(ms: number): string {
  return ms >= 10 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
}
