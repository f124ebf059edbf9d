import { collectProblems, type CommandSpec, type ParsedCommand } from '../common/config.js';
import { ADMIN_PATH, PROXY_ADMIN_PORT } from '../common/contract.js';
import { connectCluster } from './cluster.js';
import { diagnoseService } from './diagnose.js';
import { diagnosisJson, EXIT_CODES, formatDiagnosis } from './report.js';
import { parseWindow } from './window.js';

const SCRAPE_TIMEOUT_MS = 5000;

export const command: CommandSpec = {
  name: 'diagnose',
  usage: 'SERVICE [-n NS]',
  summary: "Check whether a Service's requests are spread over its Pods, from the Kubernetes API and the callers' sidecar metrics.",
  flags: {
    namespace: { type: 'string', short: 'n', placeholder: 'NS', description: "The Service's namespace (default: the kubeconfig context's, else default)" },
    kubeconfig: { type: 'string', placeholder: 'FILE', description: 'kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster credentials)' },
    'client-namespace': {
      type: 'string',
      multiple: true,
      placeholder: 'NS',
      description: "Namespace whose meshed Pods call the Service (default: the Service's)",
    },
    window: { type: 'string', placeholder: 'DURATION', default: '10s', description: 'Time between the two reads of every sidecar; shares come from the difference (0: totals since start)' },
    json: { type: 'boolean', default: false, description: 'Print one JSON object for scripts instead of text' },
  },
  details: `
Reads the Service, its EndpointSlices and the Pods of the client namespaces; reads each meshed Pod's
sidecar ${ADMIN_PATH.metrics} (port ${PROXY_ADMIN_PORT}) twice through the API server's pod proxy, WINDOW apart; and judges the
per-endpoint share of requests to the Service over that window. Asks the API server (SubjectAccessReview)
whether each caller service account's sidecars may list and watch the Services and EndpointSlices they
need, and prints the kubectl command for any missing binding.
Needs get on services, namespaces and pods/proxy, list on pods and endpointslices, create on
subjectaccessreviews (ClusterRole meshlet-diagnose in manifests/observability/diagnose-rbac.yaml).

Exit codes: 0 balanced (or uneven only because slower Pods get less), 3 imbalanced,
4 nothing to judge (no meshed callers or no requests in the window), 1 could not read the cluster,
2 bad usage.`,
};

export async function run(parsed: ParsedCommand): Promise<number> {
  const values = parsed.values;
  const window = parseWindow(String(values.window));
  const [target, ...extra] = parsed.positionals;
  collectProblems([
    () => (target === undefined ? 'SERVICE is required, e.g. meshlet diagnose web -n shop' : undefined),
    () => (extra.length > 0 ? `one SERVICE at a time; also got ${extra.join(' ')}` : undefined),
    () => (window.ok ? undefined : `--window: "${String(values.window)}" is not valid; allowed: ${window.allowed}`),
  ]);
  const reader = connectCluster(values.kubeconfig as string | undefined);
  const [nsFromName, name] = target!.includes('/') ? target!.split('/', 2) : [undefined, target!];
  const namespace = (values.namespace as string | undefined) ?? nsFromName ?? reader.defaultNamespace;
  const clientNamespaces = (values['client-namespace'] as string[] | undefined) ?? [namespace];
  const diagnosis = await diagnoseService(reader, {
    namespace,
    service: name!,
    clientNamespaces,
    windowMs: window.ok ? window.value : 0,
    scrapeTimeoutMs: SCRAPE_TIMEOUT_MS,
  });
  process.stdout.write(values.json ? `${JSON.stringify(diagnosisJson(diagnosis), null, 2)}\n` : formatDiagnosis(diagnosis));
  return EXIT_CODES[diagnosis.analysis.verdict];
}
