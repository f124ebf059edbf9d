import type { Diagnosis } from './diagnose.js';
import { formatMs, formatPercent, type VerdictKind } from './shares.js';

/** Exit codes of `meshlet diagnose` (2 stays the usage error of every meshlet command, 1 a failure to read). */
export const EXIT_CODES: Record<VerdictKind, number> = {
  balanced: 0,
  'latency-weighted': 0,
  imbalanced: 3,
  'no-traffic': 4,
};

const BAR_WIDTH = 20;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function formatDiagnosis(d: Diagnosis): string {
  const lines: string[] = [];
  const s = d.service;
  lines.push(`Service ${s.namespace}/${s.name}: ${s.type}${s.clusterIP ? ` ${s.clusterIP}` : ''}, ports ${s.ports.join(', ') || 'none'}`);
  if (!s.hasSelector) lines.push('  note: the Service has no selector; its EndpointSlices are managed by hand');
  const e = d.endpoints;
  lines.push(`Endpoints: ${e.ready} ready, ${e.notReady} not ready, ${e.terminating} terminating (${plural(e.slices, 'EndpointSlice')})`);
  const c = d.clients;
  lines.push(
    `Clients in ${c.namespaces.join(', ')}: ${plural(c.meshed.length, 'meshed Pod')}, ${c.scraped.length} read, ` +
      `${c.callers.length} sent requests to ${s.name}${c.callers.length ? ` (${c.callers.join(', ')})` : ''}`,
  );
  for (const u of c.unreadable) lines.push(`  ! could not read the sidecar metrics of ${u.pod}: ${u.error}`);
  for (const m of c.missingSidecar) {
    lines.push(`  ! Pod ${m.namespace}/${m.pod} asked to be meshed but runs without the sidecar (admitted while the webhook was down?)`);
    lines.push(`    fix: ${m.fix}`);
  }
  for (const access of d.discoveryAccess) {
    const who = `sidecars in ${access.namespace} (service account ${access.serviceAccount})`;
    if (!access.checked) {
      lines.push(`  ? could not check what the ${who} may read: diagnose needs create on subjectaccessreviews.authorization.k8s.io`);
      continue;
    }
    if (access.sharedWatcher) {
      // Their endpoints come from meshlet discovery; these rules only serve the fallback to direct watches.
      const missing = [...access.missing, ...access.missingClusterWide];
      if (missing.length > 0) lines.push(`  note: ${who} get endpoints from meshlet discovery; they may not ${missing.join(', ')}, which only matters while the shared watcher is unreachable (their fallback watches the API directly)`);
    } else {
      if (access.missing.length > 0) lines.push(`  ! ${who} may not ${access.missing.join(', ')}: their requests to ${s.name} pass through unbalanced`);
      if (access.missingClusterWide.length > 0) lines.push(`  note: ${who} may not ${access.missingClusterWide.join(', ')}: a ClusterIP of another namespace passes through unbalanced (calls by name are not affected)`);
    }
    for (const fix of access.fixes) lines.push(`    fix: ${fix}`);
  }
  lines.push('');
  const a = d.analysis;
  const window = d.windowSeconds > 0 ? `over the last ${d.windowSeconds} s` : 'since the sidecars started';
  lines.push(`Requests to ${s.name} ${window}, seen by ${plural(c.callers.length, 'meshed client')}: ${a.totalRequests}`);
  if (a.endpoints.length > 0) {
    const rows = a.endpoints.map((x) => [
      x.endpoint,
      x.pod ?? '-',
      x.ready === false ? 'not ready' : x.ready === undefined ? 'gone' : 'ready',
      String(x.requests),
      formatPercent(x.share),
      '#'.repeat(Math.round(x.share * BAR_WIDTH)).padEnd(BAR_WIDTH, '.'),
      x.meanLatencyMs !== undefined ? formatMs(x.meanLatencyMs) : '-',
    ]);
    const header = ['ENDPOINT', 'POD', 'STATE', 'REQUESTS', 'SHARE', '', 'MEAN LATENCY'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const right = new Set([3, 4]);
    const format = (r: string[]) => '  ' + r.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
    lines.push(format(header), ...rows.map(format));
  }
  lines.push(`Coefficient of variation: ${a.cv.toFixed(2)} (0 is perfectly even)`);
  lines.push(`Verdict: ${a.summary}`);
  if (c.meshed.length === 0) lines.push(`Hint: no meshed Pods in ${c.namespaces.join(', ')}; diagnose reads the callers' sidecars (use --client-namespace for callers elsewhere)`);
  return lines.join('\n') + '\n';
}

export function diagnosisJson(d: Diagnosis): object {
  return { ...d, verdict: d.analysis.verdict, summary: d.analysis.summary, exitCode: EXIT_CODES[d.analysis.verdict] };
}
