import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load as loadYaml } from 'js-yaml';
import { REPO_ROOT } from '../../tools/meshlet-process.js';

/** Where a PromQL query lives, for messages: "grafana-dashboard.json panel 3 (p99 latency…)". */
export interface NamedQuery {
  where: string;
  expr: string;
}

export const OBSERVABILITY_DIR = join(REPO_ROOT, 'manifests', 'observability');

interface DashboardPanel {
  id: number;
  title: string;
  targets?: { expr?: string }[];
  panels?: DashboardPanel[];
}

export function dashboardQueries(): NamedQuery[] {
  const dashboard = JSON.parse(readFileSync(join(OBSERVABILITY_DIR, 'grafana-dashboard.json'), 'utf8')) as {
    panels: DashboardPanel[];
    templating: { list: { name: string; definition?: string }[] };
  };
  const queries: NamedQuery[] = [];
  const visit = (panel: DashboardPanel) => {
    for (const target of panel.targets ?? []) if (target.expr) queries.push({ where: `dashboard panel ${panel.id} (${panel.title})`, expr: target.expr });
    for (const inner of panel.panels ?? []) visit(inner);
  };
  dashboard.panels.forEach(visit);
  for (const variable of dashboard.templating.list) {
    if (variable.definition) queries.push({ where: `dashboard variable ${variable.name}`, expr: variable.definition });
  }
  return queries;
}

export interface RuleFile {
  spec: { groups: { name: string; rules: { alert?: string; record?: string; expr: string; for?: string }[] }[] };
}

export function loadRules(): RuleFile {
  return loadYaml(readFileSync(join(OBSERVABILITY_DIR, 'prometheus-rule.yaml'), 'utf8')) as RuleFile;
}

export function ruleQueries(): NamedQuery[] {
  return loadRules().spec.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr })));
}

/** Metric names a query reads: sidecar metrics (meshlet_…) and recording rules (meshlet:…). */
export function metricNamesIn(expr: string): { metrics: string[]; recorded: string[] } {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return {
    metrics: [...new Set(withoutStrings.match(/\bmeshlet_[a-z0-9_]+\b/g) ?? [])],
    recorded: [...new Set(withoutStrings.match(/\bmeshlet:[a-z0-9_:]+\b/g) ?? [])],
  };
}

/** Labels named in `by (...)`, `on (...)`, `ignoring (...)` and inside selectors `{label=...}`. */
export function labelNamesIn(expr: string): string[] {
  const labels = new Set<string>();
  for (const m of expr.matchAll(/\b(?:by|on|ignoring|without)\s*\(([^)]*)\)/g)) for (const l of m[1]!.split(',')) if (l.trim()) labels.add(l.trim());
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const pair of m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.add(pair[1]!);
  }
  return [...labels];
}
