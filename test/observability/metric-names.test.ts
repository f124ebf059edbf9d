import t from 'tap';
import { METRICS } from '../../src/common/contract.js';
import { dashboardQueries, labelNamesIn, loadRules, metricNamesIn, ruleQueries } from './queries.js';

/** The sidecar's only histogram: Prometheus exposes it as _bucket, _sum and _count series. */
const HISTOGRAMS = new Set<string>([METRICS.requestDuration]);
const EXPORTED = new Set<string>([
  ...Object.values(METRICS),
  ...[...HISTOGRAMS].flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
]);
/** Labels the sidecar's metrics carry (see METRICS in src/common/contract.ts), plus the histogram's `le`. */
const LABELS = new Set(['target', 'endpoint', 'protocol', 'code', 'grpc_status', 'reason', 'state', 'le']);

const queries = [...dashboardQueries(), ...ruleQueries()];
const recorded = new Set(loadRules().spec.groups.flatMap((g) => g.rules.flatMap((r) => (r.record ? [r.record] : []))));

t.test('the dashboard and the rules have queries to check', async (t) => {
  t.ok(dashboardQueries().length >= 10, `dashboard queries: ${dashboardQueries().length}`);
  t.ok(ruleQueries().some((q) => q.where === 'rule MeshletSkewedShare'), 'the skewed-share alert is there');
});

t.test('every query reads only metrics the sidecar exports', async (t) => {
  for (const q of queries) {
    const { metrics, recorded: used } = metricNamesIn(q.expr);
    t.ok(metrics.length + used.length > 0, `${q.where} reads at least one meshlet metric`);
    for (const name of metrics) t.ok(EXPORTED.has(name), `${q.where}: ${name} is in METRICS`);
    for (const name of used) t.ok(recorded.has(name), `${q.where}: recording rule ${name} is defined`);
  }
});

t.test('every label a query groups or filters by is one the sidecar sets', async (t) => {
  for (const q of queries) for (const label of labelNamesIn(q.expr)) t.ok(LABELS.has(label), `${q.where}: label ${label}`);
});

t.test('every query has balanced brackets', async (t) => {
  for (const q of queries) {
    const depth = [...q.expr.replace(/"(?:[^"\\]|\\.)*"/g, '')].reduce(
      (acc, c) => (acc < 0 ? acc : c === '(' || c === '{' || c === '[' ? acc + 1 : c === ')' || c === '}' || c === ']' ? acc - 1 : acc),
      0,
    );
    t.equal(depth, 0, `${q.where}`);
  }
});

t.test('the alerts wait before firing and say what to do', async (t) => {
  for (const group of loadRules().spec.groups) {
    for (const rule of group.rules.filter((r) => r.alert)) {
      t.match(rule.for, /^\d+m$/, `${rule.alert} has a for: duration`);
      t.match((rule as { annotations?: { description?: string } }).annotations?.description, /meshlet diagnose/, `${rule.alert} points to meshlet diagnose`);
    }
  }
});
